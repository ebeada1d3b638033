#include "fused_optimizers.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <pybind11/pybind11.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/version.h>

#include "patch.h"
#include "torchdevice/state.h"

#include <cctype>
#include <map>
#include <set>
#include <string>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// The optimizers torch may give a `fused` argument; those it has at this version are wrapped.
constexpr const char* kFusable[] = {"Adam", "AdamW", "SGD", "Adagrad"};

// Each class's own __init__, as torch had it (kept across a retarget; dropped at uninstall).
// Heap-allocated and never freed, as Python objects must outlive nothing at exit.
std::map<std::string, py::object>& originals() {
  static auto* held = new std::map<std::string, py::object>();
  return *held;
}
std::set<std::string>& warned() {
  static auto* names = new std::set<std::string>();
  return *names;
}

// Whether the target has a kernel of its own for the optimizer's fused update (torch names them
// aten::_fused_adam_, aten::_fused_sgd_, ...). A backend fallback does not count: MPS's refuses
// the ops it lacks, and a PrivateUse1 backend's may run anything on the CPU.
bool target_fuses(const std::string& optimizer, c10::Device target) {
  std::string name = "aten::_fused_";
  for (char c : optimizer) {
    name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  const auto op = c10::Dispatcher::singleton().findOp({name + "_", ""});
  return op.has_value() && op->hasKernelForDispatchKey(c10::computeDispatchKey(
                               c10::nullopt, c10::kStrided, target));
}

// Whether every parameter (of a list of tensors, or of param-group dicts) is a floating-point
// tensor on the target: what torch asks of a fused optimizer's parameters on CUDA. A group's
// params are made a list in place, as torch's add_param_group does, so that reading them here
// leaves them for torch.
bool all_on_target(const py::list& params, c10::DeviceType target) {
  bool any = false;
  for (py::handle item : params) {
    py::object tensors = py::reinterpret_borrow<py::object>(item);
    if (py::isinstance<py::dict>(item)) {
      tensors = item["params"];
      if (!THPVariable_Check(tensors.ptr())) {
        tensors = py::list(tensors);
        item["params"] = tensors;
      }
    }
    if (THPVariable_Check(tensors.ptr())) {
      tensors = py::make_tuple(tensors);
    }
    for (py::handle tensor : tensors) {
      if (!THPVariable_Check(tensor.ptr())) {
        return false;
      }
      const at::Tensor& value = THPVariable_Unpack(tensor.ptr());
      if (value.device().type() != target || !value.is_floating_point()) {
        return false;
      }
      any = true;
    }
  }
  return any;
}

void warn_once(const std::string& optimizer, const c10::Device& target) {
  if (!warned().insert(optimizer).second) {
    return;
  }
  const std::string message =
      "torchdevice: " + optimizer + "(fused=True): torch " + TORCH_VERSION +
      " has no fused " + optimizer + " for " + c10::DeviceTypeName(target.type(), true) +
      ", where torchdevice runs 'cuda' work; the optimizer runs the same update unfused "
      "(warned once).";
  if (PyErr_WarnEx(PyExc_UserWarning, message.c_str(), 1) != 0) {
    throw py::error_already_set();
  }
}

// A state_dict saved by the fused optimizer on CUDA says fused=True in each group: loaded into
// the unfused one, it must not turn the fused update back on.
py::object load_state_dict_unfused(const py::weakref& optimizer, const py::object& state_dict) {
  const py::object self = optimizer();
  py::object result = py::type::of(self).attr("load_state_dict")(self, state_dict);
  for (py::handle group : self.attr("param_groups")) {
    if (group.contains("fused")) {
      group["fused"] = false;
    }
  }
  return result;
}

py::object init(const std::string& optimizer, py::args args, py::kwargs kwargs) {
  const py::object& original = originals().at(optimizer);
  const Redirect redirect = current_redirect();
  auto given = [&kwargs](const char* name) {
    return kwargs.contains(name) && py::bool_(kwargs[name]);
  };
  // fused with foreach or differentiable is refused on CUDA too: torch's own error.
  if (!given("fused") || given("foreach") || given("differentiable") || redirect.empty() ||
      redirect.target().is_cuda() || target_fuses(optimizer, redirect.target())) {
    return original(*args, **kwargs);
  }
  // (self, params, ...) or (self, ..., params=...): the parameters, read once.
  py::list positional(args);
  const bool keyword = positional.size() < 2;
  if (keyword && !kwargs.contains("params")) {
    return original(*args, **kwargs);  // torch's own TypeError
  }
  py::list params(keyword ? py::object(kwargs["params"]) : py::object(positional[1]));
  if (keyword) {
    kwargs["params"] = params;
  } else {
    positional[1] = params;
  }
  if (!all_on_target(params, redirect.target().type())) {
    return original(*positional, **kwargs);
  }
  kwargs["fused"] = false;
  py::object result = original(*positional, **kwargs);
  const py::object self = positional[0];
  self.attr("load_state_dict") = py::cpp_function(
      [optimizer = py::weakref(self)](const py::object& state_dict) {
        return load_state_dict_unfused(optimizer, state_dict);
      },
      py::name("load_state_dict"));
  warn_once(optimizer, redirect.target());
  return result;
}

}  // namespace

void install_fused_optimizers() {
  auto optim = py::module_::import("torch.optim");
  auto signature = py::module_::import("inspect").attr("signature");
  for (const char* name : kFusable) {
    if (!py::hasattr(optim, name)) {
      continue;
    }
    py::object cls = optim.attr(name);
    if (!originals().count(name)) {
      py::object own = cls.attr("__init__");
      if (!signature(own).attr("parameters").contains("fused")) {
        continue;
      }
      originals()[name] = own;
    }
    // pybind11 treats functions named __init__ as its own constructors: another name.
    wrap_method(cls, "__init__",
                py::cpp_function(
                    [optimizer = std::string(name)](py::args args, py::kwargs kwargs) {
                      return init(optimizer, std::move(args), std::move(kwargs));
                    },
                    py::name("torchdevice_fused_init")));
  }
}

void uninstall_fused_optimizers() {
  originals().clear();
}

}  // namespace torchdevice::python
