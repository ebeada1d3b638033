#include <gtest/gtest.h>

#include <c10/core/CPUAllocator.h>

#include "torchdevice/memory.h"
#include "torchdevice/memory_history.h"

#include <cstdint>

namespace torchdevice {
namespace {

TEST(MemoryHistory, RecordsLiveBlocksAndTheTrace) {
  CountingAllocator counter(c10::GetCPUAllocator());
  memory_history::start(10, nullptr);
  c10::DataPtr block = counter.allocate(4096);
  const auto address = reinterpret_cast<uintptr_t>(block.get());
  bool live = false;
  for (const auto& b : memory_history::live_blocks()) {
    live = live || (b.address == address && b.size == 4096);
  }
  EXPECT_TRUE(live);
  block.clear();
  memory_history::stop();
  const auto trace = memory_history::trace();
  ASSERT_GE(trace.size(), 2u);
  EXPECT_TRUE(trace[trace.size() - 2].alloc);
  EXPECT_FALSE(trace.back().alloc);
  EXPECT_EQ(trace.back().address, address);
  for (const auto& b : memory_history::live_blocks()) {
    EXPECT_NE(b.address, address);
  }
}

}  // namespace
}  // namespace torchdevice
