#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

namespace torchdevice::python {

// Replaces attributes of Python objects (torch.cuda.is_available, ...) and remembers the exact
// original object, or its absence, so that restore_all() puts every one back as it was.
// Callers hold the GIL.
void patch(pybind11::handle owner, const std::string& name, pybind11::object replacement);
// patch() for a method of torch.Tensor: `def` (METH_FASTCALL | METH_KEYWORDS, static storage)
// made a method descriptor of the type, called as torch's own methods are (no bound-method
// object, no argument tuple), and kept usable on lazy modules' uninitialized parameters where
// the method it replaces was.
void patch_tensor_method(PyMethodDef* def);

// Calls `method` (an unbound method, such as the one patch_tensor_method replaced) for `self`
// with the vectorcall arguments a METH_FASTCALL | METH_KEYWORDS function received; with the
// argument at `replace` (an index into them, as argument_index gives) swapped for `value`.
PyObject* call_method(PyObject* method, PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                      PyObject* kwnames, Py_ssize_t replace = -1, PyObject* value = nullptr);
// Where among such arguments the parameter at `position` (-1: keyword only) named `name` was
// passed: its index, or -1.
Py_ssize_t argument_index(Py_ssize_t nargs, PyObject* kwnames, Py_ssize_t position,
                          const char* name);
// patch() for a method of a class: `function` receives self first, as a method does (a plain
// builtin would not), and the replacement keeps the name, docstring and signature of what it
// replaces (functools.wraps): inspect.signature(torch.optim.AdamW), which libraries read to
// learn what torch offers, still describes torch's.
void wrap_method(pybind11::handle owner, const std::string& name, pybind11::cpp_function function);

void restore_all();
// The patched attributes in force, as "owner.name" (torchdevice info lists them).
std::vector<std::string> patched_names();

}  // namespace torchdevice::python
