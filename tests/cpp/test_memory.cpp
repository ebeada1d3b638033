#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/alignment.h>
#include <c10/util/Exception.h>

#include "torchdevice/host.h"
#include "torchdevice/memory.h"

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace torchdevice {
namespace {

TEST(CountingAllocator, CountsAllocationsAndFrees) {
  CountingAllocator counter(c10::GetCPUAllocator());
  {
    c10::DataPtr a = counter.allocate(1000);
    c10::DataPtr b = counter.allocate(24);
    ASSERT_NE(a.get(), nullptr);
    EXPECT_EQ(a.device(), c10::Device(c10::DeviceType::CPU));
    static_cast<char*>(a.get())[999] = 1;  // the memory is really there
    MemoryStats s = counter.stats();
    EXPECT_EQ(s.allocated_bytes, 1024);
    EXPECT_EQ(s.allocations, 2);
    b.clear();
    s = counter.stats();
    EXPECT_EQ(s.allocated_bytes, 1000);
    EXPECT_EQ(s.allocations, 1);
    EXPECT_EQ(s.peak_allocated_bytes, 1024);
  }
  const MemoryStats s = counter.stats();
  EXPECT_EQ(s.allocated_bytes, 0);
  EXPECT_EQ(s.allocations, 0);
  EXPECT_EQ(s.peak_allocated_bytes, 1024);
  EXPECT_EQ(s.peak_allocations, 2);
  EXPECT_EQ(s.total_allocated_bytes, 1024);
  EXPECT_EQ(s.total_freed_bytes, 1024);
  EXPECT_EQ(s.total_allocations, 2);
  EXPECT_EQ(s.total_frees, 2);
}

TEST(CountingAllocator, ResetsPeakToCurrentAndAccumulatedToZero) {
  CountingAllocator counter(c10::GetCPUAllocator());
  c10::DataPtr keep = counter.allocate(100);
  counter.allocate(5000).clear();
  EXPECT_EQ(counter.stats().peak_allocated_bytes, 5100);
  counter.reset_peak();
  EXPECT_EQ(counter.stats().peak_allocated_bytes, 100);
  EXPECT_EQ(counter.stats().peak_allocations, 1);
  counter.reset_accumulated();
  EXPECT_EQ(counter.stats().total_allocated_bytes, 0);
  EXPECT_EQ(counter.stats().total_frees, 0);
  EXPECT_EQ(counter.stats().allocated_bytes, 100);
}

TEST(CountingAllocator, LimitRefusesWithOutOfMemoryAndKeepsCountsExact) {
  CountingAllocator counter(c10::GetCPUAllocator());
  counter.set_limit(4096);
  c10::DataPtr fits = counter.allocate(4000);
  EXPECT_THROW(counter.allocate(200), c10::OutOfMemoryError);
  const MemoryStats s = counter.stats();
  EXPECT_EQ(s.allocated_bytes, 4000);
  EXPECT_EQ(s.num_ooms, 1);
  counter.set_limit(-5);
  EXPECT_EQ(counter.limit(), -1);
  EXPECT_NO_THROW(counter.allocate(200));
}

TEST(CountingAllocator, ConcurrentAllocationsBalance) {
  CountingAllocator counter(c10::GetCPUAllocator());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&counter] {
      for (int i = 0; i < 2000; ++i) {
        counter.allocate(64 + i % 7).clear();
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  const MemoryStats s = counter.stats();
  EXPECT_EQ(s.allocated_bytes, 0);
  EXPECT_EQ(s.allocations, 0);
  EXPECT_EQ(s.total_allocations, 8000);
  EXPECT_EQ(s.total_frees, 8000);
  EXPECT_EQ(s.total_allocated_bytes, s.total_freed_bytes);
}

TEST(CountingAllocator, BlocksAreSimpleDataPtrsThatRawAllocateCanUse) {
  CountingAllocator counter(c10::GetCPUAllocator());
  c10::DataPtr block = counter.allocate(100);
  // Context == data is what torch's raw_allocate and copy-on-write clones require.
  EXPECT_EQ(block.get(), block.get_context());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(block.get()) % c10::gAlignment, 0u);
  block.clear();
  void* raw = counter.raw_allocate(300);
  EXPECT_EQ(counter.stats().allocated_bytes, 300);
  counter.raw_deallocate(raw);
  const MemoryStats s = counter.stats();
  EXPECT_EQ(s.allocated_bytes, 0);
  EXPECT_EQ(s.total_allocated_bytes, 400);
  EXPECT_EQ(s.total_frees, 2);
}

// Fails every allocation the way an exhausted allocator does.
class ExhaustedAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) TORCHDEVICE_ALLOCATE_CONST override {
    TORCH_CHECK_WITH(OutOfMemoryError, false, "not enough memory: you tried to allocate ", n,
                     " bytes");
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
#if TORCH_VERSION_MAJOR >= 2
  void copy_data(void*, const void*, std::size_t) const override {}
#endif
};

TEST(CountingAllocator, FailureKeepsItsTypeAndSaysWhatWasRequested) {
  ExhaustedAllocator exhausted;
  CountingAllocator counter(&exhausted);
  try {
    counter.allocate(1000);
    FAIL() << "expected the wrapped allocator's error";
  } catch (const c10::OutOfMemoryError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("not enough memory"), std::string::npos) << message;
    EXPECT_NE(message.find("1000 bytes were requested"), std::string::npos) << message;
  }
  EXPECT_EQ(counter.stats().total_allocations, 0);
}

