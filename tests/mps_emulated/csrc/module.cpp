// torchdevice_mps_emulated._C: loading it registers the emulated MPS (guard, allocator, hooks,
// kernels: static registrations in the other files); what it defines is for tests.
#include "../../standin/csrc/allocator.h"
#include "../../standin/csrc/config.h"
#include "../../standin/csrc/stream.h"

#include <torch/extension.h>

#include <chrono>
#include <thread>

PYBIND11_MODULE(_C, m) {
  namespace standin = torchdevice::standin;
  m.def("macos_version", &standin::macos_version);
  // How many device allocations were ever made: a test's evidence that nothing used the device.
  m.def("allocations", [] {
    const auto stats = standin::memory_stats(0);
    return stats.allocation[static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE)]
        .allocated;
  });
  // Like torch.cuda._sleep: keeps MPS's stream busy for a number of milliseconds, so a test can
  // see work that is queued and not yet done.
  m.def("sleep", [](double milliseconds) {
    standin::enqueue(standin::current_stream(0), [milliseconds] {
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(milliseconds));
    });
  });
}
