#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// torch.cuda.CUDAGraph, graph_pool_handle and is_current_stream_capturing for the target: a
// capture records the ops it runs and replay() runs them again (torchdevice/graph_capture.h).
// torch's own torch.cuda.graph and make_graphed_callables run on top of them unchanged.
void define_graphs(pybind11::module_& cuda);
void install_graphs();
void uninstall_graphs();

}  // namespace torchdevice::python
