#include "generator.h"

#include <ATen/Context.h>
#include <torch/csrc/Device.h>
#include <torch/csrc/Generator.h>
#include <torch/csrc/utils/pybind.h>

#include "patch.h"
#include "torchdevice/state.h"

namespace py = pybind11;

namespace torchdevice::python {

namespace {

newfunc original_new = nullptr;

// Generator(device=None): torch's parser reads a device string itself, so a string or index is
// first made a torch.device through the hooked type (a redirected one becomes the target, every
// bad spelling gets torch's own error), then handed to torch's constructor.
PyObject* redirecting_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  const bool positional = PyTuple_GET_SIZE(args) == 1;
  PyObject* device = positional ? PyTuple_GET_ITEM(args, 0)
                                : (kwargs != nullptr ? PyDict_GetItemString(kwargs, "device")
                                                     : nullptr);
  const bool spelled = device != nullptr && (PyUnicode_Check(device) ||
                                             (PyLong_Check(device) && !PyBool_Check(device)));
  if (!spelled || current_redirect().empty()) {
    return original_new(type, args, kwargs);
  }
  try {
    py::object parsed = py::reinterpret_borrow<py::object>(
        reinterpret_cast<PyObject*>(&THPDeviceType))(py::reinterpret_borrow<py::object>(device));
    if (positional) {
      py::tuple new_args = py::make_tuple(parsed);
      return original_new(type, new_args.ptr(), kwargs);
    }
    py::dict new_kwargs = py::reinterpret_borrow<py::dict>(kwargs).attr("copy")();
    new_kwargs["device"] = parsed;
    return original_new(type, args, new_kwargs.ptr());
  } catch (py::error_already_set& error) {
    error.restore();
    return nullptr;
  }
}

auto* generator_type() {
  return reinterpret_cast<PyTypeObject*>(THPGeneratorClass);
}

}  // namespace

void install_generator_hook() {
  if (original_new == nullptr) {
    original_new = generator_type()->tp_new;
  }
  generator_type()->tp_new = &redirecting_new;
  const at::Generator& target_default =
      at::globalContext().defaultGenerator(current_redirect().target());
  patch(py::module_::import("torch.cuda"), "default_generators",
        py::make_tuple(py::reinterpret_steal<py::object>(THPGenerator_Wrap(target_default))));
}

void uninstall_generator_hook() {
  if (original_new != nullptr) {
    generator_type()->tp_new = original_new;
  }
}

}  // namespace torchdevice::python
