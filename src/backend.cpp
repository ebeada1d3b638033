#include "torchdevice/backend.h"

#include <c10/core/Device.h>

#include <algorithm>
#include <cctype>
#include <sstream>
#include <utility>
#include <vector>

namespace torchdevice {

namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// "cuda:nccl,cpu:gloo" -> {("cuda", "nccl"), ("cpu", "gloo")}; a bare name has an empty device.
std::vector<std::pair<std::string, std::string>> entries(const std::string& backend) {
  std::vector<std::pair<std::string, std::string>> parsed;
  std::stringstream stream(lower(backend));
  std::string item;
  while (std::getline(stream, item, ',')) {
    const auto colon = item.find(':');
    if (colon == std::string::npos) {
      parsed.emplace_back("", item);
    } else {
      parsed.emplace_back(item.substr(0, colon), item.substr(colon + 1));
    }
  }
  return parsed;
}

}  // namespace

c10::optional<std::string> fallback_backend(const c10::optional<std::string>& requested,
                                            const Redirect& redirect, bool nccl_available) {
  if (nccl_available || !redirect.redirects(c10::DeviceType::CUDA)) {
    return c10::nullopt;
  }
  if (!requested.has_value()) {
    return std::string("gloo");
  }
  const auto parsed = entries(*requested);
  const bool names_nccl = std::any_of(parsed.begin(), parsed.end(),
                                      [](const auto& entry) { return entry.second == "nccl"; });
  if (!names_nccl) {
    return c10::nullopt;
  }
  const std::string target = c10::DeviceTypeName(redirect.target().type(), /*lower_case=*/true);
  for (const auto& [device, backend] : parsed) {
    if (device == target && backend != "nccl") {
      return backend;
    }
  }
  return std::string("gloo");
}

}  // namespace torchdevice
