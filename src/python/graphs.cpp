#include "graphs.h"

#include <c10/util/Exception.h>
#include <torch/csrc/utils/pybind.h>

#include "cuda_api.h"
#include "patch.h"
#include "torchdevice/graph_capture.h"

#include <atomic>
#include <fstream>
#include <string>
#include <vector>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

constexpr const char* kRecordingAttribute = "_torchdevice_recording";

// Pool ids as torch hands them out: (uid, 0) from graph_pool_handle(), (0, uid) for a graph's own.
std::atomic<uint64_t> next_pool_uid{1};

std::string no_cuda_graph_objects() {
  return " is not available on the " + target().str() +
         " target that torchdevice redirects CUDA to: its graphs are recorded ops, not "
         "cudaGraph_t objects (debug_dump() writes them)";
}

// What torch's CUDAGraph base class holds for one graph, for a graph recorded on the target: the
// capture records the ops it runs (graph_capture.h).
class Recording {
 public:
  explicit Recording(bool keep_graph) : keep_graph_(keep_graph) {}

  void capture_begin(const py::object& pool, const std::string& capture_error_mode) {
    TORCH_CHECK_VALUE(capture_error_mode == "global" || capture_error_mode == "thread_local" ||
                          capture_error_mode == "relaxed",
                      "Unknown capture error mode. Expected `global`, `thread_local`, or "
                      "`relaxed`, got ", capture_error_mode);
    graph_.begin();
    instantiated_ = false;
    // A pool only hints at sharing memory; each graph keeps its own tensors alive.
    pool_ = pool.is_none() ? py::make_tuple(0, next_pool_uid++) : py::tuple(pool);
  }

  // Torch's own capture_end (before 2.14's Python one splits it): end, instantiate unless kept.
  void capture_end() {
    graph_.end();
    instantiated_ = !keep_graph_;
  }
  void capture_end_pre() { graph_.end(); }

  // A recording needs no instantiation; this marks the point torch's hooks expect it at.
  void instantiate() {
    TORCH_CHECK(graph_.captured(),
                "instantiate() of a CUDAGraph that has not been captured (call capture_end)");
    instantiated_ = true;
  }

  void replay() {
    graph_.replay();
    instantiated_ = true;
  }

  void reset() {
    graph_.reset();
    instantiated_ = false;
    retained_pools_.clear();
  }

  py::tuple pool() const {
    TORCH_CHECK(pool_.has_value(), "pool() of a CUDAGraph that has never begun a capture");
    return *pool_;
  }
  py::list pools() const {
    py::list all;
    if (pool_.has_value()) {
      all.append(*pool_);
    }
    for (const auto& retained : retained_pools_) {
      all.append(retained);
    }
    return all;
  }
  void retain_pool(const py::object& pool) { retained_pools_.emplace_back(pool); }

  void enable_debug_mode() {
    debug_ = true;
    keep_graph_ = true;
  }

  // The recorded ops as a Graphviz chain, in the order replay() runs them (CUDA writes its DOT).
  void dump(const std::string& path, bool require_debug_mode) const {
    TORCH_CHECK(debug_ || !require_debug_mode,
                "debug_dump() needs enable_debug_mode() before the capture");
    TORCH_CHECK(graph_.captured(), "debug_dump() of a CUDAGraph that holds no capture");
    std::ofstream out(path);
    TORCH_CHECK(out, "debug_dump: cannot write ", path);
    const auto ops = graph_.describe();
    out << "digraph torchdevice_cuda_graph {\n  label=\"CUDA graph recorded by torchdevice on "
        << target().str() << ": " << graph_.replayed_ops() << " of " << ops.size()
        << " recorded ops replayed\";\n";
    for (size_t i = 0; i < ops.size(); ++i) {
      out << "  op" << i << " [label=\"" << ops[i] << "\"];\n";
      if (i > 0) {
        out << "  op" << i - 1 << " -> op" << i << ";\n";
      }
    }
    out << "}\n";
  }

