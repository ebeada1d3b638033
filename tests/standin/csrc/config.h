#pragma once

#include <c10/core/Device.h>

// The stand-in's switches, read once from the environment when the library loads.
namespace torchdevice::standin {

// Upper bound for TORCHDEVICE_STANDIN_DEVICES: per-device state lives in fixed arrays.
constexpr c10::DeviceIndex kMaxDevices = 8;

// TORCHDEVICE_STANDIN=mps: float64/bfloat16 refused, MPS's out-of-memory words, no pinned memory,
// host->device non_blocking copies completed later by the stream's worker. Always true for the
// emulated MPS.
bool mps_like();

// The macOS major version the emulated MPS reports (TORCHDEVICE_MPS_MACOS: 13, 14 or 15, default
// 15): bfloat16 exists from 14. The stand-in's MPS-like mode refuses bfloat16, as macOS 13 does.
int macos_version();

// TORCHDEVICE_STANDIN_DEVICES (default 1); always 1 for the emulated MPS, as MPS.
c10::DeviceIndex device_count();

// TORCHDEVICE_STANDIN_MEMORY_LIMIT in bytes per device (default: the host's physical memory, which
// is what really backs the stand-in's allocations).
size_t default_memory_limit();

// Checks a device index against device_count(), in torch's words.
void check_device_index(c10::DeviceIndex index);

} // namespace torchdevice::standin
