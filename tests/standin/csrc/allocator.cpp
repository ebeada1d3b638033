#include "allocator.h"

#include "config.h"
#include "device.h"
#include "stream.h"

#include <c10/util/Exception.h>
#include <torch/version.h>

#include <array>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>

namespace torchdevice::standin {
namespace {

using c10::CachingDeviceAllocator::DeviceStats;
using c10::CachingDeviceAllocator::format_size;
using c10::CachingDeviceAllocator::Stat;
using c10::CachingDeviceAllocator::StatArray;

constexpr size_t kAlignment = 64;

struct Block {
  void* data;
  size_t size;
  c10::DeviceIndex device;
};

struct DeviceMemory {
  DeviceStats stats;
  size_t limit = 0;
};

struct State {
  std::mutex mutex;
  std::array<DeviceMemory, kMaxDevices> devices;
  std::map<const void*, Block> blocks;  // by start address, for device_of()
};

State& state() {
  // Leaked: tensors freed during interpreter teardown still return their blocks here.
  static State* value = [] {
    auto* created = new State;
    for (auto& device : created->devices) {
      device.limit = default_memory_limit();
    }
    return created;
  }();
  return *value;
}

void increase(StatArray& stat, size_t amount) {
  stat[static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE)].increase(amount);
}
void decrease(StatArray& stat, size_t amount) {
  stat[static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE)].decrease(amount);
}

size_t allocated(const DeviceMemory& memory) {
  return static_cast<size_t>(
      memory.stats.allocated_bytes[static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE)]
          .current);
}

[[noreturn]] void out_of_memory(const DeviceMemory& memory, c10::DeviceIndex index, size_t size) {
  if (kMpsRules) {
    // MPS raises a plain RuntimeError (TORCH_CHECK), not torch.OutOfMemoryError, in these words
    // (aten/src/ATen/mps/MPSAllocator.mm, alloc_buffer_block); only the remedy is the emulation's.
    TORCH_CHECK(false, kName, " backend out of memory (", kName, " allocated: ",
                format_size(allocated(memory)), ", other allocations: ", format_size(0),
                ", max allowed: ", format_size(memory.limit), "). Tried to allocate ",
                format_size(size),
                " on private pool. Use TORCHDEVICE_STANDIN_MEMORY_LIMIT to change the upper limit "
                "for memory allocations.");
  }
  TORCH_CHECK_WITH(OutOfMemoryError, false, "standin out of memory. Tried to allocate ",
                   format_size(size), ". standin device ", static_cast<int>(index),
                   " has a limit of ", format_size(memory.limit), ", of which ",
                   format_size(allocated(memory)), " is allocated.");
}

void free_block(void* context) {
  if (context == nullptr) {
    return;
  }
  auto* block = static_cast<Block*>(context);
  {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    DeviceStats& stats = s.devices[block->device].stats;
    decrease(stats.allocated_bytes, block->size);
    decrease(stats.reserved_bytes, block->size);
    decrease(stats.active_bytes, block->size);
    decrease(stats.requested_bytes, block->size);
    decrease(stats.allocation, 1);
    decrease(stats.segment, 1);
    decrease(stats.active, 1);
    ++stats.num_device_free;
    s.blocks.erase(block->data);
  }
  std::free(block->data);
  delete block;
}

// The emulated MPS is a DeviceAllocator only where torch's MPS allocator is one
// (TORCHDEVICE_MPS_DEVICE_ALLOCATOR, set by tests/mps_emulated/CMakeLists.txt).
#if (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 9)) && \
    (!defined(TORCHDEVICE_EMULATED_MPS) || defined(TORCHDEVICE_MPS_DEVICE_ALLOCATOR))
#define TORCHDEVICE_STANDIN_DEVICE_ALLOCATOR 1
using AllocatorBase = c10::DeviceAllocator;
#else
using AllocatorBase = c10::Allocator;
#endif

class DeviceAllocator final : public AllocatorBase {
 public:
  c10::DataPtr allocate(size_t size) override {
    const c10::DeviceIndex index = current_device();
    const c10::Device device = device_at(index);
    if (size == 0) {
      return {nullptr, nullptr, &free_block, device};
    }
    State& s = state();
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      DeviceMemory& memory = s.devices[index];
      if (allocated(memory) + size > memory.limit) {
        ++memory.stats.num_ooms;
        out_of_memory(memory, index, size);
      }
      increase(memory.stats.allocated_bytes, size);
      increase(memory.stats.reserved_bytes, size);
      increase(memory.stats.active_bytes, size);
      increase(memory.stats.requested_bytes, size);
      increase(memory.stats.allocation, 1);
      increase(memory.stats.segment, 1);
      increase(memory.stats.active, 1);
      ++memory.stats.num_device_alloc;
    }
    void* data = std::aligned_alloc(kAlignment, (size + kAlignment - 1) / kAlignment * kAlignment);
    auto* block = new Block{data, size, index};
    if (data == nullptr) {
      free_block(block);  // undoes the accounting
      TORCH_CHECK_WITH(OutOfMemoryError, false, "standin: the host could not provide ",
                       format_size(size));
    }
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      s.blocks.emplace(data, *block);
    }
    return {data, block, &free_block, device};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

