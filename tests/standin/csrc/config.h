#pragma once

#include <c10/core/Device.h>

// The stand-in's switches, read once from the environment when the library loads.
namespace torchdevice::standin {

// Upper bound for TORCHDEVICE_STANDIN_DEVICES: per-device state lives in fixed arrays.
constexpr c10::DeviceIndex kMaxDevices = 8;

// Whether this build is the emulated MPS, whose device keeps MPS's rules in the sources both
// builds share: float64 refused, bfloat16 by macOS version, MPS's out-of-memory words, host->device
// non_blocking copies completed later by the stream's worker.
#ifdef TORCHDEVICE_EMULATED_MPS
constexpr bool kMpsRules = true;
#else
constexpr bool kMpsRules = false;
#endif

// The macOS major version the emulated MPS reports (TORCHDEVICE_MPS_MACOS: 13, 14 or 15, default
// 15): bfloat16 exists from 14.
int macos_version();

// TORCHDEVICE_STANDIN_DEVICES (default 1); always 1 for the emulated MPS, as MPS.
c10::DeviceIndex device_count();

// TORCHDEVICE_STANDIN_MEMORY_LIMIT in bytes per device (default: the host's physical memory, which
// is what really backs the stand-in's allocations).
size_t default_memory_limit();

// Checks a device index against device_count(), in torch's words.
void check_device_index(c10::DeviceIndex index);

} // namespace torchdevice::standin
