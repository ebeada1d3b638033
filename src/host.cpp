#include "torchdevice/host.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#if defined(__APPLE__)
#include <mach/mach.h>
#include <uuid/uuid.h>
#include <sys/sysctl.h>
#endif

namespace torchdevice {

namespace {

#if !defined(__APPLE__)
// The value of the first "key<tabs>: value" line of /proc/cpuinfo, or "".
std::string cpuinfo_field(const std::string& key) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind(key, 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos && line.find_first_not_of(" \t", key.size()) == colon) {
        const auto start = line.find_first_not_of(' ', colon + 1);
        return start == std::string::npos ? "" : line.substr(start);
      }
    }
  }
  return "";
}

int64_t read_number(const std::string& path) {
  std::ifstream file(path);
  int64_t value = 0;
  file >> value;
  return file ? value : 0;
}

// A cache's size from sysfs ("1024K"), for the given level and type (Data, Unified).
int64_t sysfs_cache_bytes(int level, bool data) {
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream level_file(dir + "level");
    int found = 0;
    if (!(level_file >> found)) {
      break;
    }
    std::ifstream type_file(dir + "type");
    std::string type;
    type_file >> type;
    if (found != level || (data ? type == "Instruction" : type != "Unified")) {
      continue;
    }
    std::ifstream size_file(dir + "size");
    int64_t size = 0;
    std::string unit;
    size_file >> size >> unit;
    return size * (unit == "K" ? 1024 : unit == "M" ? 1024 * 1024 : 1);
  }
  return 0;
}
#endif

#if defined(__APPLE__)
int64_t sysctl_number(const char* name) {
  int64_t value = 0;
  size_t size = sizeof(value);
  return sysctlbyname(name, &value, &size, nullptr, 0) == 0 ? value : 0;
}
#endif

#if !defined(__APPLE__)
// A "Key:   value kB" line of /proc/meminfo, in bytes; -1 when absent.
int64_t meminfo_bytes(const std::string& key) {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      int64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return -1;
}
#endif

}  // namespace

HostMemory host_memory() {
  HostMemory memory;
  const int64_t page = sysconf(_SC_PAGESIZE);
  memory.total_bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * page;
#if defined(__APPLE__)
  vm_statistics64_data_t vm;
  mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
  if (host_statistics64(mach_host_self(), HOST_VM_INFO64, reinterpret_cast<host_info64_t>(&vm),
                        &count) == KERN_SUCCESS) {
    memory.available_bytes =
        static_cast<int64_t>(vm.free_count + vm.inactive_count + vm.purgeable_count) * page;
  }
#else
  // MemAvailable counts reclaimable caches too, unlike _SC_AVPHYS_PAGES (free pages only).
  memory.available_bytes = meminfo_bytes("MemAvailable");
  if (memory.available_bytes < 0) {
    memory.available_bytes = static_cast<int64_t>(sysconf(_SC_AVPHYS_PAGES)) * page;
  }
#endif
  return memory;
}

int64_t host_processor_count() {
  return static_cast<int64_t>(sysconf(_SC_NPROCESSORS_ONLN));
}

std::string host_processor_name() {
#if defined(__APPLE__)
  char name[256] = {0};
  size_t size = sizeof(name);
  if (sysctlbyname("machdep.cpu.brand_string", name, &size, nullptr, 0) == 0) {
    return name;
  }
#else
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        return line.substr(line.find_first_not_of(' ', colon + 1));
      }
    }
  }
#endif
  return "cpu";
}

HostProcessor host_processor() {
  HostProcessor processor;
  struct utsname names {};
  if (uname(&names) == 0) {
    processor.architecture = names.machine;
  }
#if defined(__APPLE__)
  processor.l1d_cache_bytes = sysctl_number("hw.l1dcachesize");
  processor.l2_cache_bytes = sysctl_number("hw.l2cachesize");
  processor.clock_khz = sysctl_number("hw.cpufrequency_max") / 1000;
  const int64_t physical = sysctl_number("hw.physicalcpu");
  const int64_t logical = sysctl_number("hw.logicalcpu");
  processor.threads_per_core = physical > 0 && logical >= physical ? logical / physical : 1;
  processor.simd_float_lanes = processor.architecture == "arm64" ? 4 : 8;  // NEON, or AVX
  uuid_t id;
  const timespec wait{0, 0};
  if (gethostuuid(id, &wait) == 0) {
    uuid_string_t text;
    uuid_unparse(id, text);
    processor.machine_id = text;
  }
#else
  processor.l1d_cache_bytes = sysfs_cache_bytes(1, true);
  processor.l2_cache_bytes = sysfs_cache_bytes(2, false);
  processor.clock_khz = read_number("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
  if (processor.clock_khz == 0) {
    processor.clock_khz = static_cast<int64_t>(std::atof(cpuinfo_field("cpu MHz").c_str()) * 1000);
  }
  const int64_t siblings = std::atoll(cpuinfo_field("siblings").c_str());
  const int64_t cores = std::atoll(cpuinfo_field("cpu cores").c_str());
  processor.threads_per_core = cores > 0 && siblings >= cores ? siblings / cores : 1;
  const std::string flags = " " + cpuinfo_field("flags") + cpuinfo_field("Features") + " ";
  const auto has = [&](const char* flag) {
    return flags.find(std::string(" ") + flag + " ") != std::string::npos;
  };
  processor.simd_float_lanes = has("avx512f") ? 16 : (has("avx") || has("avx2")) ? 8
                               : (has("sse2") || has("asimd") || has("neon")) ? 4 : 1;
  std::ifstream machine_id("/etc/machine-id");
  std::string id;
  if (machine_id >> id && id.size() == 32) {
    processor.machine_id = id.substr(0, 8) + "-" + id.substr(8, 4) + "-" + id.substr(12, 4) + "-" +
                           id.substr(16, 4) + "-" + id.substr(20);
  }
#endif
  return processor;
}

}  // namespace torchdevice
