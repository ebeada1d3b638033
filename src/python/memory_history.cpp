#include "memory_history.h"

#include <frameobject.h>

#include "python_thread.h"

#include <c10/util/Exception.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/version.h>

#include "cuda_api.h"
#include "patch.h"
#include "torchdevice/memory.h"
#include "torchdevice/memory_history.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>

#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

namespace history = torchdevice::memory_history;


// The allocating thread's Python stack, innermost first, as torch's snapshots list frames.
// torch's bindings release the GIL before dispatching, so the thread takes it back to read its
// own frames; threads that never ran Python have none.
history::Frames python_stack() {
  if (!thread_has_python_frames()) {
    return nullptr;
  }
  const PyGILState_STATE gil = PyGILState_Ensure();
  auto frames = std::make_shared<std::vector<history::Frame>>();
  try {
    PyFrameObject* frame = PyEval_GetFrame();
    Py_XINCREF(frame);
    while (frame != nullptr) {
      auto owned = py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(frame));
      auto code = py::reinterpret_steal<py::object>(
          reinterpret_cast<PyObject*>(PyFrame_GetCode(frame)));
      frames->push_back({code.attr("co_filename").cast<std::string>(),
                         PyFrame_GetLineNumber(frame), code.attr("co_name").cast<std::string>()});
      frame = PyFrame_GetBack(frame);
    }
  } catch (const py::error_already_set&) {
    // An unreadable frame ends the stack there.
  }
  PyGILState_Release(gil);
  return frames;
}

// The shared object or executable holding `address`, or null.
const void* object_of(const void* address) {
  Dl_info info{};
  return dladdr(address, &info) != 0 ? info.dli_fbase : nullptr;
}

// One C++ frame as what the dynamic symbol table tells without debug information: its object
// file, and the nearest exported symbol before it with the offset ("at::empty+0x4c"), as
// backtraces print them. Cached by address: a program allocates from few places.
history::Frame native_frame(void* address) {
  static std::mutex mutex;
  static auto* cache = new std::unordered_map<void*, history::Frame>();
  std::lock_guard<std::mutex> lock(mutex);
  const auto found = cache->find(address);
  if (found != cache->end()) {
    return found->second;
  }
  history::Frame frame{"??", 0, "??"};
  Dl_info info{};
  if (dladdr(address, &info) != 0) {
    frame.filename = info.dli_fname != nullptr ? info.dli_fname : "??";
    std::ostringstream name;
    if (info.dli_sname != nullptr) {
      int status = 0;
      char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
      name << (status == 0 ? demangled : info.dli_sname) << "+0x" << std::hex
           << (static_cast<const char*>(address) - static_cast<const char*>(info.dli_saddr));
      std::free(demangled);
    } else {
      name << "??+0x" << std::hex
           << (static_cast<const char*>(address) - static_cast<const char*>(info.dli_fbase));
    }
    frame.name = name.str();
  }
  return cache->emplace(address, frame).first->second;
}

// The allocating thread's C++ frames, innermost first: from torch's call into the allocator
// (torchdevice's own frames there skipped) up to the Python interpreter, whose frames
// python_stack() gives; a thread that never ran Python has C++ frames only.
std::vector<history::Frame> native_stack() {
  constexpr int kMaxFrames = 128;
  void* addresses[kMaxFrames];
  const int count = backtrace(addresses, kMaxFrames);
  const void* ours = object_of(reinterpret_cast<const void*>(&native_stack));
  const void* interpreter = object_of(reinterpret_cast<const void*>(&PyEval_GetFrame));
  int i = 0;
  while (i < count && object_of(addresses[i]) == ours) {
    ++i;
  }
  std::vector<history::Frame> frames;
  for (; i < count && object_of(addresses[i]) != interpreter; ++i) {
    frames.push_back(native_frame(addresses[i]));
  }
  return frames;
}

// stacks="all": the C++ frames, then the Python ones.
history::Frames native_and_python_stack() {
  auto frames = std::make_shared<std::vector<history::Frame>>(native_stack());
  if (const auto python = python_stack()) {
    frames->insert(frames->end(), python->begin(), python->end());
  }
  return frames;
}

void require_cpu_counter(const char* call) {
  TORCH_CHECK(target().type() == c10::DeviceType::CPU && cpu_memory_counter_installed(),
              "torch.cuda.memory.", call, " is not available on the ", target().str(),
              " target that torchdevice redirects CUDA to: allocation records are kept for the "
              "cpu target's counted allocations only");
}

