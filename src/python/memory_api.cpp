#include "memory_api.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/utils/pybind.h>

#include "cuda_api.h"
#include "device_module.h"
#include "patch.h"
#include "torchdevice/host.h"
#include "torchdevice/memory.h"
#include "torchdevice/target_device.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <sstream>
#include <string>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

bool on_cpu() {
  return target().type() == c10::DeviceType::CPU;
}

// TORCHDEVICE_CPU_MEMORY_STATS=0 at install: the CPU target's allocations are not counted, which
// spares every CPU allocation the counter's ~20 ns, and the statistics that need it say so.
std::atomic<bool> cpu_memory_stats_off{false};

bool cpu_memory_stats_requested() {
  const char* value = std::getenv("TORCHDEVICE_CPU_MEMORY_STATS");
  if (value == nullptr || *value == '\0') {
    return true;
  }
  const std::string setting(value);
  TORCH_CHECK_VALUE(setting == "0" || setting == "1", "TORCHDEVICE_CPU_MEMORY_STATS must be 0 or 1, not '",
                    setting, "'");
  return setting == "1";
}

CountingAllocator& mutable_cpu_counter() {
  TORCH_CHECK(!cpu_memory_stats_off.load(),
              "torchdevice: CPU memory statistics are off (TORCHDEVICE_CPU_MEMORY_STATS=0), so "
              "torch.cuda's memory statistics and memory fraction are not available on the cpu "
              "target. Unset TORCHDEVICE_CPU_MEMORY_STATS to count CPU allocations.");
  CountingAllocator* counter = cpu_memory_counter();
  TORCH_CHECK(counter != nullptr, "torchdevice: CPU allocations are not being counted");
  return *counter;
}

const CountingAllocator& cpu_counter() {
  return mutable_cpu_counter();
}

// The target's allocator statistics: torchdevice's counter on the CPU, the target allocator's
// own elsewhere (through torch's allocator interface, else the backend's module); nullopt where
// this torch exposes neither (MPS before its allocator became a c10::DeviceAllocator, in 2026).
c10::optional<MemoryStats> target_stats() {
  if (on_cpu()) {
    return cpu_counter().stats();
  }
  if (auto stats = target_device::allocator_stats(target())) {
    return stats;
  }
  return device_module_memory_stats();
}

[[noreturn]] void no_statistic(const std::string& call) {
  const std::string type = c10::DeviceTypeName(target().type(), /*lower_case=*/true);
  unsupported(call, "this torch's " + type + " allocator keeps no such statistic, nor does torch." +
                        type + ".memory_stats() (a torch whose " + type +
                        " allocator is a c10::DeviceAllocator keeps them: 2.9 for most "
                        "accelerators, 2026's releases for MPS)");
}

int64_t memory_allocated(const py::object& device) {
  resolve(device);
  if (const auto stats = target_stats()) {
    return stats->allocated_bytes;
  }
  return device_module_function({"memory_allocated", "current_allocated_memory"},
                                "memory_allocated()")()
      .cast<int64_t>();
}

int64_t max_memory_allocated(const py::object& device) {
  resolve(device);
  if (const auto stats = target_stats()) {
    return stats->peak_allocated_bytes;
  }
  no_statistic("max_memory_allocated()");
}

int64_t memory_reserved(const py::object& device) {
  resolve(device);
  if (const auto stats = target_stats()) {
    return stats->reserved_bytes;
  }
  return device_module_function({"memory_reserved", "driver_allocated_memory"},
                                "memory_reserved()")()
      .cast<int64_t>();
}

int64_t max_memory_reserved(const py::object& device) {
  resolve(device);
  if (const auto stats = target_stats()) {
    return stats->peak_reserved_bytes;
  }
  no_statistic("max_memory_reserved()");
}

void reset_peak(const py::object& device) {
  resolve(device);
  if (on_cpu()) {
    mutable_cpu_counter().reset_peak();
  } else if (!target_device::reset_peak(target()) &&
             !device_module_call("reset_peak_memory_stats")) {
    no_statistic("reset_peak_memory_stats()");
  }
}

void reset_accumulated(const py::object& device) {
  resolve(device);
  if (on_cpu()) {
    mutable_cpu_counter().reset_accumulated();
  } else if (!target_device::reset_accumulated(target()) &&
             !device_module_call("reset_accumulated_memory_stats")) {
    no_statistic("reset_accumulated_memory_stats()");
  }
}