  bool has_graph_exec() const { return instantiated_ && graph_.captured(); }
  size_t replayed_ops() const { return graph_.replayed_ops(); }

 private:
  CapturedGraph graph_;
  c10::optional<py::tuple> pool_;
  std::vector<py::object> retained_pools_;
  bool keep_graph_;
  bool instantiated_ = false;
  bool debug_ = false;
};

Recording& recording_of(const py::handle& graph) {
  TORCH_CHECK(py::hasattr(graph, kRecordingAttribute),
              "this torch.cuda.CUDAGraph was created before torchdevice was installed; create it "
              "again");
  return graph.attr(kRecordingAttribute).cast<Recording&>();
}

// A method of torch._C._CUDAGraph, bound to its instance as a Python function is: `body(self,
// arguments...)`. pybind11 takes a function named __init__ for a constructor of one of its
// classes, which the base is not: that one is named init.
template <typename Body, typename... Extra>
void patch_method(const py::object& base, const char* name, Body body, const Extra&... extra) {
  const bool init = std::string(name) == "__init__";
  py::cpp_function function(body, py::name(init ? "init" : name), py::arg("self"), extra...);
  wrap_method(base, name, std::move(function));
}

// Gives `cls` the methods of CUDA's C++ graph class, driving a Recording kept on each instance.
void give_graph_methods(const py::object& cls, const py::object& recording) {
  if (Py_TYPE(cls.ptr()) == &PyType_Type) {
    // A plain Python class (torch's dummy refuses to be created): instances need no C++ state.
    patch(cls, "__new__", py::cpp_function([](const py::object& type, const py::args&,
                                              const py::kwargs&) {
      return py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(&PyBaseObject_Type))
          .attr("__new__")(type);
    }, py::name("__new__")));
  }
  patch_method(cls, "__init__", [recording](const py::object& self, bool keep_graph) {
    self.attr(kRecordingAttribute) = recording(keep_graph);
  }, py::arg("keep_graph") = false);
  patch_method(cls, "capture_begin",
               [](const py::object& self, const py::object& pool,
                  const std::string& capture_error_mode, bool /*check_input_liveness*/) {
                 recording_of(self).capture_begin(pool, capture_error_mode);
               },
               py::arg("pool") = py::none(), py::arg("capture_error_mode") = "global",
               py::arg("check_input_liveness") = false);
  patch_method(cls, "capture_end", [](const py::object& self) { recording_of(self).capture_end(); });
  patch_method(cls, "capture_end_pre",
               [](const py::object& self) { recording_of(self).capture_end_pre(); });
  // The recorded ops are the graph's template and its executable both: nothing to finalize.
  patch_method(cls, "capture_end_post", [](const py::object&) {});
  patch_method(cls, "instantiate", [](const py::object& self) { recording_of(self).instantiate(); });
  patch_method(cls, "replay", [](const py::object& self) { recording_of(self).replay(); });
  patch_method(cls, "reset", [](const py::object& self) { recording_of(self).reset(); });
  patch_method(cls, "pool", [](const py::object& self) { return recording_of(self).pool(); });
  patch_method(cls, "pools", [](const py::object& self) { return recording_of(self).pools(); });
  patch_method(cls, "_retain_pool", [](const py::object& self, const py::object& pool) {
    recording_of(self).retain_pool(pool);
  }, py::arg("pool"));
  patch_method(cls, "enable_debug_mode",
               [](const py::object& self) { recording_of(self).enable_debug_mode(); });
  patch_method(cls, "debug_dump", [](const py::object& self, const std::string& path) {
    recording_of(self).dump(path, /*require_debug_mode=*/true);
  }, py::arg("debug_path"));
  for (const char* name : {"raw_cuda_graph", "raw_cuda_graph_exec"}) {
    const std::string call = std::string("torch.cuda.CUDAGraph.") + name + "()";
    patch_method(cls, name, [call](const py::object&) {
      TORCH_CHECK(false, call, no_cuda_graph_objects());
    });
  }
  auto property = py::module_::import("builtins").attr("property");
  patch(cls, "_has_graph_exec", property(py::cpp_function(
      [](const py::object& self) { return recording_of(self).has_graph_exec(); })));
}

}  // namespace

