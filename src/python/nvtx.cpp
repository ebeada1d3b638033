#include "nvtx.h"

#include "patch.h"

#include <atomic>
#include <cstdint>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// NVTX keeps a push/pop range stack per thread.
thread_local int depth = 0;

}  // namespace

void define_nvtx(py::module_& cuda) {
  auto nvtx = cuda.def_submodule("nvtx", "torch.cuda.nvtx as documented no-ops");
  // NVTX returns the zero-based depth of the range pushed, and of the range popped (-1: none).
  nvtx.def("range_push", [](const py::object&) { return depth++; }, py::arg("msg"));
  nvtx.def("range_pop", []() { return depth > 0 ? --depth : -1; });
  nvtx.def("range_start", [](const py::object&) {
    static std::atomic<uint64_t> next_id{1};
    return next_id.fetch_add(1);
  }, py::arg("msg"));
  nvtx.def("range_end", [](const py::object&) {}, py::arg("range_id"));
  nvtx.def("mark", [](const py::object&) {}, py::arg("msg"));
}

void install_nvtx() {
  auto nvtx = py::module_::import("torch.cuda.nvtx");
  auto api = py::module_::import("torchdevice._C").attr("_cuda").attr("nvtx");
  // torch's own nvtx.range context manager calls these through the module, so it works too.
  for (const char* name : {"range_push", "range_pop", "range_start", "range_end", "mark"}) {
    patch(nvtx, name, api.attr(name));
  }
}

}  // namespace torchdevice::python
