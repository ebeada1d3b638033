#include "torchdevice/host.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#if defined(__APPLE__)
#include <mach/mach.h>
#include <sys/sysctl.h>
#endif

namespace torchdevice {

namespace {

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

}  // namespace torchdevice
