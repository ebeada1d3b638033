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

// What the system says about the processor, for the CPU target's remaining device properties.
// Each field is 0 (or empty) where the system does not say.
struct HostProcessor {
  int64_t l1d_cache_bytes = 0;   // per core
  int64_t l2_cache_bytes = 0;
  int64_t clock_khz = 0;         // the highest clock the system reports
  int64_t threads_per_core = 1;  // simultaneous multithreading
  int64_t simd_float_lanes = 1;  // float32 lanes of the widest vector unit (AVX-512: 16)
  std::string architecture;      // uname's machine: "x86_64", "arm64"
  std::string machine_id;        // the system's stable id, as a UUID string
};
HostProcessor host_processor();

}  // namespace torchdevice
