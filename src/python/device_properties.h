#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// torch.cuda.get_device_properties for the target: every attribute torch's own
// _CudaDeviceProperties has in any supported version, with the target's values.
void define_device_properties(pybind11::module_& cuda);
void install_device_properties();

}  // namespace torchdevice::python
