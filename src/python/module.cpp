// torchdevice._C: the Python entry points. Each call holds the GIL throughout, so Python-side
// hooks are installed and removed atomically with respect to other Python threads.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>  // casters for c10::optional, at::Tensor
#include <torch/csrc/Device.h>

#include "amp.h"
#include "compile.h"
#include "cuda_api.h"
#include "device.h"
#include "device_module.h"
#include "device_properties.h"
#include "distributed.h"
#include "errors.h"
#include "fused_optimizers.h"
#include "generator.h"
#include "graphs.h"
#include "legacy_types.h"
#include "memory_api.h"
#include "memory_history.h"
#include "non_blocking.h"
#include "nvtx.h"
#include "parameter_identity.h"
#include "patch.h"
#include "report.h"
#include "serialization.h"
#include "sharing.h"
#include "streams.h"
#include "unsupported.h"
#include "torchdevice/dispatch.h"
#include "torchdevice/float64.h"
#include "torchdevice/missing_ops.h"
#include "torchdevice/state.h"
#include "torchdevice/target.h"

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// Whether torch.cuda is answered by us: set and cleared with the GIL held.
bool cuda_hooked = false;

void uninstall_all() {
  restore_all();
  uninstall_non_blocking();
  uninstall_amp();
  uninstall_serialization();
  uninstall_distributed();
  uninstall_fused_optimizers();
  uninstall_generator_hook();
  uninstall_device_hook();
  if (cuda_hooked) {
    uninstall_graphs();
    uninstall_memory_history();
    uninstall_cuda_api();
    cuda_hooked = false;
  }
  uninstall_memory_api();
  uninstall_legacy_types();
  torchdevice::uninstall();
}

py::object target_device() {
  if (!is_installed()) {
    return py::none();
  }
  return py::reinterpret_steal<py::object>(THPDevice_New(current_redirect().target()));
}

// All or nothing: if any hook fails, every hook of this and any earlier install is removed.
py::object install_all(const c10::optional<std::string>& target,
                       const c10::optional<std::string>& float64_policy) {
  Redirect redirect;
  try {
    redirect = torchdevice::install(target, float64_policy);
  } catch (...) {
    // A bad target changes nothing; a registration that failed left the core uninstalled, and
    // the Python hooks of an earlier install follow it.
    if (!is_installed()) {
      uninstall_all();
    }
    throw;
  }
  try {
    if (!redirect.empty()) {
      install_site_resolver();
      install_device_hook();
      install_non_blocking();
      install_device_context();
    }
    if (redirect.redirects(c10::DeviceType::CUDA)) {
      install_cuda_api();
      cuda_hooked = true;
      install_generator_hook();
      install_memory_api();
      install_memory_history();
      install_device_properties();
      install_streams();
      install_graphs();
      install_legacy_types();
      install_nvtx();
      install_distributed();
      install_compile();
      install_fused_optimizers();
      // Last: wraps only the torch.cuda functions no hook above replaced.
      install_unsupported();
    }
    install_amp();
    if (!redirect.empty()) {
      install_serialization();
      install_sharing();
      install_parameter_identity();
    }
  } catch (...) {
    uninstall_all();
    throw;
  }
  return target_device();
}

py::list redirected_types() {
  py::list names;
  const Redirect redirect = current_redirect();
  for (auto type : kAccelerators) {
    if (is_installed() && redirect.redirects(type)) {
      names.append(c10::DeviceTypeName(type, /*lower_case=*/true));
    }
  }
  return names;
}

// What install() hooked, for `torchdevice info`.
py::list intercepted() {
  py::list hooks;
  if (!is_installed() || current_redirect().empty()) {
    return hooks;
  }
  hooks.append("dispatcher fallbacks and device guards for the redirected types");
  hooks.append("torch.device");
  const auto missing = missing_ops();
  if (!missing.empty()) {
    hooks.append("a CUDA-only error on the target for " + std::to_string(missing.size()) +
                 " cuDNN/MIOpen/fused CUDA ops");
  }
  for (const auto& name : patched_names()) {
    hooks.append(name);
  }
  return hooks;
}

}  // namespace

}  // namespace torchdevice::python

PYBIND11_MODULE(_C, m) {
  using namespace torchdevice::python;
  register_error_translator();
  m.doc() = "torchdevice's C++ core: redirects requests for unavailable accelerators";
  m.attr("compiled_torch_version") = TORCHDEVICE_TORCH_VERSION;
  m.def("install", &install_all, py::arg("target") = py::none(),
        py::arg("float64") = py::none(),
        "Install (or retarget) the redirect; returns the target torch.device.");
  m.def(
      "float64_policy",
      []() -> py::object {
        if (!torchdevice::is_installed()) {
          return py::none();
        }
        py::list narrowed;
        for (auto dtype : {c10::ScalarType::Double, c10::ScalarType::ComplexDouble}) {
          const auto substitute = torchdevice::float64::substitute(dtype);
          if (substitute != dtype) {
            narrowed.append(torchdevice::float64::describe(dtype, substitute));
          }
        }
        return py::make_tuple(torchdevice::float64::name(torchdevice::float64::policy()),
                              narrowed);
      },
      "(policy, [what redirected requests get narrowed]), or None when not installed.");
  m.def("uninstall", &uninstall_all, "Remove every hook install() added.");
  m.def("is_installed", &torchdevice::is_installed);
  m.def("target", &target_device, "The torch.device requests are redirected to, or None.");
  m.def("redirected", &redirected_types, "Names of the device types being redirected.");
  m.def("fast_path", &torchdevice::fast_path,
        "Ops redirected by unboxed kernels; every other op takes the boxed fallback.");
  m.def("intercepted", &intercepted, "What the install hooked, in words.");
  m.def(
      "missing_ops",
      [] {
        std::vector<std::pair<std::string, std::string>> ops;
        for (const auto& name : torchdevice::missing_ops()) {
          ops.emplace_back(name, torchdevice::cuda_only_reason(name));
        }
        return ops;
      },
      "(op, why) for each CUDA-only op that raises torchdevice's error on the target now.");
  define_cuda_api(m);
  define_amp(m);
  define_report(m);
}
