#include "distributed.h"

#include <torch/csrc/utils/pybind.h>

#include "patch.h"
#include "torchdevice/backend.h"
#include "torchdevice/log.h"
#include "torchdevice/staged_backend.h"
#include "torchdevice/state.h"

#include <string>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// The functions wrapped, held while installed.
struct Originals {
  py::object init_process_group;
  py::object new_group;
  py::object ddp_init;
  py::object dp_init;
};

// Heap-allocated and never freed: destroying Python references after interpreter finalisation
// would crash at exit.
Originals& originals() {
  static auto* held = new Originals();
  return *held;
}

// Calls `original` (named `function`), giving it a fallback backend where NCCL is asked for and
// unavailable. `position` is where `backend` sits among its positional parameters.
py::object call_with_backend(const py::object& original, const char* function, size_t position,
                             py::args args, py::kwargs kwargs) {
  const bool positional = args.size() > position;
  py::object requested = py::none();
  if (positional) {
    requested = args[position];
  } else if (kwargs.contains("backend")) {
    requested = kwargs["backend"];
  }
  const bool nccl =
      py::module_::import("torch.distributed").attr("is_nccl_available")().cast<bool>();
  c10::optional<std::string> name;
  if (!requested.is_none()) {
    name = py::str(requested).cast<std::string>();
  }
  const auto replacement = fallback_backend(name, current_redirect(), nccl);
  if (!replacement.has_value()) {
    return original(*args, **kwargs);
  }
  log::info(std::string("torchdevice: ") + function + ": backend '" + name.value_or("None") +
            "' -> '" + *replacement + "' (NCCL is not available)");
  if (positional) {
    py::list changed(args);
    changed[position] = py::str(*replacement);
    return original(*py::tuple(changed), **kwargs);
  }
  kwargs["backend"] = py::str(*replacement);
  return original(*args, **kwargs);
}

// A group made while installed takes the target's tensors even where its backends cannot (gloo
// and an accelerator other than CUDA): they are staged through its CPU backend. `group` is what
// new_group returned (not a group on ranks outside it), or the default group.
void stage_target(const py::object& group) {
  const py::object name = py::getattr(group, "group_name", py::none());  // torch 2.x groups
  if (name.is_none()) {
    return;
  }
  const auto type = current_redirect().target().type();
  if (stage_through_cpu(name.cast<std::string>(), type)) {
    log::info("torchdevice: process group '" + name.cast<std::string>() + "': " +
              c10::DeviceTypeName(type, /*lower_case=*/true) +
              " tensors go through its cpu backend");
  }
}

// The one device all of `module`'s parameters are on, where that is a device of the target's type.
c10::optional<c10::Device> device_on_target(const py::handle& module) {
  c10::optional<c10::Device> device;
  for (const auto& parameter : module.attr("parameters")()) {
    const auto here = parameter.cast<at::Tensor>().device();
    if (here.type() != current_redirect().target().type() || (device && *device != here)) {
      return c10::nullopt;
    }
    device = here;
  }
  return device;
}

// DistributedDataParallel.__init__(self, module, device_ids=None, output_device=None, ...).
// A CUDA script passes CUDA indices (often the rank), yet every one of them is the one target,
// where its module now lives: the ids become that module's device, which DDP wants for a
// single-device module, or none on the CPU target, where torch rejects them.
py::object ddp_init(py::args args, py::kwargs kwargs) {
  py::list changed(args);
  py::object module = py::none();
  if (changed.size() > 1) {
    module = changed[1];
  } else if (kwargs.contains("module")) {
    module = kwargs["module"];
  }
  const auto device = module.is_none() ? c10::nullopt : device_on_target(module);
  if (device.has_value()) {
    const py::object output_device = device->is_cpu() ? py::none() : py::cast(*device);
    const py::object device_ids =
        device->is_cpu() ? py::none() : py::object(py::make_tuple(output_device));
    bool replaced = false;
    const auto replace = [&](size_t position, const char* name, const py::object& replacement) {
      if (changed.size() > position) {
        if (!changed[position].is_none()) {
          changed[position] = replacement;
          replaced = true;
        }
      } else if (kwargs.contains(name) && !kwargs[name].is_none()) {
        kwargs[name] = replacement;
        replaced = true;
      }
    };
    replace(2, "device_ids", device_ids);
    replace(3, "output_device", output_device);
    if (replaced) {
      log::info("torchdevice: DistributedDataParallel: device_ids/output_device are the "
                "module's device, " + device->str());
    }
  }
  return originals().ddp_init(*py::tuple(changed), **kwargs);
}

