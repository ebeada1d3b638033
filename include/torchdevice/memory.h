#pragma once

#include <c10/core/Allocator.h>
#include <c10/util/Optional.h>
#include <torch/version.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace torchdevice {

// torch 2.x made Allocator::allocate non-const (both tested by cmake/torch_features.cmake).
#if TORCHDEVICE_ALLOCATE_IS_MUTABLE
#define TORCHDEVICE_ALLOCATE_CONST
#else
#define TORCHDEVICE_ALLOCATE_CONST const
#endif

// A snapshot of an allocator's statistics (a CountingAllocator's, or a device allocator's), in
// torch.cuda.memory_stats' terms.
struct MemoryStats {
  int64_t allocated_bytes = 0;        // live bytes now
  int64_t peak_allocated_bytes = 0;   // most live bytes since the last peak reset
  int64_t total_allocated_bytes = 0;  // bytes ever allocated
  int64_t total_freed_bytes = 0;      // bytes ever freed
  int64_t reserved_bytes = 0;         // held from the system now: allocated + cached
  int64_t peak_reserved_bytes = 0;
  int64_t allocations = 0;            // live allocations now
  int64_t peak_allocations = 0;
  int64_t total_allocations = 0;
  int64_t total_frees = 0;
  int64_t num_ooms = 0;  // allocations refused by the limit
};

// Wraps another allocator and counts the bytes it hands out and gets back. Every allocation is
// delegated to the wrapped one, a few bytes larger: a header in front of the caller's bytes keeps
// the size and the wrapped allocator's own context and deleter, which the returned DataPtr's
// deleter counts and then runs. Because memory may be freed after the wrapper is uninstalled, a
// CountingAllocator must outlive every DataPtr it made: instances are meant to live for the whole
// process.
class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* inner);

  c10::DataPtr allocate(size_t n) TORCHDEVICE_ALLOCATE_CONST override;
  c10::DeleterFnPtr raw_deleter() const override;
#if TORCHDEVICE_ALLOCATOR_HAS_COPY_DATA
  void copy_data(void* dest, const void* src, std::size_t count) const override;
#endif

  c10::Allocator* inner() const { return inner_; }

  MemoryStats stats() const;
  // Peaks drop to the current values (torch.cuda.reset_peak_memory_stats).
  void reset_peak();
  // Cumulative counters drop to zero (torch.cuda.reset_accumulated_memory_stats).
  void reset_accumulated();
  // Refuses allocations that would take live bytes above `limit_bytes` (negative: no limit),
  // as torch.cuda.set_per_process_memory_fraction does on CUDA.
  void set_limit(int64_t limit_bytes);
  int64_t limit() const { return limit_.load(std::memory_order_relaxed); }

 private:
  static void release(void* data);
  void on_free(size_t n);

  c10::Allocator* inner_;
  mutable std::atomic<int64_t> live_bytes_{0};
  mutable std::atomic<int64_t> peak_bytes_{0};
  mutable std::atomic<int64_t> live_allocations_{0};
  mutable std::atomic<int64_t> peak_allocations_{0};
  std::atomic<int64_t> freed_bytes_{0};
  std::atomic<int64_t> frees_{0};
  mutable std::atomic<int64_t> num_ooms_{0};
  std::atomic<int64_t> limit_{-1};
  // The cumulative counts at the last reset_accumulated (only its total_* and num_ooms).
  mutable std::mutex baseline_mutex_;
  MemoryStats baseline_;
};

// Puts a CountingAllocator in front of the CPU allocator (idempotent) and returns it. The same
// counter is reused by later installs, so its counts continue.
CountingAllocator& install_cpu_memory_counter();
// Puts back exactly the allocator that was there before, if the counter is still in place.
// Memory the counter handed out stays valid and its frees are still counted.
void uninstall_cpu_memory_counter();
// The CPU counter, or nullptr when it has never been installed.
CountingAllocator* cpu_memory_counter();
bool cpu_memory_counter_installed();

}  // namespace torchdevice
