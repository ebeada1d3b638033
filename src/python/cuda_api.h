#pragma once

#include <c10/core/Device.h>
#include <pybind11/pybind11.h>

namespace torchdevice::python {

// Replaces the torch.cuda queries (availability, devices, seeding, lazy init, the device context
// manager) with functions that answer for the redirect target. Only called when CUDA itself is
// redirected: on a machine with CUDA, torch.cuda is never touched.
void install_cuda_api();
// Defines the replacements as torchdevice._C._cuda.
void define_cuda_api(pybind11::module_& m);
// Called after the patched attributes are restored: re-arms torch's C++ lazy-init flag so the
// original "Torch not compiled with CUDA enabled" error comes back.
void uninstall_cuda_api();

// The redirect target, which every CUDA index means.
c10::Device target();
// Resolves the `device` argument the torch.cuda functions take: None, an index, a device string
// or a torch.device. A torch.device('cuda') already reads as the target, so both types pass.
c10::DeviceIndex resolve(const pybind11::handle& arg, bool optional = true);

}  // namespace torchdevice::python
