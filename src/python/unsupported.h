#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// The public torch.cuda functions torchdevice does not answer itself: each is wrapped so that it
// still runs torch's own code (where that works without CUDA, its result is kept), and a failure
// becomes a RuntimeError naming the call and the target, chained to torch's error. Installed
// last, so it wraps only what no other hook replaced.
void define_unsupported(pybind11::module_& cuda);
void install_unsupported();

}  // namespace torchdevice::python
