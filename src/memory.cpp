#include "torchdevice/memory.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/alignment.h>
#include <c10/util/Exception.h>

#include "torchdevice/log.h"
#include "torchdevice/memory_history.h"

#include <mutex>
#include <new>

namespace torchdevice {

namespace {

// Each counted block starts with this header, written in front of the caller's bytes: the caller
// gets `base + kHeader`, the DataPtr's context is that same pointer (as torch's copy-on-write
// clones and raw_allocate require), and the deleter finds the header from it. No allocation of
// its own per block: a context on the heap cost as much as the counting.
struct Header {
  size_t size;
  CountingAllocator* owner;
  void* inner_context;
  c10::DeleterFnPtr inner_deleter;
};
// Keeps the caller's bytes aligned as the wrapped allocator aligned the block.
constexpr size_t kHeader = (sizeof(Header) + c10::gAlignment - 1) / c10::gAlignment * c10::gAlignment;

Header* header_of(void* data) {
  return reinterpret_cast<Header*>(static_cast<char*>(data) - kHeader);
}

void raise_peak(std::atomic<int64_t>& peak, int64_t value) {
  int64_t seen = peak.load(std::memory_order_relaxed);
  while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

std::mutex cpu_mutex;
// Never freed: DataPtrs it made may be released at any time, even after uninstall.
CountingAllocator* cpu_counter = nullptr;
c10::Allocator* cpu_original = nullptr;  // what the counter replaced, while installed

}  // namespace

CountingAllocator::CountingAllocator(c10::Allocator* inner) : inner_(inner) {
  TORCH_CHECK(inner_ != nullptr, "CountingAllocator needs an allocator to wrap");
}

c10::DataPtr CountingAllocator::allocate(size_t n) TORCHDEVICE_ALLOCATE_CONST {
  if (n == 0) {
    // Like CUDA's allocator, an empty allocation is no allocation: nothing to count or free.
    const c10::Device device = inner_->allocate(0).device();
    return c10::DataPtr(nullptr, nullptr, &CountingAllocator::release, device);
  }
  const auto size = static_cast<int64_t>(n);
  const int64_t cap = limit_.load(std::memory_order_relaxed);
  if (cap >= 0) {
    const int64_t live = live_bytes_.load(std::memory_order_relaxed);
    if (live + size > cap) {
      num_ooms_.fetch_add(1, std::memory_order_relaxed);
      TORCH_CHECK_WITH(OutOfMemoryError, false, "torchdevice: out of memory: tried to allocate ",
                       n, " bytes with ", live, " bytes allocated, above the limit of ", cap,
                       " bytes set by torch.cuda.set_per_process_memory_fraction");
    }
  }
  c10::DataPtr inner;
  try {
    inner = inner_->allocate(n + kHeader);  // counted only once it succeeded
  } catch (c10::Error& error) {
    // The wrapped allocator's message quotes the size it was asked for, the header included.
    error.add_context(c10::str("torchdevice: ", n, " bytes were requested; the CPU allocator was "
                               "asked for ", kHeader, " more, for the header torchdevice keeps "
                               "in front of each block to count CPU memory"));
    throw;
  }
  const c10::Device device = inner.device();
  char* base = static_cast<char*>(inner.get());
  const c10::DeleterFnPtr inner_deleter = inner.get_deleter();
  void* inner_context = inner.move_context().release();
  new (base) Header{n, const_cast<CountingAllocator*>(this), inner_context, inner_deleter};
  raise_peak(peak_bytes_, live_bytes_.fetch_add(size, std::memory_order_relaxed) + size);
  raise_peak(peak_allocations_, live_allocations_.fetch_add(1, std::memory_order_relaxed) + 1);
  void* data = base + kHeader;
  if (memory_history::recording()) {
    memory_history::on_alloc(data, n);
  }
  return c10::DataPtr(data, data, &CountingAllocator::release, device);
}

c10::DeleterFnPtr CountingAllocator::raw_deleter() const {
  return &CountingAllocator::release;
}

#if TORCHDEVICE_ALLOCATOR_HAS_COPY_DATA
void CountingAllocator::copy_data(void* dest, const void* src, std::size_t count) const {
  inner_->copy_data(dest, src, count);
}
#endif

void CountingAllocator::release(void* data) {
  if (data == nullptr) {
    return;
  }
  const Header header = *header_of(data);
  if (memory_history::recording()) {
    memory_history::on_free(data, header.size);
  }
  header.owner->on_free(header.size);
  header.inner_deleter(header.inner_context);
}

void CountingAllocator::on_free(size_t n) {
  const auto size = static_cast<int64_t>(n);
  live_bytes_.fetch_sub(size, std::memory_order_relaxed);
  live_allocations_.fetch_sub(1, std::memory_order_relaxed);
  freed_bytes_.fetch_add(size, std::memory_order_relaxed);
  frees_.fetch_add(1, std::memory_order_relaxed);
}

// The cumulative counts are derived (allocated = live + freed), so an allocation updates two
// counters and a free four; reset_accumulated moves a baseline instead of zeroing them.
MemoryStats CountingAllocator::stats() const {
  MemoryStats s;
  s.allocated_bytes = live_bytes_.load(std::memory_order_relaxed);
  s.peak_allocated_bytes = peak_bytes_.load(std::memory_order_relaxed);
  s.allocations = live_allocations_.load(std::memory_order_relaxed);
  s.peak_allocations = peak_allocations_.load(std::memory_order_relaxed);
  const int64_t freed_bytes = freed_bytes_.load(std::memory_order_relaxed);
  const int64_t frees = frees_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(baseline_mutex_);
  s.total_freed_bytes = freed_bytes - baseline_.total_freed_bytes;
  s.total_frees = frees - baseline_.total_frees;
  s.total_allocated_bytes = s.allocated_bytes + freed_bytes - baseline_.total_allocated_bytes;
  s.total_allocations = s.allocations + frees - baseline_.total_allocations;
  s.num_ooms = num_ooms_.load(std::memory_order_relaxed) - baseline_.num_ooms;
  // Nothing is cached: every byte held is allocated.
  s.reserved_bytes = s.allocated_bytes;
  s.peak_reserved_bytes = s.peak_allocated_bytes;
  return s;
}

void CountingAllocator::reset_peak() {
  peak_bytes_.store(live_bytes_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  peak_allocations_.store(live_allocations_.load(std::memory_order_relaxed),
                          std::memory_order_relaxed);
}

void CountingAllocator::reset_accumulated() {
  const int64_t freed_bytes = freed_bytes_.load(std::memory_order_relaxed);
  const int64_t frees = frees_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(baseline_mutex_);
  baseline_.total_freed_bytes = freed_bytes;
  baseline_.total_frees = frees;
  baseline_.total_allocated_bytes = live_bytes_.load(std::memory_order_relaxed) + freed_bytes;
  baseline_.total_allocations = live_allocations_.load(std::memory_order_relaxed) + frees;
  baseline_.num_ooms = num_ooms_.load(std::memory_order_relaxed);
}

void CountingAllocator::set_limit(int64_t limit_bytes) {
  limit_.store(limit_bytes < 0 ? -1 : limit_bytes, std::memory_order_relaxed);
}

CountingAllocator& install_cpu_memory_counter() {
  std::lock_guard<std::mutex> lock(cpu_mutex);
  if (cpu_original != nullptr) {
    return *cpu_counter;
  }
  c10::Allocator* current = c10::GetAllocator(c10::DeviceType::CPU);
  if (cpu_counter == nullptr || cpu_counter->inner() != current) {
    // A different allocator now (someone replaced it): wrap that one. The old counter stays
    // alive for the memory it handed out.
    cpu_counter = new CountingAllocator(current);
  }
  c10::SetAllocator(c10::DeviceType::CPU, cpu_counter);
  // SetAllocator ignores a registration below the priority already in force.
  TORCH_CHECK(c10::GetAllocator(c10::DeviceType::CPU) == cpu_counter,
              "torchdevice: the CPU allocator was registered with a priority that cannot be "
              "overridden, so CPU memory cannot be counted");
  cpu_original = current;
  log::debug("torchdevice: counting CPU allocations");
  return *cpu_counter;
}

void uninstall_cpu_memory_counter() {
  std::lock_guard<std::mutex> lock(cpu_mutex);
  if (cpu_original == nullptr) {
    return;
  }
  if (c10::GetAllocator(c10::DeviceType::CPU) == cpu_counter) {
    c10::SetAllocator(c10::DeviceType::CPU, cpu_original);
  }
  cpu_original = nullptr;
}

CountingAllocator* cpu_memory_counter() {
  std::lock_guard<std::mutex> lock(cpu_mutex);
  return cpu_counter;
}

bool cpu_memory_counter_installed() {
  std::lock_guard<std::mutex> lock(cpu_mutex);
  return cpu_original != nullptr;
}

}  // namespace torchdevice
