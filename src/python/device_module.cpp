#include "device_module.h"

#include <torch/version.h>

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>
#include <torch/csrc/Dtype.h>

#include "cuda_api.h"
#include "patch.h"
#include "torchdevice/host.h"
#include "torchdevice/target_device.h"

#include <map>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// torch registers each backend's module under the device type's name (torch.mps, torch.xpu, and
// a PrivateUse1 backend's through torch._register_device_module).
py::object device_module() {
  const std::string name = c10::DeviceTypeName(target().type(), /*lower_case=*/true);
  auto torch = py::module_::import("torch");
  // Both branches as py::object: a conditional would convert the module to py::none, and throw.
  if (!py::hasattr(torch, name.c_str())) {
    return py::none();
  }
  return torch.attr(name.c_str());
}

}  // namespace

void unsupported(const std::string& call, const std::string& why) {
  TORCH_CHECK(false, "torch.cuda.", call, " is not available on the ", target().str(),
              " target that torchdevice redirects CUDA to: ", why);
}

bool device_module_has(const char* name) {
  const auto module = device_module();
  return !module.is_none() && py::hasattr(module, name);
}

py::object device_module_function(std::initializer_list<const char*> names,
                                  const std::string& call) {
  const auto module = device_module();
  for (const char* name : names) {
    if (!module.is_none() && py::hasattr(module, name)) {
      return module.attr(name);
    }
  }
  unsupported(call, "this torch offers no way to ask the " +
                        c10::DeviceTypeName(target().type(), /*lower_case=*/true) +
                        " backend for it (no " + *names.begin() + " in its module)");
}

c10::optional<MemoryStats> device_module_memory_stats() {
  if (!device_module_has("memory_stats")) {
    return c10::nullopt;
  }
  const py::dict stats = device_module_function({"memory_stats"}, "memory_stats()")(target().index());
  MemoryStats out;
  const std::pair<const char*, int64_t*> figures[] = {
      {"allocated_bytes.all.current", &out.allocated_bytes},
      {"allocated_bytes.all.peak", &out.peak_allocated_bytes},
      {"allocated_bytes.all.allocated", &out.total_allocated_bytes},
      {"allocated_bytes.all.freed", &out.total_freed_bytes},
      {"reserved_bytes.all.current", &out.reserved_bytes},
      {"reserved_bytes.all.peak", &out.peak_reserved_bytes},
      {"allocation.all.current", &out.allocations},
      {"allocation.all.peak", &out.peak_allocations},
      {"allocation.all.allocated", &out.total_allocations},
      {"allocation.all.freed", &out.total_frees},
      {"num_ooms", &out.num_ooms}};
  for (const auto& [key, figure] : figures) {
    if (!stats.contains(key)) {
      return c10::nullopt;  // not torch.cuda's layout: no figure is guessed
    }
    *figure = stats[key].cast<int64_t>();
  }
  return out;
}

bool device_module_call(const char* name) {
  if (!device_module_has(name)) {
    return false;
  }
  device_module_function({name}, name)(target().index());
  return true;
}

// The most memory the target may use: its module's own figure where it has one (MPS's
// recommended working set; another backend's device properties), else the host's (the CPU).
int64_t target_total_memory() {
  if (!target().is_cpu()) {
    if (device_module_has("recommended_max_memory")) {
      return device_module_function({"recommended_max_memory"}, "")().cast<int64_t>();
    }
    if (device_module_has("get_device_properties")) {
      auto properties = device_module_function({"get_device_properties"}, "")(target().index());
      if (py::hasattr(properties, "total_memory")) {
        return properties.attr("total_memory").cast<int64_t>();
      }
    }
  }
  return host_memory().total_bytes;
}

bool target_has_inductor() {
  static std::map<c10::DeviceType, bool> answers;  // the GIL is held
  const auto type = target().type();
  auto found = answers.find(type);
  if (found == answers.end()) {
    auto common = py::module_::import("torch._inductor.codegen.common");
    common.attr("init_backend_registration")();
    const std::string name = c10::DeviceTypeName(type, /*lower_case=*/true);
    bool has = !common.attr("get_scheduling_for_device")(name).is_none();
    if (type == c10::DeviceType::MPS) {
      // Inductor's Metal code generator needs torch's shader compiler (macOS builds only), and
      // before torch 2.9 it was a prototype that failed on reductions.
      has = has && py::hasattr(py::module_::import("torch._C"), "_mps_compileShader") &&
            (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 9));
    }
    found = answers.emplace(type, has).first;
  }
  return found->second;
}

std::vector<c10::ScalarType> target_autocast_dtypes() {
  if (auto fixed = target_device::autocast_dtypes(target().type())) {
    return *fixed;
  }
  // torch's autocast asks the backend the same way, and requires the function.
  std::vector<c10::ScalarType> dtypes;
  for (const auto& dtype : device_module_function({"get_amp_supported_dtype"},
                                                  "amp.autocast()")()) {
    TORCH_CHECK(THPDtype_Check(dtype.ptr()), "torch.",
                c10::DeviceTypeName(target().type(), /*lower_case=*/true),
                ".get_amp_supported_dtype() must return torch.dtype values, but one is ",
                std::string(py::repr(dtype)), ".");
    dtypes.push_back(reinterpret_cast<THPDtype*>(dtype.ptr())->scalar_type);
  }
  return dtypes;
}

void synchronize_target() {
  bool done = false;
  {
    // As torch's own synchronize: the device's threads may need the GIL to finish (releasing a
    // tensor that has a Python object), so waiting with it held would deadlock.
    pybind11::gil_scoped_release no_gil;
    done = target_device::synchronize(target());
  }
  if (!done) {
    device_module_function({"synchronize"}, "synchronize()")();
  }
}

void install_device_context() {
  const c10::Device device = target();
  const py::object module = device_module();
  if (device.is_cpu() || module.is_none() || py::hasattr(module, "device")) {
    return;
  }
  const auto* guard = c10::impl::hasDeviceGuardImpl(device.type())
                          ? c10::impl::getDeviceGuardImpl(device.type())
                          : nullptr;
  if (guard == nullptr || guard->deviceCount() != 1) {
    return;
  }
  patch(module, "device", py::module_::import("contextlib").attr("nullcontext"));
}

}  // namespace torchdevice::python
