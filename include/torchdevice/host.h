#pragma once

#include <cstdint>
#include <string>

// The host machine, read from the operating system: the CPU target's device properties.
namespace torchdevice {

struct HostMemory {
  int64_t total_bytes = 0;      // physical memory
  int64_t available_bytes = 0;  // what the kernel says can be allocated without swapping
};

HostMemory host_memory();
// Processors online, as the CPU target's multi_processor_count.
int64_t host_processor_count();
// The CPU's marketing name ("Intel(R) Xeon(R) ..."), or "cpu" when the system does not say.
std::string host_processor_name();

}  // namespace torchdevice
