#include "amp.h"

#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/Device.h>
#include <torch/csrc/Dtype.h>
#include <torch/csrc/DynamicTypes.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/version.h>

#include "device_module.h"
#include "patch.h"
#include "torchdevice/amp.h"
#include "torchdevice/device_spec.h"
#include "torchdevice/float64.h"
#include "torchdevice/state.h"

#include <mutex>
#include <set>
#include <string>
#include <utility>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// The constructors torch had; owned forever (a static py::object would be released after the
// interpreter is gone).
PyObject* original_autocast_init = nullptr;
#if TORCH_VERSION_MAJOR >= 2
PyObject* original_scaler_init = nullptr;
#endif

std::mutex warned_mutex;
std::set<std::pair<c10::ScalarType, c10::ScalarType>> warned;

// The redirected device type a constructor argument names ('cuda', 'cuda:1'), if it names one.
c10::optional<c10::DeviceType> redirected_type(const py::handle& arg) {
  if (!py::isinstance<py::str>(arg)) {
    return c10::nullopt;
  }
  try {
    const c10::Device device = parse_device(arg.cast<std::string>());
    if (current_redirect().redirects(device.type())) {
      return device.type();
    }
  } catch (const c10::Error&) {
    // Not a device name: torch's own constructor reports it.
  }
  return c10::nullopt;
}

py::str target_type_name() {
  return c10::DeviceTypeName(current_redirect().target().type(), /*lower_case=*/true);
}

// Reads argument `position` (counting self) or keyword `name` of a constructor call.
py::object argument(const py::args& args, const py::kwargs& kwargs, size_t position,
                    const char* name) {
  if (args.size() > position) {
    return args[position];
  }
  if (kwargs.contains(name)) {
    return kwargs[name];
  }
  return py::none();
}

// The call with argument `position` / keyword `name` replaced by `value`.
void replace_argument(py::list& args, py::dict& kwargs, size_t position, const char* name,
                      py::object value) {
  if (args.size() > position) {
    args[position] = std::move(value);
  } else {
    kwargs[name] = std::move(value);
  }
}

// The dtype autocast for `type` uses when the caller gives none.
c10::ScalarType default_autocast_dtype(c10::DeviceType type) {
#if TORCHDEVICE_HAS_AUTOCAST_DTYPE_OF_TYPE
  return at::autocast::get_autocast_dtype(type);
#else
  (void)type;
  return at::autocast::get_autocast_gpu_dtype();
#endif
}

void warn_substitution(c10::ScalarType requested, const AutocastChoice& choice,
                       bool target_autocasts) {
  {
    std::lock_guard<std::mutex> lock(warned_mutex);
    if (!warned.insert({requested, choice.enabled ? choice.dtype : requested}).second) {
      return;
    }
  }
  auto name = [](c10::ScalarType dtype) {
    return std::string(py::repr(reinterpret_cast<PyObject*>(torch::getTHPDtype(dtype))));
  };
  const std::string target_name = py::str(target_type_name());
  const std::string message =
      "torchdevice: " +
      (target_autocasts ? "autocast on " + target_name + " cannot use " + name(requested) +
                              " in torch " + TORCH_VERSION + "; "
                        : "torch " + std::string(TORCH_VERSION) + " has no autocast on " +
                              target_name + "; ") +
      (choice.enabled ? "using " + name(choice.dtype) + ", the closest dtype it supports"
       : target_autocasts ? std::string("the region runs uncast, as it casts nothing down")
                          : std::string("the region runs uncast, in float32 as written")) +
      " (warned once).";
  if (PyErr_WarnEx(PyExc_UserWarning, message.c_str(), 1) != 0) {
    throw py::error_already_set();
  }
}

