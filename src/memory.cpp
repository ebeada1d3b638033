#include "torchdevice/memory.h"

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include "torchdevice/log.h"

#include <memory>
#include <mutex>

namespace torchdevice {

namespace {

// What a counted DataPtr carries: the wrapped allocator's own DataPtr (freed with it) and the size.
struct Counted {
  c10::DataPtr inner;
  size_t size;
  CountingAllocator* owner;
};

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
  const auto size = static_cast<int64_t>(n);
  const int64_t cap = limit_.load(std::memory_order_relaxed);
  const int64_t live = allocated_.fetch_add(size, std::memory_order_relaxed) + size;
  if (cap >= 0 && live > cap) {
    allocated_.fetch_sub(size, std::memory_order_relaxed);
    num_ooms_.fetch_add(1, std::memory_order_relaxed);
    TORCH_CHECK_WITH(OutOfMemoryError, false, "torchdevice: out of memory: tried to allocate ",
                     n, " bytes with ", live - size, " bytes allocated, above the limit of ", cap,
                     " bytes set by torch.cuda.set_per_process_memory_fraction");
  }
  c10::DataPtr inner;
  try {
    inner = inner_->allocate(n);
  } catch (...) {
    allocated_.fetch_sub(size, std::memory_order_relaxed);
    throw;
  }
  const c10::Device device = inner.device();
  void* data = inner.get();
  auto* context = new Counted{std::move(inner), n, const_cast<CountingAllocator*>(this)};
  raise_peak(peak_allocated_, live);
  raise_peak(peak_allocations_, allocations_.fetch_add(1, std::memory_order_relaxed) + 1);
  total_allocated_.fetch_add(size, std::memory_order_relaxed);
  total_allocations_.fetch_add(1, std::memory_order_relaxed);
  return c10::DataPtr(data, context, &CountingAllocator::release, device);
}

#if TORCH_VERSION_MAJOR >= 2
void CountingAllocator::copy_data(void* dest, const void* src, std::size_t count) const {
  inner_->copy_data(dest, src, count);
}
#endif

void CountingAllocator::release(void* context) {
  std::unique_ptr<Counted> counted(static_cast<Counted*>(context));
  counted->owner->on_free(counted->size);
  // counted->inner's own deleter runs here, with the unique_ptr.
}

void CountingAllocator::on_free(size_t n) {
  const auto size = static_cast<int64_t>(n);
  allocated_.fetch_sub(size, std::memory_order_relaxed);
  allocations_.fetch_sub(1, std::memory_order_relaxed);
  total_freed_.fetch_add(size, std::memory_order_relaxed);
  total_frees_.fetch_add(1, std::memory_order_relaxed);
}

MemoryStats CountingAllocator::stats() const {
  MemoryStats s;
  s.allocated_bytes = allocated_.load(std::memory_order_relaxed);
  s.peak_allocated_bytes = peak_allocated_.load(std::memory_order_relaxed);
  s.total_allocated_bytes = total_allocated_.load(std::memory_order_relaxed);
  s.total_freed_bytes = total_freed_.load(std::memory_order_relaxed);
  s.allocations = allocations_.load(std::memory_order_relaxed);
  s.peak_allocations = peak_allocations_.load(std::memory_order_relaxed);
  s.total_allocations = total_allocations_.load(std::memory_order_relaxed);
  s.total_frees = total_frees_.load(std::memory_order_relaxed);
  s.num_ooms = num_ooms_.load(std::memory_order_relaxed);
  return s;
}

void CountingAllocator::reset_peak() {
  peak_allocated_.store(allocated_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  peak_allocations_.store(allocations_.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void CountingAllocator::reset_accumulated() {
  total_allocated_.store(0, std::memory_order_relaxed);
  total_freed_.store(0, std::memory_order_relaxed);
  total_allocations_.store(0, std::memory_order_relaxed);
  total_frees_.store(0, std::memory_order_relaxed);
  num_ooms_.store(0, std::memory_order_relaxed);
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
