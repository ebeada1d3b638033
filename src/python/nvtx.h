#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// torch.cuda.nvtx: profiler annotations for NVIDIA's tools, which do not exist on the target.
// Documented no-ops that keep NVTX's return values (range depth, range ids), so annotated code
// runs unchanged.
void define_nvtx(pybind11::module_& cuda);
void install_nvtx();

}  // namespace torchdevice::python
