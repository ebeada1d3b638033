#include "torchdevice/device_spec.h"

#include <c10/util/Exception.h>

#include <limits>
#include <string>

namespace torchdevice {

c10::Device parse_device(const std::string& spec) {
  c10::Device device(c10::DeviceType::CPU);
  try {
    device = c10::Device(spec);
  } catch (const c10::Error&) {
    TORCH_CHECK(false, "Invalid device string: '", spec,
                "'. Expected a device type with an optional non-negative index, such as 'cuda', "
                "'cuda:0', 'mps' or 'cpu'.");
  }
  // Some torch versions store the parsed index in an int8 unchecked ('cuda:300' reads as cuda:44,
  // 'cuda:128' as cuda:-128). The grammar allows no sign or leading zero, so the digits written
  // must read back unchanged.
  const auto colon = spec.find(':');
  if (colon != std::string::npos) {
    const std::string written = spec.substr(colon + 1);
    TORCH_CHECK(std::to_string(device.index()) == written, "Device index ", written, " in '",
                spec, "' is out of range: it must be at most ",
                static_cast<int>(std::numeric_limits<c10::DeviceIndex>::max()), ".");
  }
  return device;
}

c10::DeviceIndex check_device_index(int64_t index, c10::DeviceType type) {
  TORCH_CHECK(index >= 0, "Device index must not be negative, got ", index, " for ",
              c10::DeviceTypeName(type, /*lower_case=*/true),
              ". Use an index >= 0 (every index lands on torchdevice's target).");
  TORCH_CHECK(index <= std::numeric_limits<c10::DeviceIndex>::max(), "Device index ", index,
              " for ", c10::DeviceTypeName(type, /*lower_case=*/true),
              " is out of range: it must be at most ",
              static_cast<int>(std::numeric_limits<c10::DeviceIndex>::max()), ".");
  return static_cast<c10::DeviceIndex>(index);
}

}  // namespace torchdevice
