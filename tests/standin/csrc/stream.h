#pragma once

#include <c10/core/Stream.h>

#include <cstdint>
#include <functional>

// Streams that really run later: each stream is an ordered queue of host functions serviced by
// its own worker thread, so work queued on it completes after the call that queued it returns.
namespace torchdevice::standin {

// The calling thread's current device and, per device, its current stream (like CUDA's).
c10::DeviceIndex current_device();
void set_current_device(c10::DeviceIndex index);
c10::Stream current_stream(c10::DeviceIndex index);
c10::Stream exchange_stream(c10::Stream stream);

c10::Stream stream_from_pool(c10::DeviceIndex index);
c10::Stream new_stream(c10::DeviceIndex index);

// Runs `task` on the stream's worker once everything queued on it before has run. An exception
// from `task` is kept and raised by the next synchronization of that stream.
void enqueue(c10::Stream stream, std::function<void()> task);
// As enqueue, but an idle stream runs `task` at once, in the calling thread: how a device that has
// nothing queued reaches an event's record (a GPU signals it within microseconds), so that "is
// the device idle?" asked through an event has a prompt answer however loaded the host is.
void enqueue_or_run_if_idle(c10::Stream stream, std::function<void()> task);

// True when everything queued on the stream so far has run.
bool query_stream(c10::Stream stream);
// Blocks until everything queued on the stream so far has run.
void synchronize_stream(c10::Stream stream);
// Blocks until everything queued on any stream of the device so far has run.
void synchronize_device(c10::DeviceIndex index);

} // namespace torchdevice::standin
