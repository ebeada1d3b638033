#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace torchdevice {

// Parses a device string ("cuda", "cuda:1", "mps", "cpu") with PyTorch's own grammar, turning its
// terse failures into errors that say what a valid spec looks like.
c10::Device parse_device(const std::string& spec);

// Validates a device index given as an integer (torch.cuda.set_device(3), device=0, ...).
// Any index >= 0 is accepted: every index of a redirected type lands on the one target, so that
// multi-rank scripts run on a single-device machine. Negative or out-of-range indices are errors.
c10::DeviceIndex check_device_index(int64_t index, c10::DeviceType type);

}  // namespace torchdevice
