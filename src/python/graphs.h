#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// CUDA graphs on the target: torch's own torch.cuda.CUDAGraph (hooks and all), torch.cuda.graph,
// make_graphed_callables, graph_pool_handle and is_current_stream_capturing, running on the
// methods installed on its base torch._C._CUDAGraph and on torch._C's graph functions. A capture
// records the ops it runs and replay() runs them again (torchdevice/graph_capture.h).
void define_graphs(pybind11::module_& cuda);
void install_graphs();
void uninstall_graphs();

}  // namespace torchdevice::python
