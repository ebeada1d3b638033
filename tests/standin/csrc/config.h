#pragma once

#include <c10/core/Device.h>

// The stand-in's switches, read once from the environment when the library loads.
namespace torchdevice::standin {

// Upper bound for TORCHDEVICE_STANDIN_DEVICES: per-device state lives in fixed arrays.
constexpr c10::DeviceIndex kMaxDevices = 8;

// TORCHDEVICE_STANDIN=mps: float64/bfloat16 refused, MPS's out-of-memory words, no pinned memory,
// host->device non_blocking copies completed later by the stream's worker.
bool mps_like();

// TORCHDEVICE_STANDIN_DEVICES (default 1).
c10::DeviceIndex device_count();

// TORCHDEVICE_STANDIN_MEMORY_LIMIT in bytes per device (default: the host's physical memory, which
// is what really backs the stand-in's allocations).
size_t default_memory_limit();

// Checks a device index against device_count(), in torch's words.
void check_device_index(c10::DeviceIndex index);

} // namespace torchdevice::standin
