// torchdevice_standin._C: what the Python device module (torch.standin) needs from the backend.
#include "allocator.h"
#include "config.h"
#include "hooks.h"
#include "kernels.h"
#include "stream.h"

#include <torch/csrc/Generator.h>
#include <torch/extension.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>

namespace torchdevice::standin {
namespace {

// Holds a stream: work queued after it waits until release() (or until the gate is dropped),
// so a test can order host actions before queued work deterministically.
class Gate {
 public:
  explicit Gate(c10::Stream stream) {
    std::shared_future<void> opened = open_.get_future().share();
    enqueue(stream, [opened] { opened.wait(); });
  }
  ~Gate() { release(); }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  void release() {
    if (!released_) {
      released_ = true;
      open_.set_value();
    }
  }

 private:
  std::promise<void> open_;
  bool released_ = false;
};

py::dict stats_dict(c10::DeviceIndex index) {
  const auto stats = memory_stats(index);
  py::dict result;
  const auto add = [&](const char* name, const c10::CachingDeviceAllocator::StatArray& array) {
    const auto& all = array[static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE)];
    const std::string prefix = std::string(name) + ".all.";
    result[py::str(prefix + "current")] = all.current;
    result[py::str(prefix + "peak")] = all.peak;
    result[py::str(prefix + "allocated")] = all.allocated;
    result[py::str(prefix + "freed")] = all.freed;
  };
  add("allocation", stats.allocation);
  add("segment", stats.segment);
  add("active", stats.active);
  add("allocated_bytes", stats.allocated_bytes);
  add("reserved_bytes", stats.reserved_bytes);
  add("active_bytes", stats.active_bytes);
  add("requested_bytes", stats.requested_bytes);
  result["num_ooms"] = stats.num_ooms;
  result["num_device_alloc"] = stats.num_device_alloc;
  result["num_device_free"] = stats.num_device_free;
  return result;
}

} // namespace
} // namespace torchdevice::standin

PYBIND11_MODULE(_C, m) {
  namespace standin = torchdevice::standin;
  standin::register_hooks();
  standin::register_autocast();

  m.def("device_count", [] { return static_cast<int>(standin::device_count()); });
  m.def("current_device", [] { return static_cast<int>(standin::current_device()); });
  m.def("set_device", [](int index) {
    standin::set_current_device(static_cast<c10::DeviceIndex>(index));
  });
  m.def(
      "synchronize",
      [](int index) { standin::synchronize_device(static_cast<c10::DeviceIndex>(index)); },
      py::call_guard<py::gil_scoped_release>());
  m.def("memory_stats", [](int index) {
    return standin::stats_dict(static_cast<c10::DeviceIndex>(index));
  });
  m.def("reset_peak_memory_stats", [](int index) {
    standin::reset_peak_memory_stats(static_cast<c10::DeviceIndex>(index));
  });
  m.def("reset_accumulated_memory_stats", [](int index) {
    standin::reset_accumulated_memory_stats(static_cast<c10::DeviceIndex>(index));
  });
  m.def("memory_limit", [](int index) {
    return standin::memory_limit(static_cast<c10::DeviceIndex>(index));
  });
  m.def("set_memory_limit", [](int index, size_t bytes) {
    standin::set_memory_limit(static_cast<c10::DeviceIndex>(index), bytes);
  });
  m.def("default_generator", [](int index) {
    return py::reinterpret_steal<py::object>(THPGenerator_initDefaultGenerator(
        standin::default_generator(static_cast<c10::DeviceIndex>(index))));
  });
  // Like torch.cuda._sleep: keeps the current stream busy, here for a number of milliseconds.
  m.def("sleep", [](int index, double milliseconds) {
    const auto stream = standin::current_stream(static_cast<c10::DeviceIndex>(index));
    standin::enqueue(stream, [milliseconds] {
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(milliseconds));
    });
  });
  py::class_<standin::Gate>(m, "Gate").def("release", &standin::Gate::release);
  m.def("hold", [](int index) {
    return std::make_unique<standin::Gate>(
        standin::current_stream(static_cast<c10::DeviceIndex>(index)));
  });
}
