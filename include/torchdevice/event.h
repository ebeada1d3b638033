#pragma once

#include <atomic>
#include <cstdint>

namespace torchdevice {

// A CUDA-style event on a target whose work is complete when it is submitted (the CPU), or that
// was synchronized before recording: the moment of record() is when all earlier work finished,
// so a host timestamp taken then is the event's true time.
class HostEvent {
 public:
  explicit HostEvent(bool enable_timing) : enable_timing_(enable_timing) {}

  void record();
  bool recorded() const { return stamp_ns_.load(std::memory_order_acquire) >= 0; }
  bool enable_timing() const { return enable_timing_; }
  // Milliseconds from this event to `end`, with torch's checks: both created with timing
  // enabled, both recorded.
  double elapsed_ms(const HostEvent& end) const;

 private:
  bool enable_timing_;
  std::atomic<int64_t> stamp_ns_{-1};  // steady_clock time of the last record(), -1 if none
};

}  // namespace torchdevice
