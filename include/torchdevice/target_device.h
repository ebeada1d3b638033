#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include "torchdevice/memory.h"

#include <memory>
#include <vector>

// What torchdevice asks of the target device, in one place. Each question goes to torch's
// device-generic interfaces, so every accelerator torch knows (MPS, CUDA, XPU, HPU, a PrivateUse1
// device) answers the same way: its device guard (synchronize, events and their timing) and its
// device allocator (memory statistics). Where the running torch has no generic route, the answer
// says so (false, nullopt) and the Python layer asks the backend's own module instead
// (src/python/device_module.cpp); the CPU target's statistics come from torchdevice's counter.
namespace torchdevice::target_device {

// Blocks until all work queued on `device` has finished. False where this torch's device guard
// cannot synchronize a whole device (torch < 2.1).
bool synchronize(c10::Device device);

// Whether all work queued on `device`'s current stream has finished, without waiting: the
// guard's own stream query where the backend has one; the CPU's work is done when submitted.
bool query(c10::Device device);

// The statistics of the target's own allocator, where it is a c10::DeviceAllocator (torch >= 2.9
// for the accelerators that implement it). Peaks are the allocator's own.
c10::optional<MemoryStats> allocator_stats(c10::Device device);
// Each false where the target's allocator has no device-generic route.
bool reset_peak(c10::Device device);
bool reset_accumulated(c10::Device device);
bool empty_cache(c10::Device device);

// A CUDA-style event on the target: the guard's own event where the backend has events with
// timing (recorded on the device's current stream, timed by the device), else a host timestamp
// taken once all earlier work has finished (the CPU, whose work is done when submitted).
class Event {
 public:
  virtual ~Event() = default;
  virtual void record() = 0;
  virtual bool query() const = 0;
  virtual void synchronize() const = 0;
  virtual bool recorded() const = 0;
  // Milliseconds from this event to `end` (made by the same make_event), with torch's checks.
  virtual double elapsed_ms(const Event& end) const = 0;
};

std::unique_ptr<Event> make_event(c10::Device device, bool enable_timing);

// Whether `device`'s guard has events with timing: what make_event uses for it.
bool has_device_events(c10::Device device);

// The dtypes autocast on `type` takes in the running torch: none where torch has no autocast for
// the type (at::autocast::is_autocast_available, torch >= 2.4; before: CPU, CUDA, XPU); torch's
// own list where its code fixes one (MPS: float16 from 2.5, bfloat16 from 2.6 and only where MPS
// reports macOS >= 14); nullopt where the backend answers for itself
// (get_amp_supported_dtype in its module: a PrivateUse1 backend), which the Python layer asks.
c10::optional<std::vector<c10::ScalarType>> autocast_dtypes(c10::DeviceType type);

// Whether `type` has page-locked host memory for its copies: its hooks' pinned allocator, which
// torch's pin_memory() uses (torch >= 2.6), where it hands out host (CPU-tagged) memory. False for
// the CPU, which has nothing to page-lock.
bool has_pinned_memory(c10::DeviceType type);

// Whether a non_blocking copy from pageable (unpinned) host memory to `device` may still read
// its source after returning. CUDA stages pageable memory before the call returns and the CPU
// copies at once; any other accelerator is taken to read it later (MPS does: pytorch#139550).
bool may_defer_pageable_copies(c10::Device device);

// Blocks until the work queued on `device`'s current stream has finished: the guard's stream
// synchronisation where the backend implements one (MPS's guard does not), else the whole
// device's. False where neither exists (torch < 2.1), as synchronize().
bool synchronize_current_stream(c10::Device device);

// Whether `error` is a device running out of memory, in the words of any backend torch has (its
// OutOfMemoryError type, the CPU allocator's and MPS's wording, MPS's "Invalid buffer size").
bool is_out_of_memory(const c10::Error& error);

}  // namespace torchdevice::target_device