// torch.cuda.memory_stats' flat keys for what the target's allocator counts. On the CPU,
// allocated, active and reserved bytes coincide: blocks are returned to the system when freed.
py::dict memory_stats(const py::object& device) {
  resolve(device);
  py::dict out;
  const auto stats = target_stats();
  if (!stats) {
    out["allocated_bytes.all.current"] = memory_allocated(device);
    out["reserved_bytes.all.current"] = memory_reserved(device);
    return out;
  }
  const MemoryStats& s = *stats;
  for (const char* kind : {"allocated_bytes", "active_bytes"}) {
    const std::string key(kind);
    out[py::str(key + ".all.current")] = s.allocated_bytes;
    out[py::str(key + ".all.peak")] = s.peak_allocated_bytes;
    out[py::str(key + ".all.allocated")] = s.total_allocated_bytes;
    out[py::str(key + ".all.freed")] = s.total_freed_bytes;
  }
  out["reserved_bytes.all.current"] = s.reserved_bytes;
  out["reserved_bytes.all.peak"] = s.peak_reserved_bytes;
  if (on_cpu()) {
    out["reserved_bytes.all.allocated"] = s.total_allocated_bytes;
    out["reserved_bytes.all.freed"] = s.total_freed_bytes;
  }
  out["allocation.all.current"] = s.allocations;
  out["allocation.all.peak"] = s.peak_allocations;
  out["allocation.all.allocated"] = s.total_allocations;
  out["allocation.all.freed"] = s.total_frees;
  out["num_ooms"] = s.num_ooms;
  return out;
}

// The same, nested as torch's memory_stats_as_nested_dict: "a.b.c" -> {"a": {"b": {"c": v}}}.
py::dict memory_stats_nested(const py::object& device) {
  py::dict nested;
  for (auto item : memory_stats(device)) {
    const std::string key = item.first.cast<std::string>();
    py::dict level = nested;
    size_t start = 0;
    for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
      py::str part(key.substr(start, dot - start));
      if (!level.contains(part)) {
        level[part] = py::dict();
      }
      level = level[part].cast<py::dict>();
      start = dot + 1;
    }
    level[py::str(key.substr(start))] = item.second;
  }
  return nested;
}

std::string format_bytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (std::abs(value) >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  std::ostringstream out;
  out << std::fixed << std::setprecision(unit == 0 ? 0 : 1) << value << " " << units[unit];
  return out.str();
}

std::string memory_summary(const py::object& device, bool /*abbreviated*/) {
  resolve(device);
  std::ostringstream out;
  out << "torchdevice memory summary: torch.cuda redirected to " << target().str() << "\n";
  const auto stats = target_stats();
  if (!stats) {
    out << "  allocated: " << format_bytes(memory_allocated(device))
        << "\n  reserved:  " << format_bytes(memory_reserved(device)) << "\n";
    return out.str();
  }
  const MemoryStats& s = *stats;
  out << (on_cpu() ? "  CPU allocations counted since torchdevice was installed (no caching: "
                     "reserved = allocated)\n"
                   : "  the target allocator's own statistics\n")
      << "  allocated now:   " << format_bytes(s.allocated_bytes) << " in " << s.allocations
      << " blocks\n"
      << "  peak:            " << format_bytes(s.peak_allocated_bytes) << " in "
      << s.peak_allocations << " blocks\n"
      << "  total allocated: " << format_bytes(s.total_allocated_bytes) << " in "
      << s.total_allocations << " blocks\n"
      << "  total freed:     " << format_bytes(s.total_freed_bytes) << " in " << s.total_frees
      << " blocks\n";
  if (on_cpu()) {
    out << "  limit:           "
        << (cpu_counter().limit() < 0 ? std::string("none") : format_bytes(cpu_counter().limit()))
        << ", out-of-memory refusals: " << s.num_ooms << "\n";
  } else {
    out << "  reserved now:    " << format_bytes(s.reserved_bytes) << ", peak "
        << format_bytes(s.peak_reserved_bytes) << "\n";
  }
  return out.str();
}

void empty_cache() {
  // The CPU allocator caches nothing, so there is nothing to release.
  if (!on_cpu() && !target_device::empty_cache(target())) {
    device_module_function({"empty_cache"}, "empty_cache()")();
  }
}

void set_memory_fraction(double fraction, const py::object& device) {
  resolve(device);
  TORCH_CHECK_VALUE(fraction >= 0 && fraction <= 1, "Invalid fraction value: ", fraction,
                    ". Allowed range: 0~1");
  if (!on_cpu()) {
    device_module_function({"set_per_process_memory_fraction"},
                           "set_per_process_memory_fraction()")(fraction);
    return;
  }
  // The whole of the host is no limit: what the host cannot give fails as it always did.
  const auto limit = static_cast<int64_t>(fraction * static_cast<double>(host_memory().total_bytes));
  mutable_cpu_counter().set_limit(fraction == 1.0 ? -1 : limit);
}