py::object call(PyObject* function, const py::list& args, const py::dict& kwargs) {
  PyObject* result = PyObject_Call(function, py::tuple(args).ptr(), kwargs.ptr());
  if (result == nullptr) {
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(result);
}

// autocast.__init__(self, device_type, dtype=None, enabled=True, cache_enabled=None)
py::object autocast_init(const py::args& args, const py::kwargs& kwargs) {
  py::list new_args(args);
  py::dict new_kwargs(kwargs);
  const auto type = redirected_type(argument(args, kwargs, 1, "device_type"));
  if (type.has_value()) {
    const py::object dtype = argument(args, kwargs, 2, "dtype");
    const c10::ScalarType requested =
        THPDtype_Check(dtype.ptr()) ? reinterpret_cast<THPDtype*>(dtype.ptr())->scalar_type
                                    : default_autocast_dtype(*type);
    const auto supported = target_autocast_dtypes();
    const AutocastChoice choice = autocast_choice(supported, requested);
    const py::object enabled = argument(args, kwargs, 3, "enabled");
    const bool wanted = enabled.is_none() || py::bool_(enabled);
    if (wanted && (choice.dtype != requested || !choice.enabled)) {
      warn_substitution(requested, choice, !supported.empty());
    }
    if (!choice.enabled) {
      replace_argument(new_args, new_kwargs, 3, "enabled", py::bool_(false));
    }
    // A target without autocast leaves the disabled region on the type asked for, which torch
    // accepts (torch rejects a device type it has no autocast for, even disabled).
    if (!supported.empty()) {
      replace_argument(new_args, new_kwargs, 1, "device_type", target_type_name());
    }
    if (dtype.is_none() || THPDtype_Check(dtype.ptr())) {
      replace_argument(new_args, new_kwargs, 2, "dtype",
                       py::reinterpret_borrow<py::object>(
                           reinterpret_cast<PyObject*>(torch::getTHPDtype(choice.dtype))));
    }
  }
  return call(original_autocast_init, new_args, new_kwargs);
}

#if TORCH_VERSION_MAJOR >= 2
// torch.amp.GradScaler.__init__(self, device="cuda", ...): a scaler for a redirected type is one
// for the target, whose kernels it then calls.
py::object scaler_init(const py::args& args, const py::kwargs& kwargs) {
  py::list new_args(args);
  py::dict new_kwargs(kwargs);
  py::object device = argument(args, kwargs, 1, "device");
  if (device.is_none()) {
    device = py::str("cuda");  // torch's default
  }
  if (redirected_type(device).has_value()) {
    replace_argument(new_args, new_kwargs, 1, "device", target_type_name());
  }
  return call(original_scaler_init, new_args, new_kwargs);
}

PyObject* original_unscale = nullptr;

// GradScaler.unscale_(self, optimizer): torch takes the scale's reciprocal in float64, except on
// MPS (torch >= 2.8). On a target without float64 this is torch's own unscale_, the reciprocal
// taken in float32 as torch does for MPS; on any other target, torch's method itself.
py::object unscale(const py::object& self, const py::object& optimizer) {
  if (!float64::target_refuses(c10::ScalarType::Double) || !py::bool_(self.attr("_enabled"))) {
    return py::reinterpret_borrow<py::object>(original_unscale)(self, optimizer);
  }
  // A scaler that has not scaled yet (or one torch made without it) has no _scale.
  const py::object scale_object = py::getattr(self, "_scale", py::none());
  if (!THPVariable_Check(scale_object.ptr()) ||
      THPVariable_Unpack(scale_object.ptr()).device() != current_redirect().target()) {
    return py::reinterpret_borrow<py::object>(original_unscale)(self, optimizer);
  }
  self.attr("_check_scale_growth_tracker")("unscale_");
  py::object state = self.attr("_per_optimizer_states")[py::module_::import("builtins").attr(
      "id")(optimizer)];
  const py::object stages = py::module_::import("torch.amp.grad_scaler").attr("OptState");
  const py::object stage = state["stage"];
  TORCH_CHECK(!stage.is(py::object(stages.attr("UNSCALED"))),
              "unscale_() has already been called on this optimizer since the last update().");
  TORCH_CHECK(!stage.is(py::object(stages.attr("STEPPED"))),
              "unscale_() is being called after step().");
  const at::Tensor& scale = THPVariable_Unpack(scale_object.ptr());
  const at::Tensor inv_scale = scale.reciprocal();
  const at::Tensor found_inf = at::zeros({}, scale.options().dtype(at::kFloat));
  state["found_inf_per_device"] =
      self.attr("_unscale_grads_")(optimizer, inv_scale, found_inf, false);
  state["stage"] = stages.attr("UNSCALED");
  return py::none();
}
#endif

#if TORCH_VERSION_MAJOR < 2
// torch 1.13's _MultiDeviceReplicator and GradScaler.scale assert `is_cuda`; these are the same
// without that assertion (the scale lives on the target).
class Replicator {
 public:
  explicit Replicator(at::Tensor master) : master(std::move(master)) {}
  // Keyed by torch.device, as torch's: GradScaler reads found_inf per device from it.
  py::object get(const py::object& device) {
    if (!copies.contains(device)) {
      const c10::Device where = reinterpret_cast<THPDevice*>(device.ptr())->device;
      copies[device] = py::cast(master.to(where, /*non_blocking=*/true, /*copy=*/true));
    }
    return copies[device];
  }

  at::Tensor master;
  py::dict copies;
};

at::Tensor scale_tensor(const py::object& scaler, const at::Tensor& value,
                        std::shared_ptr<Replicator>& replicator) {
  if (!replicator) {
    if (scaler.attr("_scale").is_none()) {
      scaler.attr("_lazy_init_scale_growth_tracker")(
          py::reinterpret_steal<py::object>(THPDevice_New(value.device())));
    }
    replicator = std::make_shared<Replicator>(scaler.attr("_scale").cast<at::Tensor>());
  }
  const py::object device = py::reinterpret_steal<py::object>(THPDevice_New(value.device()));
  return value * replicator->get(device).cast<at::Tensor>();
}

py::object scale_any(const py::object& scaler, const py::handle& value,
                     std::shared_ptr<Replicator>& replicator) {
  if (THPVariable_Check(value.ptr())) {
    return py::cast(scale_tensor(scaler, THPVariable_Unpack(value.ptr()), replicator));
  }
  static const py::object iterable = py::module_::import("collections.abc").attr("Iterable");
  TORCH_CHECK_VALUE(py::isinstance(value, iterable),
                    "outputs must be a Tensor or an iterable of Tensors");
  py::list scaled;
  for (const auto& item : value) {
    scaled.append(scale_any(scaler, item, replicator));
  }
  if (py::isinstance<py::list>(value)) {
    return std::move(scaled);
  }
  if (py::isinstance<py::tuple>(value)) {
    return value.get_type()(scaled);
  }
  return scaled.attr("__iter__")();
}

PyObject* original_update = nullptr;

// GradScaler.update(self, new_scale=None): 1.13 asserts a tensor new_scale is a
// torch.cuda.FloatTensor. One that meets the same conditions on the target is passed on as its
// float value, which update() fills in exactly; anything else meets torch's own assertion.
py::object update(const py::object& self, const py::object& new_scale) {
  py::object value = new_scale;
  if (THPVariable_Check(new_scale.ptr())) {
    const at::Tensor& tensor = THPVariable_Unpack(new_scale.ptr());
    if (tensor.numel() == 1 && !tensor.requires_grad() &&
        tensor.scalar_type() == at::kFloat && tensor.device() == current_redirect().target()) {
      value = py::float_(tensor.item<float>());
    }
  }
  return py::reinterpret_borrow<py::object>(original_update)(self, value);
}

// GradScaler.scale(self, outputs)
py::object scale(const py::object& self, const py::object& outputs) {
  if (!py::bool_(self.attr("_enabled"))) {
    return outputs;
  }
  std::shared_ptr<Replicator> replicator;
  return scale_any(self, outputs, replicator);
}
#endif

}  // namespace

