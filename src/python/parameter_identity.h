#pragma once

namespace torchdevice::python {

// model.cuda() keeps each Parameter object, as on CUDA: an optimizer built before the move still
// updates the model, and parameters the model shares (tied input and output embeddings) stay
// one. torch moves a parameter in place (`param.data = moved`) only between tensors of CPU,
// CUDA, MPS, XPU, HPU and HIP; a move to or from a PrivateUse1 device makes a new Parameter per
// holder instead, so CUDA code would silently train a copy the optimizer never sees, with its
// ties cut. Where the target is such a device, Module._apply swaps each new Parameter's contents
// into the old object (torch.utils.swap_tensors, as torch's own opt-in swap path does) and puts
// that object back in every module that held it. Where a swap is refused (an autograd graph or a
// weak reference still holds the old parameter), torch's new Parameter stays, shared again by
// every holder: an optimizer built before such a move holds the old one, as torch leaves it.
// Elsewhere, and under torch's overwrite_module_params_on_conversion, nothing is changed.
void install_parameter_identity();

}  // namespace torchdevice::python