void define_graphs(py::module_& cuda) {
  py::class_<Recording>(cuda, "_GraphRecording")
      .def(py::init<bool>(), py::arg("keep_graph"))
      .def_property_readonly("replayed_ops", &Recording::replayed_ops);
  cuda.def("graph_pool_handle", []() { return py::make_tuple(next_pool_uid++, 0); });
  cuda.def("is_current_stream_capturing", []() { return capturing_graph() != nullptr; });
  // torch.cuda.graph empties the pinned host cache before a capture; the target pins nothing.
  cuda.def("_host_emptyCache", []() {});
  // Inductor asks before using CUDA graphs: the target's allocator caches nothing, so
  // torch.compile(mode="reduce-overhead") skips them, saying why, and runs the compiled code.
  cuda.def("_cuda_cudaCachingAllocator_is_enabled", []() { return false; });
  cuda.def("_dump_graph_dot", [](const py::object& graph, const std::string& path, bool) {
    recording_of(graph).dump(path, /*require_debug_mode=*/false);
  }, py::arg("cuda_graph"), py::arg("path"), py::kw_only(), py::arg("verbose") = true);
  cuda.def("_require_cuda_bindings", []() {
    TORCH_CHECK(false, "This torch.cuda.CUDAGraph API", no_cuda_graph_objects());
  });
}

// torch.cuda.CUDAGraph stays torch's own class, with every hook and callback of the running
// version: its base torch._C._CUDAGraph, on a torch without CUDA a dummy that refuses to be
// created, gets the methods CUDA's C++ class has.
void install_graphs() {
  auto graphs = py::module_::import("torch.cuda.graphs");
  auto torch_c = py::module_::import("torch._C");
  auto api = py::module_::import("torchdevice._C").attr("_cuda");
  const py::object recording = api.attr("_GraphRecording");
  const py::object base = torch_c.attr("_CUDAGraph");
  if (Py_TYPE(base.ptr()) == &PyType_Type) {
    give_graph_methods(base, recording);
  } else {
    // A torch built with CUDA, on a machine without it: the base is CUDA's C++ class, which
    // cannot be created here. torch.cuda.CUDAGraph becomes a plain class with the same methods
    // (torch 2.14's Python-side hooks live on torch's subclass, so not on this one).
    auto builtins = py::module_::import("builtins");
    py::dict body;
    body["__module__"] = "torch.cuda";
    py::object own = builtins.attr("type")("CUDAGraph", py::make_tuple(builtins.attr("object")), body);
    give_graph_methods(own, recording);
    patch(py::module_::import("torch.cuda"), "CUDAGraph", own);
    patch(graphs, "CUDAGraph", own);
  }
  for (const char* name : {"_graph_pool_handle", "_cuda_isCurrentStreamCapturing"}) {
    const char* ours = name[1] == 'g' ? "graph_pool_handle" : "is_current_stream_capturing";
    patch(torch_c, name, api.attr(ours));
    patch(graphs, name, api.attr(ours));
  }
  // torch 2.14's Python-side graph APIs that go to cuda-bindings: the dump writes the recording,
  // the rest say why they cannot work.
  for (const char* name : {"_dump_graph_dot", "_require_cuda_bindings"}) {
    if (py::hasattr(graphs, name)) {
      patch(graphs, name, api.attr(name));
    }
  }
  for (const char* name : {"_host_emptyCache", "_cuda_cudaCachingAllocator_is_enabled"}) {
    if (!py::hasattr(torch_c, name)) {
      patch(torch_c, name, api.attr(name));
    }
  }
}

void uninstall_graphs() {
  deregister_graph_capture();
}

}  // namespace torchdevice::python
