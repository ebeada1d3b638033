#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// Maps c10 errors to the Python exceptions torch itself raises for them (RuntimeError,
// ValueError, TypeError, IndexError), with the message but without the C++ backtrace.
void register_error_translator();

}  // namespace torchdevice::python
