#include "cuda_api.h"

#include <ATen/Context.h>
#include <c10/util/Exception.h>
#include <torch/csrc/Device.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/utils/device_lazy_init.h>
#else
#include <torch/csrc/utils/cuda_lazy_init.h>
#endif

#include "device_properties.h"
#include "graphs.h"
#include "memory_api.h"
#include "memory_history.h"
#include "nvtx.h"
#include "patch.h"
#include "streams.h"
#include "device_module.h"
#include "unsupported.h"
#include "torchdevice/device_spec.h"
#include "torchdevice/host.h"
#include "torchdevice/state.h"

#include <mutex>
#include <string>

namespace py = pybind11;

namespace torchdevice::python {

c10::Device target() {
  return current_redirect().target();
}

namespace {

// Seeds cross the Python boundary as any int in [-2**63, 2**64); negatives wrap, as in torch.
uint64_t to_seed(const py::int_& seed) {
  try {
    return seed.cast<uint64_t>();
  } catch (const py::cast_error&) {
  }
  try {
    return static_cast<uint64_t>(seed.cast<int64_t>());
  } catch (const py::cast_error&) {
  }
  const std::string text = py::repr(seed);
  TORCH_CHECK(false, "Overflow when unpacking seed ", text, ": a seed must lie in [-2**63, 2**64).");
}

at::Generator target_generator() {
  return at::globalContext().defaultGenerator(target());
}

void manual_seed(const py::int_& seed) {
  const uint64_t value = to_seed(seed);
  auto generator = target_generator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_current_seed(value);
}

void seed() {
  auto generator = target_generator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.seed();
}

uint64_t initial_seed() {
  auto generator = target_generator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.current_seed();
}

at::Tensor get_rng_state(const py::object& device) {
  resolve(device);
  auto generator = target_generator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_rng_state(const at::Tensor& state, const py::object& device) {
  resolve(device);
  auto generator = target_generator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

void synchronize(const py::object& device) {
  resolve(device);
  synchronize_target();
}

// torch.cuda.device: the context manager. Every index is the one target, so entering only checks
// the argument; -1 and None mean "no device", as in torch.
class DeviceContext {
 public:
  explicit DeviceContext(const py::object& device) {
    if (!(PyLong_Check(device.ptr()) && device.cast<int64_t>() == -1)) {
      resolve(device);
    }
  }
  DeviceContext& enter() { return *this; }
  bool exit(const py::args&) { return false; }
};

}  // namespace

c10::DeviceIndex resolve(const py::handle& arg, bool optional) {
  if (arg.is_none()) {
    TORCH_CHECK_VALUE(optional, "Expected a cuda device, but got: None");
    return 0;
  }
  c10::Device device(c10::DeviceType::CUDA);
  if (THPDevice_Check(arg.ptr())) {
    device = reinterpret_cast<THPDevice*>(arg.ptr())->device;
  } else if (py::isinstance<py::str>(arg)) {
    device = parse_device(arg.cast<std::string>());
  } else if (PyLong_Check(arg.ptr()) && !PyBool_Check(arg.ptr())) {
    return check_device_index(arg.cast<int64_t>(), c10::DeviceType::CUDA);
  } else {
    TORCH_CHECK_TYPE(false, "Expected a torch.device, a device string or an integer index, but got ",
                     Py_TYPE(arg.ptr())->tp_name);
  }
  TORCH_CHECK_VALUE(device.is_cuda() || device.type() == target().type(),
                    "Expected a cuda device, but got: ", device.str());
  return device.has_index() ? device.index() : 0;
}

void install_cuda_api() {
  auto cuda = py::module_::import("torch.cuda");
  auto api = py::module_::import("torchdevice._C").attr("_cuda");

  for (const char* name :
       {"is_available", "device_count", "current_device", "get_device_name",
        "get_device_capability", "is_initialized", "init", "_lazy_init", "set_device",
        "synchronize", "device", "device_of", "manual_seed", "manual_seed_all", "seed",
        "seed_all", "initial_seed", "get_rng_state", "set_rng_state", "get_rng_state_all",
        "set_rng_state_all"}) {
    patch(cuda, name, api.attr(name));
  }
}

void uninstall_cuda_api() {
#if TORCH_VERSION_MAJOR >= 2
  torch::utils::set_requires_device_init(at::kCUDA, true);
#else
  torch::utils::set_requires_cuda_init(true);
#endif
}

void define_cuda_api(py::module_& m) {
  auto cuda = m.def_submodule("_cuda", "torch.cuda replacements that answer for the target");
  cuda.def("is_available", []() { return true; });
  cuda.def("device_count", []() { return 1; });
  cuda.def("current_device", []() { return 0; });
  cuda.def("is_initialized", []() { return true; });
  cuda.def("init", []() {});
  cuda.def("_lazy_init", []() {});
  cuda.def("set_device", [](const py::object& device) { resolve(device, false); },
           py::arg("device"));
  cuda.def("get_device_name",
           [](const py::object& device) {
             resolve(device);
             return torchdevice::host_processor_name();
           },
           py::arg("device") = py::none());
  // The target has no CUDA compute capability; (0, 0) makes capability checks fail safely.
  cuda.def("get_device_capability",
           [](const py::object& device) {
             resolve(device);
             return py::make_tuple(0, 0);
           },
           py::arg("device") = py::none());
  cuda.def("synchronize", &synchronize, py::arg("device") = py::none());
  cuda.def("manual_seed", &manual_seed, py::arg("seed"));
  cuda.def("manual_seed_all", &manual_seed, py::arg("seed"));
  cuda.def("seed", &seed);
  cuda.def("seed_all", &seed);
  cuda.def("initial_seed", &initial_seed);
  cuda.def("get_rng_state", &get_rng_state, py::arg("device") = "cuda");
  cuda.def("set_rng_state", &set_rng_state, py::arg("new_state"), py::arg("device") = "cuda");
  cuda.def("get_rng_state_all", []() {
    py::list states;
    states.append(get_rng_state(py::none()));
    return states;
  });
  cuda.def("set_rng_state_all", [](const py::sequence& states) {
    TORCH_CHECK_VALUE(py::len(states) >= 1, "set_rng_state_all expected one state per device (1)");
    set_rng_state(states[0].cast<at::Tensor>(), py::none());
  });
  define_memory_api(cuda);
  define_streams(cuda);
  define_graphs(cuda);
  define_device_properties(cuda);
  define_memory_history(cuda);
  define_nvtx(cuda);
  define_unsupported(cuda);
  py::class_<DeviceContext>(cuda, "device")
      .def(py::init<const py::object&>(), py::arg("device"))
      .def("__enter__", &DeviceContext::enter, py::return_value_policy::reference)
      .def("__exit__", &DeviceContext::exit);
  // A tensor's device is never a CUDA device while installed: torch's answer for those is -1.
  cuda.def("device_of", [](const py::object&) { return DeviceContext(py::int_(-1)); },
           py::arg("obj"));
}

}  // namespace torchdevice::python
