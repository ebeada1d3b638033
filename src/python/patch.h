#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

namespace torchdevice::python {

// Replaces attributes of Python objects (torch.cuda.is_available, ...) and remembers the exact
// original object, or its absence, so that restore_all() puts every one back as it was.
// Callers hold the GIL.
void patch(pybind11::handle owner, const std::string& name, pybind11::object replacement);
// patch() for a method of torch.Tensor: `function` (a C function taking self first) bound as
// a method, and kept usable on lazy modules' uninitialized parameters where the method it
// replaces was.
void patch_tensor_method(const std::string& name, const pybind11::object& function);
void restore_all();
// The patched attributes in force, as "owner.name" (torchdevice info lists them).
std::vector<std::string> patched_names();

}  // namespace torchdevice::python
