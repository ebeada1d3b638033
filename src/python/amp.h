#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// Makes torch's autocast and GradScaler classes act on the target when code names a redirected
// device type ('cuda'): their constructors get the target's type and, for autocast, the closest
// dtype the target can autocast to (warned once per install). Torch 1.13's CUDA GradScaler also
// gets a `scale` and a replicator without its is_cuda assertions. Callers hold the GIL.
void install_amp();
// Forgets which dtype substitutions were warned about; patches are undone by restore_all().
void uninstall_amp();

// torchdevice._C._amp: the replacements install_amp() puts in place.
void define_amp(pybind11::module_& m);

}  // namespace torchdevice::python
