#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// The redirect report's Python side: finds the user's call site by walking the Python frames
// (only while the report is on), and defines torchdevice._C._report_* for the package.
void define_report(pybind11::module_& m);

}  // namespace torchdevice::python
