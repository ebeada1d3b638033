#include "config.h"

#include "device.h"

#include <c10/util/Exception.h>

#include <unistd.h>

#include <cstdlib>

namespace torchdevice::standin {
namespace {

struct Config {
  int macos = 15;
  c10::DeviceIndex device_count = 1;
  size_t memory_limit = 0;
};

size_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page_size)
                                    : size_t{1} << 34;
}

Config read_config() {
  Config config;
#ifdef TORCHDEVICE_EMULATED_MPS
  if (const char* macos = std::getenv("TORCHDEVICE_MPS_MACOS")) {
    const long version = std::strtol(macos, nullptr, 10);
    TORCH_CHECK(version >= 13 && version <= 15, "TORCHDEVICE_MPS_MACOS must be 13, 14 or 15, got '",
                macos, "'");
    config.macos = static_cast<int>(version);
  }
#else
  if (const char* devices = std::getenv("TORCHDEVICE_STANDIN_DEVICES")) {
    const long count = std::strtol(devices, nullptr, 10);
    TORCH_CHECK(count >= 1 && count <= kMaxDevices, "TORCHDEVICE_STANDIN_DEVICES must be 1..",
                static_cast<int>(kMaxDevices), ", got '", devices, "'");
    config.device_count = static_cast<c10::DeviceIndex>(count);
  }
#endif
  config.memory_limit = physical_memory();
  if (const char* limit = std::getenv("TORCHDEVICE_STANDIN_MEMORY_LIMIT")) {
    char* end = nullptr;
    const unsigned long long bytes = std::strtoull(limit, &end, 10);
    TORCH_CHECK(end != limit && *end == '\0',
                "TORCHDEVICE_STANDIN_MEMORY_LIMIT must be a number of bytes, got '", limit, "'");
    config.memory_limit = bytes;
  }
  return config;
}

const Config& config() {
  static const Config value = read_config();
  return value;
}

} // namespace

int macos_version() { return config().macos; }

c10::DeviceIndex device_count() { return config().device_count; }

size_t default_memory_limit() { return config().memory_limit; }

void check_device_index(c10::DeviceIndex index) {
  TORCH_CHECK(index >= 0 && index < device_count(), "Invalid device index ",
              static_cast<int>(index), ": the ", kName, " backend has ",
              static_cast<int>(device_count()), " device(s)");
}

} // namespace torchdevice::standin