double get_memory_fraction(const py::object& device) {
  resolve(device);
  if (!on_cpu()) {
    return device_module_function({"get_per_process_memory_fraction"},
                                  "get_per_process_memory_fraction()")()
        .cast<double>();
  }
  const int64_t limit = cpu_counter().limit();
  return limit < 0 ? 1.0 : static_cast<double>(limit) / static_cast<double>(host_memory().total_bytes);
}

// (free, total) bytes of the target.
py::tuple mem_get_info(const py::object& device) {
  resolve(device);
  if (on_cpu()) {
    const HostMemory memory = host_memory();
    return py::make_tuple(memory.available_bytes, memory.total_bytes);
  }
  if (device_module_has("mem_get_info")) {
    return device_module_function({"mem_get_info"}, "mem_get_info()")(target().index());
  }
  const auto total = target_total_memory();
  return py::make_tuple(std::max<int64_t>(total - memory_reserved(device), 0), total);
}

// Whether the target computes in bfloat16, asked of the target itself.
bool is_bf16_supported() {
  try {
    const at::Tensor x = at::ones({2}, at::TensorOptions().dtype(at::kBFloat16).device(target()));
    return (x + x).sum().item<float>() == 4.0f;
  } catch (const c10::Error&) {
    return false;
  }
}

}  // namespace

void define_memory_api(py::module_& cuda) {
  const auto device = py::arg("device") = py::none();
  cuda.def("memory_allocated", &memory_allocated, device);
  cuda.def("max_memory_allocated", &max_memory_allocated, device);
  cuda.def("memory_reserved", &memory_reserved, device);
  cuda.def("max_memory_reserved", &max_memory_reserved, device);
  cuda.def("reset_peak_memory_stats", &reset_peak, device);
  cuda.def("reset_accumulated_memory_stats", &reset_accumulated, device);
  cuda.def("memory_stats", &memory_stats, device);
  cuda.def("memory_stats_as_nested_dict", &memory_stats_nested, device);
  cuda.def("memory_summary", &memory_summary, device, py::arg("abbreviated") = false);
  cuda.def("empty_cache", &empty_cache);
  cuda.def("set_per_process_memory_fraction", &set_memory_fraction, py::arg("fraction"), device);
  cuda.def("get_per_process_memory_fraction", &get_memory_fraction, device);
  cuda.def("mem_get_info", &mem_get_info, device);
  cuda.def("is_bf16_supported", [](const py::args&, const py::kwargs&) { return is_bf16_supported(); });
  // The CUDA architectures this torch was built for: none reach the target.
  cuda.def("get_arch_list", []() { return py::list(); });
  cuda.def("get_gencode_flags", []() { return std::string(); });
  cuda.def("utilization", [](const py::object& device) -> int {
    resolve(device);
    unsupported("utilization()", "torchdevice has no measure of the target's busy time");
  }, device);
}

void install_memory_api() {
  const bool count = on_cpu() && cpu_memory_stats_requested();
  cpu_memory_stats_off.store(on_cpu() && !count);
  if (count) {
    install_cpu_memory_counter();
  } else {
    uninstall_cpu_memory_counter();
  }
  auto cuda = py::module_::import("torch.cuda");
  auto memory = py::module_::import("torch.cuda.memory");
  auto api = py::module_::import("torchdevice._C").attr("_cuda");
  for (const char* name :
       {"memory_allocated", "max_memory_allocated", "memory_reserved", "max_memory_reserved",
        "reset_peak_memory_stats", "reset_accumulated_memory_stats", "memory_stats",
        "memory_stats_as_nested_dict", "memory_summary", "empty_cache",
        "set_per_process_memory_fraction", "mem_get_info",
        "get_per_process_memory_fraction", "is_bf16_supported", "get_arch_list",
        "get_gencode_flags", "utilization"}) {
    if (py::hasattr(cuda, name)) {
      patch(cuda, name, api.attr(name));
    }
    if (py::hasattr(memory, name)) {
      patch(memory, name, api.attr(name));
    }
  }
  // torch's deprecated aliases (memory_cached, reset_max_memory_allocated, ...) stay: they warn
  // as before and call the functions above through torch.cuda.memory's globals.
}

void uninstall_memory_api() {
  cpu_memory_stats_off.store(false);
  uninstall_cpu_memory_counter();
}

}  // namespace torchdevice::python
