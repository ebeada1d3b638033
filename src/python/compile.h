#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// torch.compile (torch >= 2) on a target for which inductor has no code generator (a PrivateUse1
// device without one): the default backend becomes AOTAutograd with eager kernels ("aot_eager"),
// which runs anywhere torch runs, and the log says so once. Where inductor serves the target (the
// CPU, CUDA, MPS on recent torch) nothing is wrapped.
void install_compile();

}  // namespace torchdevice::python