TEST(CountingAllocator, EmptyAllocationsAreNotCountedAsCudasAreNot) {
  CountingAllocator counter(c10::GetCPUAllocator());
  c10::DataPtr empty = counter.allocate(0);
  EXPECT_EQ(empty.get(), nullptr);
  EXPECT_EQ(empty.device(), c10::Device(c10::DeviceType::CPU));
  EXPECT_EQ(counter.stats().total_allocations, 0);
  empty.clear();
  EXPECT_EQ(counter.stats().total_frees, 0);
}

TEST(CpuMemoryCounter, InstallCountsTensorsAndUninstallRestoresTheOriginal) {
  c10::Allocator* original = c10::GetAllocator(c10::DeviceType::CPU);
  CountingAllocator& counter = install_cpu_memory_counter();
  EXPECT_EQ(&install_cpu_memory_counter(), &counter);  // idempotent
  EXPECT_EQ(c10::GetAllocator(c10::DeviceType::CPU), &counter);
  EXPECT_EQ(counter.inner(), original);

  const int64_t before = counter.stats().allocated_bytes;
  at::Tensor t = at::ones({256}, at::kFloat);
  EXPECT_EQ(counter.stats().allocated_bytes, before + 1024);

  uninstall_cpu_memory_counter();
  EXPECT_EQ(c10::GetAllocator(c10::DeviceType::CPU), original);
  EXPECT_FALSE(cpu_memory_counter_installed());
  // Allocated by the counter, freed after it is gone: the deleter still works and still counts.
  EXPECT_FLOAT_EQ(t.sum().item<float>(), 256.0f);
  t.reset();
  EXPECT_EQ(counter.stats().allocated_bytes, before);
  at::Tensor after = at::ones({256}, at::kFloat);
  EXPECT_EQ(counter.stats().allocated_bytes, before);  // not counted once uninstalled
  uninstall_cpu_memory_counter();                     // a no-op
  EXPECT_EQ(c10::GetAllocator(c10::DeviceType::CPU), original);
  // Reinstalling reuses the same counter, so its history continues.
  EXPECT_EQ(&install_cpu_memory_counter(), &counter);
  uninstall_cpu_memory_counter();
}

TEST(Host, ReportsTheMachine) {
  const HostMemory memory = host_memory();
  EXPECT_GT(memory.total_bytes, 0);
  EXPECT_GT(memory.available_bytes, 0);
  EXPECT_LE(memory.available_bytes, memory.total_bytes);
  EXPECT_GE(host_processor_count(), 1);
  EXPECT_FALSE(host_processor_name().empty());
}

}  // namespace
}  // namespace torchdevice