#ifdef TORCHDEVICE_STANDIN_DEVICE_ALLOCATOR
  bool initialized() override { return true; }
  // Nothing is cached: freed blocks go straight back to the host.
  void emptyCache(c10::MempoolId_t /*mempool_id*/) override {}
  void recordStream(const c10::DataPtr& /*ptr*/, c10::Stream /*stream*/) override {}
  DeviceStats getDeviceStats(c10::DeviceIndex index) override { return memory_stats(index); }
  void resetAccumulatedStats(c10::DeviceIndex index) override {
    reset_accumulated_memory_stats(index);
  }
  void resetPeakStats(c10::DeviceIndex index) override { reset_peak_memory_stats(index); }
#endif
};

class PinnedAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t size) override {
    void* data = size == 0 ? nullptr : std::malloc(size);
    TORCH_CHECK_WITH(OutOfMemoryError, size == 0 || data != nullptr,
                     "standin: could not allocate ", format_size(size), " of pinned memory");
    if (data != nullptr) {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks_[data] = size;
    }
    return {data, data, &free_pinned, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  bool contains(const void* data) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = blocks_.upper_bound(data);
    if (it == blocks_.begin()) {
      return false;
    }
    --it;
    return static_cast<const char*>(data) < static_cast<const char*>(it->first) + it->second;
  }

 private:
  static void free_pinned(void* data);

  std::mutex mutex_;
  std::map<const void*, size_t> blocks_;
};

PinnedAllocator* pinned = new PinnedAllocator;

void PinnedAllocator::free_pinned(void* data) {
  if (data == nullptr) {
    return;
  }
  {
    std::lock_guard<std::mutex> lock(pinned->mutex_);
    pinned->blocks_.erase(data);
  }
  std::free(data);
}

DeviceAllocator allocator_instance;

// Every per-pool statistic of `stats`, for the resets.
template <class Fn>
void for_each_stat(DeviceStats& stats, Fn fn) {
  for (StatArray* array : {&stats.allocation, &stats.segment, &stats.active, &stats.inactive_split,
                           &stats.allocated_bytes, &stats.reserved_bytes, &stats.active_bytes,
                           &stats.inactive_split_bytes, &stats.requested_bytes}) {
    for (Stat& stat : *array) {
      fn(stat);
    }
  }
}

} // namespace

c10::Allocator& device_allocator() { return allocator_instance; }

DeviceStats memory_stats(c10::DeviceIndex index) {
  check_device_index(index);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.devices[index].stats;
}

void reset_peak_memory_stats(c10::DeviceIndex index) {
  check_device_index(index);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  for_each_stat(s.devices[index].stats, [](Stat& stat) { stat.reset_peak(); });
}

void reset_accumulated_memory_stats(c10::DeviceIndex index) {
  check_device_index(index);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  DeviceStats& stats = s.devices[index].stats;
  for_each_stat(stats, [](Stat& stat) { stat.reset_accumulated(); });
  stats.num_ooms = 0;
  stats.num_device_alloc = 0;
  stats.num_device_free = 0;
}

size_t memory_limit(c10::DeviceIndex index) {
  check_device_index(index);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.devices[index].limit;
}

void set_memory_limit(c10::DeviceIndex index, size_t bytes) {
  check_device_index(index);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.devices[index].limit = bytes;
}

std::optional<c10::DeviceIndex> device_of(const void* data) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto it = s.blocks.upper_bound(data);
  if (it == s.blocks.begin()) {
    return std::nullopt;
  }
  --it;
  const Block& block = it->second;
  if (static_cast<const char*>(data) >= static_cast<const char*>(block.data) + block.size) {
    return std::nullopt;
  }
  return block.device;
}

c10::Allocator& pinned_allocator() { return *pinned; }

bool is_pinned(const void* data) { return pinned->contains(data); }

} // namespace torchdevice::standin

// Registered at load: from here on every storage of the device is allocated here.
REGISTER_ALLOCATOR(torchdevice::standin::kDeviceType, &torchdevice::standin::allocator_instance);
