#include "torchdevice/event.h"

#include <c10/util/Exception.h>

#include <chrono>

namespace torchdevice {

void HostEvent::record() {
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  stamp_ns_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(),
                  std::memory_order_release);
}

double HostEvent::elapsed_ms(const HostEvent& end) const {
  TORCH_CHECK(enable_timing_ && end.enable_timing_,
              "Both events must be created with argument 'enable_timing=True'.");
  TORCH_CHECK(recorded() && end.recorded(),
              "Both events must be recorded before calculating elapsed time.");
  const int64_t ns = end.stamp_ns_.load(std::memory_order_acquire) -
                     stamp_ns_.load(std::memory_order_acquire);
  return static_cast<double>(ns) / 1e6;
}

}  // namespace torchdevice
