#pragma once

#include <c10/core/Allocator.h>
#include <c10/core/CachingDeviceAllocator.h>

#include <optional>

// The stand-in's device memory: host memory it counts per device, with a byte limit past which
// allocations fail the way an accelerator's do.
namespace torchdevice::standin {

c10::Allocator& device_allocator();

c10::CachingDeviceAllocator::DeviceStats memory_stats(c10::DeviceIndex index);
void reset_peak_memory_stats(c10::DeviceIndex index);
void reset_accumulated_memory_stats(c10::DeviceIndex index);
size_t memory_limit(c10::DeviceIndex index);
void set_memory_limit(c10::DeviceIndex index, size_t bytes);

// The device that allocated `data`, if this allocator did.
std::optional<c10::DeviceIndex> device_of(const void* data);

// Host memory torch treats as pinned (plain mode only): what pin_memory() copies into.
c10::Allocator& pinned_allocator();
bool is_pinned(const void* data);

} // namespace torchdevice::standin
