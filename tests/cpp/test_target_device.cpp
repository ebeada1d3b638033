#include <gtest/gtest.h>

#include <c10/util/Exception.h>

#include "torchdevice/target_device.h"

#include <chrono>
#include <thread>

namespace torchdevice {
namespace {

using c10::Device;
using c10::DeviceType;

TEST(TargetDevice, TheCpuIsAlwaysSynchronized) {
  EXPECT_TRUE(target_device::synchronize(Device(DeviceType::CPU)));
}

TEST(TargetDevice, NoGenericRouteIsSaidNotFaked) {
  // No device is registered for these on a CPU-only build: every question says "no route".
  const Device absent(DeviceType::XPU, 0);
  EXPECT_FALSE(target_device::synchronize(absent));
  EXPECT_FALSE(target_device::allocator_stats(absent).has_value());
  EXPECT_FALSE(target_device::reset_peak(absent));
  EXPECT_FALSE(target_device::empty_cache(absent));
  EXPECT_FALSE(target_device::has_device_events(Device(DeviceType::CPU)));
}

TEST(TargetDevice, CpuEventsAreTimedWhenRecorded) {
  auto start = target_device::make_event(Device(DeviceType::CPU), true);
  auto end = target_device::make_event(Device(DeviceType::CPU), true);
  EXPECT_FALSE(start->recorded());
  start->record();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  end->record();
  EXPECT_TRUE(start->query());
  EXPECT_GE(start->elapsed_ms(*end), 20.0);
  auto untimed = target_device::make_event(Device(DeviceType::CPU), false);
  untimed->record();
  EXPECT_THROW(untimed->elapsed_ms(*end), c10::Error);
}

TEST(TargetDevice, OutOfMemoryInAnyBackendsWords) {
  const c10::OutOfMemoryError typed({"f", "file", 1}, "CUDA out of memory. Tried to allocate 2 GiB");
  EXPECT_TRUE(target_device::is_out_of_memory(typed));
  const c10::Error cpu({"f", "file", 1},
                       "[enforce fail at alloc_cpu.cpp:75] err == 0. DefaultCPUAllocator: can't "
                       "allocate memory: you tried to allocate 8 bytes. Error code 12");
  EXPECT_TRUE(target_device::is_out_of_memory(cpu));
  const c10::Error mps({"f", "file", 1},
                       "MPS backend out of memory (MPS allocated: 1 GB, other allocations: 0 "
                       "bytes, max allowed: 2 GB). Tried to allocate 2 GB on private pool.");
  EXPECT_TRUE(target_device::is_out_of_memory(mps));
  const c10::Error too_large({"f", "file", 1}, "Invalid buffer size: 64.00 GB");
  EXPECT_TRUE(target_device::is_out_of_memory(too_large));
  const c10::Error other({"f", "file", 1}, "Expected all tensors to be on the same device");
  EXPECT_FALSE(target_device::is_out_of_memory(other));
}

}  // namespace
}  // namespace torchdevice
