#include "serialization.h"

#include <c10/util/Exception.h>
#include <torch/csrc/Device.h>
#include <torch/csrc/Dtype.h>
#include <torch/csrc/utils/pybind.h>

#include "patch.h"
#include "torchdevice/device_spec.h"
#include "torchdevice/float64.h"
#include "torchdevice/report.h"
#include "torchdevice/state.h"

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// Our (priority, tagger, deserializer) entry while installed; owned forever (a static py::object
// would be released after the interpreter is gone).
PyObject* entry = nullptr;

// Set on each storage this deserializer restored onto the target, so that tensors rebuilt on it
// are known to be redirected (a storage the checkpoint keeps on the CPU never is).
constexpr const char* kRestored = "_torchdevice_restored";
// The narrowed copy of a restored storage, made once, so tensors sharing it still share.
constexpr const char* kNarrowed = "_torchdevice_narrowed";

PyObject* original_rebuild = nullptr;  // torch._utils._rebuild_tensor, owned while installed

py::object untyped_of(const py::object& typed) {
  return py::hasattr(typed, "_untyped_storage") ? typed.attr("_untyped_storage")
                                                : typed.attr("untyped")();
}

// torch._utils._rebuild_tensor(storage, offset, size, stride), through which torch.load makes
// each tensor: a tensor of a dtype the float64 policy narrows, on a storage restored onto the
// target, is made from the storage's values narrowed (offsets and strides count elements, so
// they stay). So is one on any storage already on a target that refuses the dtype: a
// map_location of torch.device('cuda') (which is the target) or a callable moving storages
// itself, where torch's own rebuild could only fail. Every other tensor is torch's own.
py::object rebuild(const py::object& storage, const py::object& offset, const py::object& size,
                   const py::object& stride) {
  auto original = py::reinterpret_borrow<py::object>(original_rebuild);
  if (!float64::engaged()) {
    return original(storage, offset, size, stride);
  }
  const py::object dtype_object = storage.attr("dtype");
  TORCH_INTERNAL_ASSERT(THPDtype_Check(dtype_object.ptr()), "a storage's dtype is a torch.dtype");
  const auto dtype = reinterpret_cast<THPDtype*>(dtype_object.ptr())->scalar_type;
  const auto substitute = float64::substitute(dtype);
  if (substitute == dtype) {
    return original(storage, offset, size, stride);
  }
  const py::object untyped = untyped_of(storage);
  const c10::Device target = current_redirect().target();
  auto device = py::reinterpret_steal<py::object>(THPDevice_New(target));
  if (!py::hasattr(untyped, kRestored)) {
    if (!float64::target_refuses(dtype) || !py::object(untyped.attr("device")).equal(device)) {
      return original(storage, offset, size, stride);
    }
    py::setattr(untyped, kRestored, py::str(target.str()));
  }
  auto torch = py::module_::import("torch");
  const py::object& wide_dtype = dtype_object;
  const py::object narrow_dtype =
      torch.attr(substitute == c10::ScalarType::Float ? "float32" : "complex64");
  if (!py::hasattr(untyped, kNarrowed)) {
    // The bytes are read as the wide dtype on the CPU (the target may have no such dtype).
    py::dict cpu_dtype;
    cpu_dtype["dtype"] = wide_dtype;
    py::object wide = torch.attr("empty")(py::make_tuple(0), **cpu_dtype)
                          .attr("set_")(untyped.attr("cpu")());
    py::object narrow = wide.attr("to")(device, narrow_dtype);
    py::setattr(untyped, kNarrowed,
                py::hasattr(narrow, "untyped_storage") ? narrow.attr("untyped_storage")()
                                                       : narrow.attr("storage")().attr("untyped")());
    report::record("torch.load", py::str(py::getattr(untyped, kRestored)).cast<std::string>(),
                   target, float64::describe(dtype, substitute));
  }
  py::dict options;
  options["dtype"] = narrow_dtype;
  options["device"] = device;
  return torch.attr("empty")(py::make_tuple(0), **options)
      .attr("set_")(untyped.attr(kNarrowed), offset, size, stride);
}

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
  py::object restored = py::module_::import("torch.serialization")
                            .attr("default_restore_location")(storage, redirect.target().str());
  py::setattr(restored, kRestored, location);
  return restored;
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
  auto utils = py::module_::import("torch._utils");
  original_rebuild = py::object(utils.attr("_rebuild_tensor")).release().ptr();
  patch(utils, "_rebuild_tensor", py::cpp_function(&rebuild));
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
  Py_CLEAR(original_rebuild);  // restore_all() has put torch's back
}

}  // namespace torchdevice::python
