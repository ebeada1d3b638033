#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// The redirect report's Python side: finds the user's call site by walking the Python frames
// (only while the report is on, or for a request the float64 policy narrowed), and defines
// torchdevice._C._report_* for the package.
void define_report(pybind11::module_& m);

// Lets the core resolve call sites: installed with the redirect, so a narrowed request can be
// warned about at its call site with the report off.
void install_site_resolver();

}  // namespace torchdevice::python
