#include "streams.h"

#include <c10/util/Exception.h>
#include <torch/csrc/Device.h>
#include <torch/csrc/utils/pybind.h>

#include "cuda_api.h"
#include "patch.h"
#include "device_module.h"
#include "torchdevice/target_device.h"

#include <atomic>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// Waiting on the device with the GIL held would deadlock where the device's threads need it
// (releasing a tensor that has a Python object), so these calls release it, as torch's do.
using no_gil = py::call_guard<py::gil_scoped_release>;

class Stream {
 public:
  Stream(int64_t id, int priority) : id_(id), priority_(priority) {}

  int64_t id() const { return id_; }
  int priority() const { return priority_; }

 private:
  int64_t id_;  // 0 is the default stream, as CUDA's null stream
  int priority_;
};

using StreamPtr = std::shared_ptr<Stream>;

StreamPtr default_stream() {
  // Never destroyed: Python may hold it past static destruction.
  static auto* stream = new StreamPtr(std::make_shared<Stream>(0, 0));
  return *stream;
}

std::atomic<int> sync_debug_mode{0};

// Per thread, as CUDA's current stream is.
thread_local StreamPtr current;

// The streams that `with stream:` blocks replaced, innermost last.
thread_local std::vector<StreamPtr> entered;

StreamPtr current_stream() {
  return current ? current : default_stream();
}

StreamPtr new_stream(const py::object& device, int priority) {
  static std::atomic<int64_t> next_id{1};
  resolve(device);
  return std::make_shared<Stream>(next_id.fetch_add(1), priority);
}

py::object target_device() {
  return py::reinterpret_steal<py::object>(THPDevice_New(target()));
}

std::string stream_repr(const Stream& s) {
  std::ostringstream out;
  out << "<torch.cuda.Stream device=" << target().str() << " cuda_stream=0x" << std::hex << s.id()
      << ">";
  return out.str();
}

class Event {
 public:
  Event(bool enable_timing, bool blocking, bool interprocess)
      : event_(target_device::make_event(target(), enable_timing)), blocking_(blocking) {
    TORCH_CHECK(!interprocess, "torch.cuda.Event(interprocess=True) is not available on the ",
                target().str(), " target that torchdevice redirects CUDA to: there is no CUDA IPC");
  }

  // Any stream: they all share the target's current queue (pybind11 refuses non-streams).
  void record(const c10::optional<StreamPtr>&) { event_->record(); }
  bool query() const { return event_->query(); }
  void synchronize() const { event_->synchronize(); }
  double elapsed_time(const Event& end) const { return event_->elapsed_ms(*end.event_); }
  bool recorded() const { return event_->recorded(); }
  bool blocking() const { return blocking_; }

 private:
  std::unique_ptr<target_device::Event> event_;
  bool blocking_;
};

// torch.cuda.stream(s) / StreamContext(s): `s` is current inside the block; None changes nothing.
class StreamContext {
 public:
  explicit StreamContext(c10::optional<StreamPtr> stream) : stream_(std::move(stream)) {}
  StreamPtr enter() {
    previous_ = current_stream();
    if (stream_) {
      current = *stream_;
    }
    return current_stream();
  }
  bool exit(const py::args&) {
    if (stream_) {
      current = previous_;
    }
    return false;
  }

 private:
  c10::optional<StreamPtr> stream_;
  StreamPtr previous_;
};

}  // namespace

