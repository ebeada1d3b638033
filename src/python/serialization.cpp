#include "serialization.h"

#include <c10/util/Exception.h>
#include <torch/csrc/utils/pybind.h>

#include "torchdevice/device_spec.h"
#include "torchdevice/state.h"

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// Our (priority, tagger, deserializer) entry while installed; owned forever (a static py::object
// would be released after the interpreter is gone).
PyObject* entry = nullptr;

py::object tag(const py::object& /*storage*/) {
  return py::none();  // never ours to tag: the target's storages keep its own location
}

// Called by torch.load for each storage with its recorded (or mapped) location; None lets the
// next deserializer (torch's own) try.
py::object restore(const py::object& storage, const py::object& location) {
  if (!py::isinstance<py::str>(location)) {
    return py::none();
  }
  const Redirect redirect = current_redirect();
  try {
    if (!redirect.redirects(parse_device(location.cast<std::string>()).type())) {
      return py::none();
    }
  } catch (const c10::Error&) {
    return py::none();  // not a device name: torch's own deserializers report it
  }
  // Torch's own restore for the target's location: the bytes are copied unchanged.
  return py::module_::import("torch.serialization")
      .attr("default_restore_location")(storage, redirect.target().str());
}

}  // namespace

void install_serialization() {
  if (entry != nullptr) {
    return;
  }
  py::list registry = py::module_::import("torch.serialization").attr("_package_registry");
  // First, with a priority below every other: torch sorts the registry as tuples, and a tie would
  // compare the functions.
  py::list priorities;
  priorities.append(0);
  for (const auto& item : registry) {
    priorities.append(item.cast<py::tuple>()[0]);
  }
  py::object lowest = py::module_::import("builtins").attr("min")(priorities);
  py::tuple ours = py::make_tuple(lowest - py::int_(1), py::cpp_function(&tag),
                                  py::cpp_function(&restore));
  registry.insert(0, ours);
  entry = ours.release().ptr();
}

void uninstall_serialization() {
  if (entry == nullptr) {
    return;
  }
  py::list registry = py::module_::import("torch.serialization").attr("_package_registry");
  for (size_t i = 0; i < registry.size(); ++i) {
    if (registry[i].ptr() == entry) {
      PySequence_DelItem(registry.ptr(), static_cast<Py_ssize_t>(i));
      break;
    }
  }
  Py_DECREF(entry);
  entry = nullptr;
}

}  // namespace torchdevice::python
