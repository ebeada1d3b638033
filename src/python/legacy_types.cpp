#include "legacy_types.h"

#include <torch/csrc/Device.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include "patch.h"
#include "torchdevice/float64.h"
#include "torchdevice/report.h"
#include "torchdevice/state.h"

#include <string>
#include <unordered_map>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

constexpr const char* kCudaPrefix = "torch.cuda.";

struct Replaced {
  newfunc original_new;
  PyObject* cpu_twin;  // torch.FloatTensor for torch.cuda.FloatTensor (a strong reference)
};

// Heap-allocated and never freed: Python objects must not be released after finalisation.
std::unordered_map<PyTypeObject*, Replaced>& replaced() {
  static auto* map = new std::unordered_map<PyTypeObject*, Replaced>();
  return *map;
}

PyObject* original_type_method = nullptr;

// "torch.cuda.FloatTensor" -> torch.FloatTensor.
py::object cpu_twin_of(const std::string& cuda_name) {
  return py::module_::import("torch").attr(cuda_name.substr(std::string(kCudaPrefix).size()).c_str());
}

// The CPU twin's tensor moved to the target, narrowed as the float64 policy says (a legacy
// torch.cuda.DoubleTensor is a redirected float64 request like any other). `what` names the
// CUDA type asked for.
PyObject* to_target(PyObject* tensor, const std::string& what) {
  if (tensor == nullptr) {
    return nullptr;
  }
  try {
    py::object result = py::reinterpret_steal<py::object>(tensor);
    const c10::Device target = current_redirect().target();
    const auto dtype = THPVariable_Unpack(result.ptr()).scalar_type();
    const auto substitute = float64::substitute(dtype);
    auto device = py::reinterpret_steal<py::object>(THPDevice_New(target));
    if (substitute != dtype) {
      report::record(what, "cuda", target, float64::describe(dtype, substitute));
      result = result.attr("to")(device, py::module_::import("torch").attr(
                                             substitute == c10::ScalarType::Float ? "float32"
                                                                                  : "complex64"));
    } else if (target.type() != c10::DeviceType::CPU) {
      result = result.attr("to")(device);
    }
    return result.release().ptr();
  } catch (py::error_already_set& e) {
    e.restore();
    return nullptr;
  }
}

// tp_new of every torch.cuda.*Tensor type: the CPU twin's constructor, then the target.
PyObject* legacy_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  auto it = replaced().find(type);
  if (it == replaced().end()) {
    PyErr_Format(PyExc_TypeError, "torchdevice: %s has no legacy constructor", type->tp_name);
    return nullptr;
  }
  return to_target(PyObject_Call(it->second.cpu_twin, args, kwargs), type->tp_name);
}

// The CUDA type a .type() argument names, as the name of its CPU twin; empty if it names none.
std::string cuda_type_name(PyObject* arg) {
  std::string name;
  if (PyUnicode_Check(arg)) {
    name = PyUnicode_AsUTF8(arg);
  } else if (PyType_Check(arg)) {
    name = reinterpret_cast<PyTypeObject*>(arg)->tp_name;
  }
  return name.rfind(kCudaPrefix, 0) == 0 ? name : std::string();
}

// Tensor.type(dtype=None, non_blocking=False, **kwargs): a CUDA type name converts to the CPU
// twin's type, then to the target. Every other call goes straight to torch's own method.
PyObject* type_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                      PyObject* kwnames) {
  const Py_ssize_t at = argument_index(nargs, kwnames, 0, "dtype");
  const std::string name = at >= 0 ? cuda_type_name(args[at]) : std::string();
  if (name.empty()) {
    return call_method(original_type_method, self, args, nargs, kwnames);
  }
  py::str cpu_name("torch." + name.substr(std::string(kCudaPrefix).size()));
  return to_target(
      call_method(original_type_method, self, args, nargs, kwnames, at, cpu_name.ptr()), name);
}

PyObject* original_set_default_tensor_type = nullptr;

// torch.set_default_tensor_type(t): a CUDA type becomes its CPU twin where the target is the CPU.
// Another target has no legacy type to stand for it, so the call says what to write instead.
PyObject* set_default_tensor_type(PyObject* /*unused*/, PyObject* type) {
  const std::string name = cuda_type_name(type);
  if (name.empty()) {
    return PyObject_CallOneArg(original_set_default_tensor_type, type);
  }
  const c10::Device target = current_redirect().target();
  if (target.type() != c10::DeviceType::CPU) {
    PyErr_Format(PyExc_TypeError,
                 "torch.set_default_tensor_type(%s): torchdevice redirects CUDA to %s, which has "
                 "no legacy tensor types. Use torch.set_default_device('cuda') and "
                 "torch.set_default_dtype(...) instead.",
                 name.c_str(), target.str().c_str());
    return nullptr;
  }
  py::str cpu_name("torch." + name.substr(std::string(kCudaPrefix).size()));
  return PyObject_CallOneArg(original_set_default_tensor_type, cpu_name.ptr());
}

// PyCFunction is the generic slot type; METH_KEYWORDS tells Python the real signature.
PyMethodDef type_method_def = {"type",
                               reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(type_method)),
                               METH_FASTCALL | METH_KEYWORDS, nullptr};

PyMethodDef set_default_tensor_type_def = {"set_default_tensor_type", &set_default_tensor_type,
                                            METH_O, nullptr};

}  // namespace

void install_legacy_types() {
  auto cuda = py::module_::import("torch.cuda");
  for (auto item : cuda.attr("__dict__").cast<py::dict>()) {
    PyObject* value = item.second.ptr();
    const std::string name = item.first.cast<std::string>();
    if (!PyType_Check(value) || name.size() < 6 ||
        name.compare(name.size() - 6, 6, "Tensor") != 0) {
      continue;
    }
    auto* type = reinterpret_cast<PyTypeObject*>(value);
    if (std::string(type->tp_name) != kCudaPrefix + name || replaced().count(type) != 0) {
      continue;
    }
    py::object twin = cpu_twin_of(type->tp_name);
    replaced()[type] = {type->tp_new, twin.release().ptr()};
    type->tp_new = &legacy_new;
  }
  auto tensor = py::module_::import("torch").attr("Tensor");
  if (original_type_method == nullptr) {
    original_type_method = py::object(tensor.attr("type")).release().ptr();
  }
  patch_tensor_method(&type_method_def);

  auto torch = py::module_::import("torch");
  if (original_set_default_tensor_type == nullptr) {
    original_set_default_tensor_type =
        py::object(torch.attr("set_default_tensor_type")).release().ptr();
  }
  patch(torch, "set_default_tensor_type",
        py::reinterpret_steal<py::object>(PyCFunction_New(&set_default_tensor_type_def, nullptr)));
}

void uninstall_legacy_types() {
  for (auto& [type, entry] : replaced()) {
    type->tp_new = entry.original_new;
    Py_DECREF(entry.cpu_twin);
  }
  replaced().clear();
}

}  // namespace torchdevice::python
