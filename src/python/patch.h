#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

namespace torchdevice::python {

// Replaces attributes of Python objects (torch.cuda.is_available, ...) and remembers the exact
// original object, or its absence, so that restore_all() puts every one back as it was.
// Callers hold the GIL.
void patch(pybind11::handle owner, const std::string& name, pybind11::object replacement);
void restore_all();
// The patched attributes in force, as "owner.name" (torchdevice info lists them).
std::vector<std::string> patched_names();

}  // namespace torchdevice::python