// Both spellings: torch >= 2 (enabled="all"|"state"|None, context, stacks, max_entries, ...) and
// torch 1.13 (enabled: bool, record_context, trace_alloc_max_entries, ...).
void record_memory_history(const py::args& args, const py::kwargs& kwargs) {
  require_cpu_counter("_record_memory_history()");
  py::object enabled = args.size() > 0 ? args[0] : py::object(py::str("all"));
  if (kwargs.contains("enabled")) {
    enabled = kwargs["enabled"];
  }
  if (enabled.is_none() || (PyBool_Check(enabled.ptr()) && !enabled.cast<bool>())) {
    history::stop();
    return;
  }
  size_t max_entries = std::numeric_limits<size_t>::max();
  if (py::isinstance<py::str>(enabled) && enabled.cast<std::string>() == "state") {
    max_entries = 0;  // live blocks with their stacks, no trace
  } else if (py::isinstance<py::str>(enabled)) {
    TORCH_CHECK_VALUE(enabled.cast<std::string>() == "all",
                      "_record_memory_history: enabled must be None, 'state' or 'all', not '",
                      enabled.cast<std::string>(), "'");
  } else if (PyBool_Check(enabled.ptr())) {
    max_entries = 1;  // torch 1.13's trace_alloc_max_entries default
  }
  for (const char* key : {"max_entries", "trace_alloc_max_entries"}) {
    if (kwargs.contains(key)) {
      max_entries = kwargs[key].cast<size_t>();
    }
  }
  bool stacks = true;
  for (const char* key : {"context", "record_context"}) {
    if (kwargs.contains(key)) {
      const py::object value = kwargs[key];
      stacks = !(value.is_none() || (PyBool_Check(value.ptr()) && !value.cast<bool>()));
    }
  }
  // torch 2's default is "all"; torch 1.13 records Python stacks only.
  std::string kind = TORCH_VERSION_MAJOR >= 2 ? "all" : "python";
  if (kwargs.contains("stacks") && !kwargs["stacks"].is_none()) {
    kind = kwargs["stacks"].cast<std::string>();
    TORCH_CHECK_VALUE(kind == "python" || kind == "all",
                      "_record_memory_history: stacks must be 'python' or 'all', not '", kind, "'");
  }
  history::Gatherer gatherer = nullptr;
  if (stacks) {
    gatherer = kind == "all" ? &native_and_python_stack : &python_stack;
  }
  history::start(max_entries, gatherer);
}

py::list frames_of(const history::Frames& frames) {
  py::list out;
  if (frames) {
    for (const auto& frame : *frames) {
      py::dict entry;
      entry["filename"] = frame.filename;
      entry["line"] = frame.line;
      entry["name"] = frame.name;
      out.append(entry);
    }
  }
  return out;
}

py::dict trace_entry(const char* action, const history::Event& event) {
  py::dict entry;
  entry["action"] = action;
  entry["addr"] = event.address;
  entry["size"] = event.size;
  entry["stream"] = 0;
  entry["time_us"] = event.time_us;
  entry["frames"] = frames_of(event.frames);
  return entry;
}

// torch.cuda.memory._snapshot's layout. The CPU allocator caches nothing: each live block is a
// segment of its own, and each allocation or free is one of a segment too.
py::dict snapshot(const py::object& device, bool /*augment_with_fx_traces*/) {
  resolve(device);
  require_cpu_counter("_snapshot()");
  py::list segments;
  for (const auto& block : history::live_blocks()) {
    py::dict b;
    b["address"] = block.address;
    b["size"] = block.size;
    b["requested_size"] = block.size;
    b["state"] = "active_allocated";
    b["frames"] = frames_of(block.frames);
    py::dict segment;
    segment["device"] = 0;
    segment["address"] = block.address;
    segment["total_size"] = block.size;
    segment["allocated_size"] = block.size;
    segment["active_size"] = block.size;
    segment["requested_size"] = block.size;
    segment["stream"] = 0;
    segment["segment_type"] = block.size > (1 << 20) ? "large" : "small";
    segment["segment_pool_id"] = py::make_tuple(0, 0);
    segment["is_expandable"] = false;
    segment["frames"] = frames_of(block.frames);
    py::list blocks;
    blocks.append(b);
    segment["blocks"] = blocks;
    segments.append(segment);
  }
  py::list trace;
  for (const auto& event : history::trace()) {
    if (event.alloc) {
      trace.append(trace_entry("segment_alloc", event));
      trace.append(trace_entry("alloc", event));
    } else {
      trace.append(trace_entry("free_requested", event));
      trace.append(trace_entry("free_completed", event));
      trace.append(trace_entry("segment_free", event));
    }
  }
  py::list device_traces;
  device_traces.append(trace);
  py::dict out;
  out["segments"] = segments;
  out["device_traces"] = device_traces;
  out["allocator_settings"] = py::dict();
  return out;
}

}  // namespace

void define_memory_history(py::module_& cuda) {
  cuda.def("_record_memory_history", &record_memory_history);
  // FX trace augmentation maps generated code back to source; these frames are the source's.
  cuda.def("_snapshot", &snapshot, py::arg("device") = py::none(),
           py::arg("augment_with_fx_traces") = false);
  cuda.def("memory_snapshot",
           [](const py::args&, const py::kwargs&) -> py::object {
             return snapshot(py::none(), false)["segments"];
           });
}

void install_memory_history() {
  auto cuda = py::module_::import("torch.cuda");
  auto memory = py::module_::import("torch.cuda.memory");
  auto api = py::module_::import("torchdevice._C").attr("_cuda");
  for (const char* name : {"_record_memory_history", "_snapshot", "memory_snapshot"}) {
    for (const auto& owner : {cuda, memory}) {
      if (py::hasattr(owner, name)) {
        patch(owner, name, api.attr(name));
      }
    }
  }
}

void uninstall_memory_history() {
  history::stop();
}

}  // namespace torchdevice::python
