#include "device.h"

#include <c10/util/Exception.h>
#include <torch/csrc/Device.h>
#include <torch/version.h>

#include "patch.h"
#include "torchdevice/device_spec.h"
#include "torchdevice/report.h"
#include "torchdevice/state.h"

#include <string>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

newfunc original_new = nullptr;

bool is_index(PyObject* obj) {
  return PyLong_Check(obj) && !PyBool_Check(obj);
}

// Lets torch parse the arguments (so every spelling and every error message is torch's own), then
// swaps a redirected result for the target. A bare index means a CUDA device in code written for
// CUDA; torch >= 2 reads it as "the current accelerator", which fails where there is none.
PyObject* redirecting_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  const Redirect redirect = current_redirect();
  if (redirect.redirects(c10::DeviceType::CUDA) && kwargs == nullptr &&
      PyTuple_GET_SIZE(args) == 1 && is_index(PyTuple_GET_ITEM(args, 0))) {
    const long long index = PyLong_AsLongLong(PyTuple_GET_ITEM(args, 0));
    if (index < 0 && !PyErr_Occurred()) {
      PyErr_Format(PyExc_RuntimeError, "Device index must not be negative, got %lld", index);
    }
    if (PyErr_Occurred()) {
      return nullptr;
    }
    if (report::enabled()) {
      report::record("torch.device", "cuda:" + std::to_string(index), redirect.target());
    }
    return THPDevice_New(redirect.target());
  }
  PyObject* made = original_new(type, args, kwargs);
  if (made == nullptr || !THPDevice_Check(made) ||
      !redirect.redirects(reinterpret_cast<THPDevice*>(made)->device.type())) {
    return made;
  }
  if (report::enabled()) {
    report::record("torch.device", reinterpret_cast<THPDevice*>(made)->device.str(),
                   redirect.target());
  }
  Py_DECREF(made);
  return THPDevice_New(redirect.target());
}

#if TORCH_VERSION_MAJOR >= 2
// Owned forever: a static py::object would be released after the interpreter is gone.
PyObject* original_cuda_method = nullptr;

// Tensor.cuda(N) on torch >= 2: hands torch a CUDA device instead of the bare index, which its
// parser reads as "the current accelerator": none at all fails, and another accelerator (the
// target) fails Tensor.cuda's own "must be cuda device" check. Tensor.cuda is always a CUDA
// request, so nothing that is not redirected passes through here.
PyObject* cuda_with_index(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                          PyObject* kwnames) {
  const Py_ssize_t at = argument_index(nargs, kwnames, 0, "device");
  if (at < 0 || !is_index(args[at])) {
    return call_method(original_cuda_method, self, args, nargs, kwnames);
  }
  const long long index = PyLong_AsLongLong(args[at]);
  if (PyErr_Occurred()) {
    return nullptr;
  }
  c10::DeviceIndex checked = 0;
  try {
    checked = check_device_index(index, c10::DeviceType::CUDA);
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    return nullptr;
  }
  py::object cuda_device = py::reinterpret_steal<py::object>(
      THPDevice_New(c10::Device(c10::DeviceType::CUDA, checked)));
  if (!cuda_device) {
    return nullptr;
  }
  return call_method(original_cuda_method, self, args, nargs, kwnames, at, cuda_device.ptr());
}

// PyCFunction is the generic slot type; the flags tell Python the real signature.
PyMethodDef cuda_with_index_def = {
    "cuda", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(cuda_with_index)),
    METH_FASTCALL | METH_KEYWORDS, nullptr};
#endif

}  // namespace

void install_device_hook() {
  if (original_new != nullptr) {
    return;
  }
  original_new = THPDeviceType.tp_new;
  THPDeviceType.tp_new = &redirecting_new;
#if TORCH_VERSION_MAJOR >= 2
  if (current_redirect().redirects(c10::DeviceType::CUDA)) {
    auto tensor = py::module_::import("torch").attr("Tensor");
    if (original_cuda_method == nullptr) {
      original_cuda_method = py::object(tensor.attr("cuda")).release().ptr();
    }
    patch_tensor_method(&cuda_with_index_def);
  }
#endif
}

void uninstall_device_hook() {
  if (original_new == nullptr) {
    return;
  }
  THPDeviceType.tp_new = original_new;
  original_new = nullptr;
}

}  // namespace torchdevice::python
