#include "torchdevice/device_spec.h"

#include <c10/util/Exception.h>

#include <limits>

namespace torchdevice {

c10::Device parse_device(const std::string& spec) {
  try {
    return c10::Device(spec);
  } catch (const c10::Error&) {
    TORCH_CHECK(false, "Invalid device string: '", spec,
                "'. Expected a device type with an optional non-negative index, such as 'cuda', "
                "'cuda:0', 'mps' or 'cpu'.");
  }
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