void install_amp() {
  if (!current_redirect().redirects(c10::DeviceType::CUDA) &&
      !current_redirect().redirects(c10::DeviceType::MPS)) {
    return;
  }
  auto autocast = py::module_::import("torch.amp.autocast_mode").attr("autocast");
  if (original_autocast_init == nullptr) {
    original_autocast_init = py::object(autocast.attr("__init__")).release().ptr();
  }
  wrap_method(autocast, "__init__", py::cpp_function(&autocast_init));

#if TORCH_VERSION_MAJOR >= 2
  auto scaler = py::module_::import("torch.amp.grad_scaler").attr("GradScaler");
  if (original_scaler_init == nullptr) {
    original_scaler_init = py::object(scaler.attr("__init__")).release().ptr();
  }
  wrap_method(scaler, "__init__", py::cpp_function(&scaler_init));
  if (original_unscale == nullptr) {
    original_unscale = py::object(scaler.attr("unscale_")).release().ptr();
  }
  wrap_method(scaler, "unscale_",
              py::cpp_function(&unscale, py::arg("self"), py::arg("optimizer")));
#else
  if (!current_redirect().redirects(c10::DeviceType::CUDA)) {
    return;  // a real CUDA scaler keeps torch's own code
  }
  auto module = py::module_::import("torch.cuda.amp.grad_scaler");
  patch(module, "_MultiDeviceReplicator",
        py::module_::import("torchdevice._C").attr("_amp").attr("Replicator"));
  auto scaler = module.attr("GradScaler");
  wrap_method(scaler, "scale", py::cpp_function(&scale));
  if (original_update == nullptr) {
    original_update = py::object(scaler.attr("update")).release().ptr();
  }
  wrap_method(scaler, "update",
              py::cpp_function(&update, py::arg("self"), py::arg("new_scale") = py::none()));
#endif
}

void define_amp(py::module_& m) {
  auto amp = m.def_submodule("_amp", "torch.amp replacements that act on the target");
#if TORCH_VERSION_MAJOR < 2
  py::class_<Replicator, std::shared_ptr<Replicator>>(amp, "Replicator")
      .def(py::init<at::Tensor>(), py::arg("master_tensor"))
      .def_readonly("master", &Replicator::master)
      .def_readonly("_per_device_tensors", &Replicator::copies)
      .def("get", &Replicator::get, py::arg("device"));
#endif
}

void uninstall_amp() {
  std::lock_guard<std::mutex> lock(warned_mutex);
  warned.clear();
}

}  // namespace torchdevice::python
