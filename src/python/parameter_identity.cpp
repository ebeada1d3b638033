#include "parameter_identity.h"

#include <ATen/ops/empty.h>
#include <c10/core/DispatchKeySet.h>
#include <pybind11/pybind11.h>

#include "patch.h"
#include "torchdevice/state.h"

#include <unordered_map>
#include <vector>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// Whether torch moves a CPU tensor's data onto `target` in place (TensorImpl's own rule), so
// that a parameter keeps its identity across Module._apply.
bool moves_in_place(c10::Device target) {
  const auto key = c10::computeDispatchKey(c10::nullopt, c10::kStrided, target);
  return at::empty({0}).unsafeGetTensorImpl()->has_compatible_shallow_copy_type(
      c10::DispatchKeySet(key));
}

struct Holder {
  py::object parameters;  // a module's _parameters
  py::object name;
};

// A parameter before the move, and every (module, name) that held it. Buffers are not kept:
// torch makes a new tensor per holder for them on CUDA too.
struct Held {
  py::object parameter;
  std::vector<Holder> holders;
};

std::vector<Held> parameters_held(const py::handle& module) {
  std::unordered_map<PyObject*, size_t> index;
  std::vector<Held> held;
  for (py::handle each : module.attr("modules")()) {
    py::object parameters = each.attr("_parameters");
    for (auto item : py::reinterpret_borrow<py::dict>(parameters)) {
      if (item.second.is_none()) {
        continue;
      }
      auto [at, added] = index.emplace(item.second.ptr(), held.size());
      if (added) {
        held.push_back({py::reinterpret_borrow<py::object>(item.second), {}});
      }
      held[at->second].holders.push_back(
          {parameters, py::reinterpret_borrow<py::object>(item.first)});
    }
  }
  return held;
}

// Puts each parameter torch replaced back, now holding the moved data, in all its holders.
void restore_identity(const std::vector<Held>& held, const py::object& swap) {
  for (const auto& each : held) {
    py::object moved;
    for (const auto& holder : each.holders) {
      py::object now = holder.parameters[holder.name];
      if (!now.is(each.parameter)) {
        moved = now;
        break;
      }
    }
    if (!moved) {
      continue;  // moved in place, or not at all
    }
    py::object kept = each.parameter;
    try {
      swap(each.parameter, moved);
    } catch (py::error_already_set& error) {
      // Refused while an autograd graph or a weak reference still holds the old parameter:
      // torch's replacement stays, shared again by every holder.
      if (!error.matches(PyExc_RuntimeError)) {
        throw;
      }
      kept = moved;
    }
    for (const auto& holder : each.holders) {
      holder.parameters[holder.name] = kept;
    }
  }
}

}  // namespace

void install_parameter_identity() {
  if (moves_in_place(current_redirect().target())) {
    return;
  }
  py::object utils = py::module_::import("torch.utils");
  if (!py::hasattr(utils, "swap_tensors")) {
    return;  // torch < 2.3, which has no PrivateUse1 device worth a target
  }
  py::object swap = utils.attr("swap_tensors");
  py::object future = py::module_::import("torch.__future__");
  auto module = py::module_::import("torch.nn").attr("Module");
  py::object original = module.attr("_apply");
  py::cpp_function apply(
      [original, swap, future](py::object self, py::args args, py::kwargs kwargs) -> py::object {
        // _apply recurses into children: the outermost call sees every holder.
        static thread_local int depth = 0;
        if (depth > 0 || py::bool_(future.attr("get_overwrite_module_params_on_conversion")())) {
          return original(self, *args, **kwargs);
        }
        const auto held = parameters_held(self);
        ++depth;
        py::object result;
        try {
          result = original(self, *args, **kwargs);
        } catch (...) {
          --depth;
          throw;
        }
        --depth;
        restore_identity(held, swap);
        return result;
      },
      py::name("_apply"));
  wrap_method(module, "_apply", std::move(apply));
}

}  // namespace torchdevice::python