// DataParallel.__init__(self, module, device_ids=None, output_device=None, dim=0). Every CUDA
// index is the one target, so the module runs on one device, as DataParallel does with one id.
py::object dp_init(py::args args, py::kwargs kwargs) {
  py::list changed(args);
  const auto first_only = [](const py::object& ids) -> py::object {
    if (ids.is_none() || py::len(ids) <= 1) {
      return ids;
    }
    log::info("torchdevice: DataParallel: device_ids " + py::str(ids).cast<std::string>() +
              " are all the one target: running on one device");
    return py::make_tuple(ids[py::int_(0)]);
  };
  if (changed.size() > 2) {
    changed[2] = first_only(changed[2]);
  } else if (kwargs.contains("device_ids")) {
    kwargs["device_ids"] = first_only(kwargs["device_ids"]);
  }
  return originals().dp_init(*py::tuple(changed), **kwargs);
}

// DataParallel.scatter for its one device: moves the inputs to the target, as CUDA's scatter
// does for one device, without CUDA's scatter kernel (torch._C._scatter), which the target lacks.
py::tuple dp_scatter(const py::object& /*self*/, const py::object& inputs,
                     const py::object& kwargs, const py::object& /*device_ids*/) {
  auto torch = py::module_::import("torch");
  py::object target = torch.attr("device")(current_redirect().target().str());
  py::object tensor_type = torch.attr("Tensor");
  py::cpp_function to_target([target, tensor_type](const py::object& value) -> py::object {
    return py::isinstance(value, tensor_type) ? value.attr("to")(target) : value;
  });
  auto tree_map = py::module_::import("torch.utils._pytree").attr("tree_map");
  py::object moved_kwargs = kwargs.is_none() ? py::dict() : tree_map(to_target, kwargs);
  return py::make_tuple(py::make_tuple(tree_map(to_target, py::tuple(inputs))),
                        py::make_tuple(moved_kwargs));
}

}  // namespace

void install_distributed() {
  auto dist = py::module_::import("torch.distributed");
  auto& held = originals();
  if (!dist.attr("is_available")().cast<bool>() || held.init_process_group) {
    return;  // no distributed support built, or already installed (a retarget)
  }
  auto c10d = py::module_::import("torch.distributed.distributed_c10d");
  held.init_process_group = c10d.attr("init_process_group");
  held.new_group = c10d.attr("new_group");
  struct Wrapped {
    const char* name;
    size_t backend_position;
    const py::object* original;
  };
  for (const Wrapped wrapped : {Wrapped{"init_process_group", 0, &held.init_process_group},
                                Wrapped{"new_group", 2, &held.new_group}}) {
    py::cpp_function wrapper(
        [wrapped](py::args args, py::kwargs kwargs) {
          py::object group =
              call_with_backend(*wrapped.original, wrapped.name, wrapped.backend_position,
                                std::move(args), std::move(kwargs));
          stage_target(group.is_none() ? py::module_::import("torch.distributed")
                                             .attr("distributed_c10d")
                                             .attr("GroupMember")
                                             .attr("WORLD")
                                       : group);
          return group;
        },
        py::name(wrapped.name));
    const char* name = wrapped.name;
    // `from torch.distributed import init_process_group` reads the package's attribute;
    // torch's own callers read the module's.
    patch(c10d, name, wrapper);
    patch(dist, name, wrapper);
  }
  auto ddp = py::module_::import("torch.nn.parallel").attr("DistributedDataParallel");
  held.ddp_init = ddp.attr("__init__");
  // pybind11 treats functions named __init__ as its own constructors: another name.
  wrap_method(ddp, "__init__", py::cpp_function(&ddp_init, py::name("torchdevice_ddp_init")));
  auto dp = py::module_::import("torch.nn.parallel").attr("DataParallel");
  held.dp_init = dp.attr("__init__");
  wrap_method(dp, "__init__", py::cpp_function(&dp_init, py::name("torchdevice_dp_init")));
  wrap_method(dp, "scatter", py::cpp_function(&dp_scatter, py::name("scatter")));
}

void uninstall_distributed() {
  originals() = Originals();
}

}  // namespace torchdevice::python
