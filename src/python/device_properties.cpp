#include "device_properties.h"

#include <torch/csrc/utils/pybind.h>

#include "cuda_api.h"
#include "device_module.h"
#include "patch.h"
#include "torchdevice/host.h"

#include <sstream>
#include <string>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// The CPU's counterparts of a GPU's figures: a core is a multiprocessor, its hardware threads its
// threads, its float32 vector lanes a warp, its L1 data cache the on-chip memory a block shares.
// Figures the system does not report (memory clock and bus width, registers, PCI location) are 0.
// The target has no CUDA compute capability: major and minor are 0, so capability checks fail
// safely.
struct DeviceProperties {
  std::string name;
  int64_t total_memory = 0;
  int64_t multi_processor_count = 0;
  int major = 0;
  int minor = 0;
  bool is_integrated = false;
  bool is_multi_gpu_board = false;
  int64_t max_threads_per_multi_processor = 1;
  int64_t max_threads_per_block = 1;
  int64_t warp_size = 1;
  std::string gcnArchName;  // torch fills it on ROCm; here the processor's architecture
  std::string uuid;
  int64_t L2_cache_size = 0;
  int64_t clock_rate = 0;  // kHz, as CUDA reports it
  int64_t memory_clock_rate = 0;
  int64_t memory_bus_width = 0;
  int64_t shared_memory_per_block = 0;
  int64_t shared_memory_per_block_optin = 0;
  int64_t shared_memory_per_multiprocessor = 0;
  int64_t regs_per_multiprocessor = 0;
  int64_t pci_bus_id = 0;
  int64_t pci_device_id = 0;
  int64_t pci_domain_id = 0;
};

DeviceProperties device_properties(const py::object& device) {
  resolve(device, false);
  const HostProcessor processor = host_processor();
  DeviceProperties p;
  p.name = host_processor_name();
  // On Apple silicon the GPU and CPU share the chip and its memory; the GPU's core count is not
  // exposed through torch, so the processor count is the host's (documented).
  p.multi_processor_count = host_processor_count();
  p.total_memory = target_total_memory();
  // An accelerator that reports no properties of its own shares the host's chip and memory
  // (MPS's unified memory).
  p.is_integrated = !target().is_cpu() && !device_module_has("get_device_properties");
  p.max_threads_per_multi_processor = processor.threads_per_core;
  p.max_threads_per_block = processor.threads_per_core;
  // An accelerator's SIMD group (Apple GPUs: 32 threads); the CPU's float32 vector lanes.
  p.warp_size = target().is_cpu() ? processor.simd_float_lanes : 32;
  p.gcnArchName = processor.architecture;
  p.uuid = processor.machine_id;
  p.L2_cache_size = processor.l2_cache_bytes;
  p.clock_rate = processor.clock_khz;
  p.shared_memory_per_block = processor.l1d_cache_bytes;
  p.shared_memory_per_block_optin = processor.l1d_cache_bytes;
  p.shared_memory_per_multiprocessor = processor.l1d_cache_bytes;
  return p;
}

}  // namespace

void define_device_properties(py::module_& cuda) {
  using P = DeviceProperties;
  py::class_<P>(cuda, "_CudaDeviceProperties")
      .def_readonly("name", &P::name)
      .def_readonly("total_memory", &P::total_memory)
      .def_readonly("multi_processor_count", &P::multi_processor_count)
      .def_readonly("major", &P::major)
      .def_readonly("minor", &P::minor)
      .def_readonly("is_integrated", &P::is_integrated)
      .def_readonly("is_multi_gpu_board", &P::is_multi_gpu_board)
      .def_readonly("max_threads_per_multi_processor", &P::max_threads_per_multi_processor)
      .def_readonly("max_threads_per_block", &P::max_threads_per_block)
      .def_readonly("warp_size", &P::warp_size)
      .def_readonly("gcnArchName", &P::gcnArchName)
      .def_readonly("uuid", &P::uuid)
      .def_readonly("L2_cache_size", &P::L2_cache_size)
      .def_readonly("clock_rate", &P::clock_rate)
      .def_readonly("memory_clock_rate", &P::memory_clock_rate)
      .def_readonly("memory_bus_width", &P::memory_bus_width)
      .def_readonly("shared_memory_per_block", &P::shared_memory_per_block)
      .def_readonly("shared_memory_per_block_optin", &P::shared_memory_per_block_optin)
      .def_readonly("shared_memory_per_multiprocessor", &P::shared_memory_per_multiprocessor)
      .def_readonly("regs_per_multiprocessor", &P::regs_per_multiprocessor)
      .def_readonly("pci_bus_id", &P::pci_bus_id)
      .def_readonly("pci_device_id", &P::pci_device_id)
      .def_readonly("pci_domain_id", &P::pci_domain_id)
      .def("__repr__", [](const P& p) {
        std::ostringstream out;
        out << "_CudaDeviceProperties(name='" << p.name << "', major=" << p.major
            << ", minor=" << p.minor << ", gcnArchName='" << p.gcnArchName
            << "', total_memory=" << p.total_memory / (1024 * 1024)
            << "MB, multi_processor_count=" << p.multi_processor_count << ", uuid=" << p.uuid
            << ", L2_cache_size=" << p.L2_cache_size / (1024 * 1024) << "MB)";
        return out.str();
      });
  cuda.def("get_device_properties", &device_properties, py::arg("device"));
}

void install_device_properties() {
  auto cuda = py::module_::import("torch.cuda");
  auto api = py::module_::import("torchdevice._C").attr("_cuda");
  for (const char* name : {"get_device_properties", "_CudaDeviceProperties"}) {
    patch(cuda, name, api.attr(name));
  }
}

}  // namespace torchdevice::python
