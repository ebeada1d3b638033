#include "non_blocking.h"

#include <c10/util/Exception.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include "device_module.h"
#include "patch.h"
#include "torchdevice/state.h"
#include "torchdevice/target_device.h"

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// The methods wrapped, as they were when installed (Tensor.cuda may already be torchdevice's
// own, src/python/device.cpp). Strong references, released on uninstall.
PyObject* original_to = nullptr;
PyObject* original_cuda = nullptr;

// non_blocking=True, by keyword or as the first positional bool: the signatures of Tensor.to
// and Tensor.cuda put it before any other bool (copy).
bool asks_non_blocking(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  const Py_ssize_t keyword = argument_index(nargs, kwnames, -1, "non_blocking");
  if (keyword >= 0) {
    return PyObject_IsTrue(args[keyword]) == 1;
  }
  for (Py_ssize_t i = 0; i < nargs; ++i) {
    if (PyBool_Check(args[i])) {
      return args[i] == Py_True;
    }
  }
  return false;
}

bool lands_on_target(const at::Tensor& result) {
  const Redirect redirect = current_redirect();
  return !redirect.empty() && result.device() == redirect.target();
}

// Waits for the copy just queued on the result's current stream, with the GIL released as in
// synchronize_target().
void complete(c10::Device device) {
  bool done = false;
  {
    py::gil_scoped_release no_gil;
    done = target_device::synchronize_current_stream(device);
  }
  if (!done) {
    synchronize_target();
  }
}

PyObject* completing(PyObject* original, PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                     PyObject* kwnames) {
  if (!asks_non_blocking(args, nargs, kwnames) || !THPVariable_Check(self)) {
    return call_method(original, self, args, nargs, kwnames);
  }
  const at::Tensor& source = THPVariable_Unpack(self);
  bool pageable = false;
  try {
    pageable = source.is_cpu() && !source.is_pinned();
  } catch (const c10::Error& error) {
    PyErr_SetString(PyExc_RuntimeError, error.what_without_backtrace());
    return nullptr;
  }
  PyObject* result = call_method(original, self, args, nargs, kwnames);
  if (result == nullptr || !pageable || !THPVariable_Check(result) ||
      !lands_on_target(THPVariable_Unpack(result))) {
    return result;
  }
  try {
    complete(THPVariable_Unpack(result).device());
  } catch (py::error_already_set& error) {
    Py_DECREF(result);
    error.restore();
    return nullptr;
  } catch (const c10::Error& error) {
    Py_DECREF(result);
    PyErr_SetString(PyExc_RuntimeError, error.what_without_backtrace());
    return nullptr;
  }
  return result;
}

PyObject* to_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  return completing(original_to, self, args, nargs, kwnames);
}

PyObject* cuda_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                      PyObject* kwnames) {
  return completing(original_cuda, self, args, nargs, kwnames);
}

// PyCFunction is the generic slot type; the flags tell Python the real signature.
PyMethodDef to_def = {"to", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(to_method)),
                      METH_FASTCALL | METH_KEYWORDS, nullptr};
PyMethodDef cuda_def = {"cuda",
                        reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(cuda_method)),
                        METH_FASTCALL | METH_KEYWORDS, nullptr};

void wrap(PyObject*& original, PyMethodDef* def) {
  original =
      py::object(py::module_::import("torch").attr("Tensor").attr(def->ml_name)).release().ptr();
  patch_tensor_method(def);
}

}  // namespace

void install_non_blocking() {
  const Redirect redirect = current_redirect();
  if (original_to != nullptr || redirect.empty() ||
      !target_device::may_defer_pageable_copies(redirect.target())) {
    return;
  }
  wrap(original_to, &to_def);
  if (redirect.redirects(c10::DeviceType::CUDA)) {
    wrap(original_cuda, &cuda_def);
  }
}

// After restore_all() has put the methods back.
void uninstall_non_blocking() {
  Py_CLEAR(original_to);
  Py_CLEAR(original_cuda);
}

}  // namespace torchdevice::python
