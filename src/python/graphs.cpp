#include "graphs.h"

#include <c10/util/Exception.h>
#include <torch/csrc/utils/pybind.h>

#include "cuda_api.h"
#include "patch.h"
#include "torchdevice/graph_capture.h"

#include <atomic>
#include <fstream>
#include <memory>
#include <string>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// Pool ids as torch hands them out: (uid, 0) from graph_pool_handle(), (0, uid) for a graph's own.
std::atomic<uint64_t> next_pool_uid{1};

[[noreturn]] void no_cuda_graph_object(const std::string& call) {
  TORCH_CHECK(false, "torch.cuda.CUDAGraph.", call, " is not available on the ", target().str(),
              " target that torchdevice redirects CUDA to: its graphs are recorded ops, not "
              "cudaGraph_t objects");
}

// torch.cuda.CUDAGraph for the target: the capture records the ops it runs (graph_capture.h).
class Graph {
 public:
  explicit Graph(bool keep_graph) : keep_graph_(keep_graph) {}

  void capture_begin(const py::object& pool, const std::string& capture_error_mode,
                     bool /*check_input_liveness*/) {
    TORCH_CHECK_VALUE(capture_error_mode == "global" || capture_error_mode == "thread_local" ||
                          capture_error_mode == "relaxed",
                      "Unknown capture error mode. Expected `global`, `thread_local`, or "
                      "`relaxed`, got ", capture_error_mode);
    if (pool.is_none()) {
      pool_ = py::make_tuple(0, next_pool_uid++);
    } else {
      // A pool only hints at sharing memory; each graph keeps its own tensors alive.
      pool_ = py::tuple(py::getattr(pool, "id", pool));
    }
    graph_.begin();
  }

  void capture_end() { graph_.end(); }
  void replay() { graph_.replay(); }
  void reset() { graph_.reset(); }

  py::tuple pool() const {
    TORCH_CHECK(pool_.has_value(), "pool() of a CUDAGraph that has never begun a capture");
    return *pool_;
  }

  void debug_dump(const std::string& path) const {
    TORCH_CHECK(debug_, "debug_dump() needs enable_debug_mode() before the capture");
    std::ofstream out(path);
    TORCH_CHECK(out, "debug_dump: cannot write ", path);
    out << "torchdevice CUDA graph on " << target().str() << ": " << graph_.describe().size()
        << " recorded ops, " << graph_.replayed_ops() << " replayed\n";
    for (const auto& line : graph_.describe()) {
      out << line << "\n";
    }
  }

  void enable_debug_mode() { debug_ = true; }
  bool keep_graph() const { return keep_graph_; }
  size_t replayed_ops() const { return graph_.replayed_ops(); }

 private:
  CapturedGraph graph_;
  c10::optional<py::tuple> pool_;
  bool keep_graph_;
  bool debug_ = false;
};

}  // namespace

void define_graphs(py::module_& cuda) {
  py::class_<Graph>(cuda, "CUDAGraph")
      .def(py::init<bool>(), py::arg("keep_graph") = false)
      .def("capture_begin", &Graph::capture_begin, py::arg("pool") = py::none(),
           py::arg("capture_error_mode") = "global", py::arg("check_input_liveness") = false)
      .def("capture_end", &Graph::capture_end)
      // A recording needs no instantiation: it is ready when the capture ends.
      .def("instantiate", [](const Graph&) {})
      .def("replay", &Graph::replay)
      .def("reset", &Graph::reset)
      .def("pool", &Graph::pool)
      .def("enable_debug_mode", &Graph::enable_debug_mode)
      .def("debug_dump", &Graph::debug_dump, py::arg("debug_path"))
      .def("raw_cuda_graph", [](const Graph&) { no_cuda_graph_object("raw_cuda_graph()"); })
      .def("raw_cuda_graph_exec",
           [](const Graph&) { no_cuda_graph_object("raw_cuda_graph_exec()"); })
      .def_property_readonly("_replayed_ops", &Graph::replayed_ops)
      .def("__repr__", [](const Graph& g) {
        return "<torch.cuda.CUDAGraph recorded by torchdevice on " + target().str() + ", " +
               std::to_string(g.replayed_ops()) + " ops to replay>";
      });
  cuda.def("graph_pool_handle", []() { return py::make_tuple(next_pool_uid++, 0); });
  cuda.def("is_current_stream_capturing", []() { return capturing_graph() != nullptr; });
  // torch.cuda.graph empties the pinned host cache before a capture; the target pins nothing.
  cuda.def("_host_emptyCache", []() {});
  // Inductor asks before using CUDA graphs: the target's allocator caches nothing, so
  // torch.compile(mode="reduce-overhead") skips them, saying why, and runs the compiled code.
  cuda.def("_cuda_cudaCachingAllocator_is_enabled", []() { return false; });
}

void install_graphs() {
  auto cuda = py::module_::import("torch.cuda");
  auto graphs = py::module_::import("torch.cuda.graphs");
  auto api = py::module_::import("torchdevice._C").attr("_cuda");
  for (const char* name : {"CUDAGraph", "graph_pool_handle", "is_current_stream_capturing"}) {
    patch(cuda, name, api.attr(name));
    patch(graphs, name, api.attr(name));
  }
  auto torch_c = py::module_::import("torch._C");
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