void define_streams(py::module_& cuda) {
  py::class_<Stream, StreamPtr>(cuda, "Stream")
      .def(py::init([](const py::object& device, int priority, const py::kwargs&) {
             return new_stream(device, priority);
           }),
           py::arg("device") = py::none(), py::arg("priority") = 0)
      .def_property_readonly("device", [](const Stream&) { return target_device(); })
      .def_property_readonly("device_index", [](const Stream&) { return 0; })
      .def_property_readonly("device_type",
                             [](const Stream&) { return static_cast<int>(target().type()); })
      .def_property_readonly("stream_id", &Stream::id)
      .def_property_readonly("cuda_stream", &Stream::id)
      .def_property_readonly("priority", &Stream::priority)
      .def_static("priority_range", []() { return py::make_tuple(0, -1); })
      // Every stream is the target's one queue: done when its current stream has finished.
      .def("query", [](const Stream&) { return target_device::query(target()); })
      .def("synchronize", [](const Stream&) { synchronize_target(); })
      // One ordered queue: work on every stream already follows the event / the other stream.
      .def("wait_event", [](const Stream&, const Event&) {}, py::arg("event"))
      .def("wait_stream", [](const Stream&, const Stream&) {}, py::arg("stream"))
      .def("record_event",
           [](const StreamPtr& self, const py::object& event) {
             py::object e = event.is_none() ? py::module_::import("torch.cuda").attr("Event")()
                                            : event;
             e.attr("record")(self);
             return e;
           },
           py::arg("event") = py::none())
      .def("__eq__", [](const Stream& a, const py::object& b) {
        return py::isinstance<Stream>(b) && b.cast<const Stream&>().id() == a.id();
      })
      .def("__hash__", [](const Stream& s) { return py::hash(py::make_tuple(s.id(), target().str())); })
      .def("__repr__", &stream_repr)
      .def("__enter__", [](const StreamPtr& self) {
        entered.push_back(current_stream());
        current = self;
        return self;
      })
      .def("__exit__", [](const Stream&, const py::args&) {
        TORCH_CHECK(!entered.empty(), "torch.cuda.Stream.__exit__ without __enter__");
        current = entered.back();
        entered.pop_back();
        return false;
      });

  py::class_<Event>(cuda, "Event")
      // Without the GIL: the first Event() learns what the device's events can do by waiting on
      // one, and the device may be finishing work whose release needs the GIL.
      .def(py::init<bool, bool, bool>(), py::arg("enable_timing") = false,
           py::arg("blocking") = false, py::arg("interprocess") = false, no_gil())
      .def("record", &Event::record, py::arg("stream") = py::none(), no_gil())
      .def("wait", [](const Event&, const c10::optional<StreamPtr>&) {}, py::arg("stream") = py::none())
      .def("query", &Event::query)
      .def("synchronize", &Event::synchronize, no_gil())
      .def("elapsed_time", &Event::elapsed_time, py::arg("end_event"), no_gil())
      .def("ipc_handle", [](const Event&) {
        TORCH_CHECK(false, "torch.cuda.Event.ipc_handle() is not available on the ", target().str(),
                    " target that torchdevice redirects CUDA to: there is no CUDA IPC");
      })
      .def("__repr__", [](const Event& e) {
        return std::string("<torch.cuda.Event ") + (e.recorded() ? "recorded" : "uninitialized") +
               " on " + target().str() + ">";
      });

  py::class_<StreamContext, std::shared_ptr<StreamContext>>(cuda, "StreamContext")
      .def(py::init<c10::optional<StreamPtr>>(), py::arg("stream"))
      .def("__enter__", &StreamContext::enter)
      .def("__exit__", &StreamContext::exit);

  const auto device = py::arg("device") = py::none();
  cuda.def("current_stream", [](const py::object& d) { resolve(d); return current_stream(); }, device);
  cuda.def("default_stream", [](const py::object& d) { resolve(d); return default_stream(); }, device);
  cuda.def("set_stream", [](c10::optional<StreamPtr> s) { if (s) current = *s; }, py::arg("stream"));
  // Sync debug mode warns about CUDA synchronizations; the target has none to warn about, so the
  // mode is kept (for get_sync_debug_mode) and has no effect.
  cuda.def("set_sync_debug_mode", [](const py::object& mode) {
    int value = 0;
    if (py::isinstance<py::str>(mode)) {
      const auto name = mode.cast<std::string>();
      TORCH_CHECK(name == "default" || name == "warn" || name == "error",
                  "invalid value of debug_mode, expected one of `default`, `warn`, `error`");
      value = name == "default" ? 0 : (name == "warn" ? 1 : 2);
    } else {
      value = mode.cast<int>();
    }
    sync_debug_mode = value;
  }, py::arg("debug_mode"));
  cuda.def("get_sync_debug_mode", []() { return sync_debug_mode.load(); });
  cuda.def("stream", [](c10::optional<StreamPtr> s) { return std::make_shared<StreamContext>(std::move(s)); },
           py::arg("stream"));
}

void install_streams() {
  auto cuda = py::module_::import("torch.cuda");
  auto streams = py::module_::import("torch.cuda.streams");
  auto api = py::module_::import("torchdevice._C").attr("_cuda");
  for (const char* name : {"Stream", "Event", "StreamContext", "current_stream", "default_stream",
                           "set_stream", "stream",
                           "set_sync_debug_mode", "get_sync_debug_mode"}) {
    patch(cuda, name, api.attr(name));
  }
  for (const char* name : {"Stream", "Event"}) {
    patch(streams, name, api.attr(name));
  }
}

}  // namespace torchdevice::python
