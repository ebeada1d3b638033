#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "torchdevice/dispatch.h"
#include "torchdevice/state.h"

#include <algorithm>
#include <thread>

namespace torchdevice {
namespace {

using c10::Device;
using c10::DeviceType;

Redirect cpu_redirect() {
  return select_redirect(Availability{}, c10::nullopt);
}

TEST(RewriteDeviceArguments, RewritesOnlyRedirectedDevicesAmongTheArguments) {
  torch::jit::Stack stack;
  stack.emplace_back(Device(DeviceType::CUDA, 0));  // below the arguments: not ours to touch
  stack.emplace_back(Device(DeviceType::CUDA, 1));
  stack.emplace_back(Device(DeviceType::CPU));
  stack.emplace_back(c10::IValue());  // device=None
  stack.emplace_back(Device(DeviceType::MPS, 0));
  stack.emplace_back(std::string("cuda"));  // a string that looks like a device is not one
  EXPECT_EQ(rewrite_device_arguments(stack, 5, cpu_redirect()), 2u);
  EXPECT_EQ(stack[0].toDevice(), Device(DeviceType::CUDA, 0));
  EXPECT_EQ(stack[1].toDevice(), Device(DeviceType::CPU));
  EXPECT_EQ(stack[2].toDevice(), Device(DeviceType::CPU));
  EXPECT_TRUE(stack[3].isNone());
  EXPECT_EQ(stack[4].toDevice(), Device(DeviceType::CPU));
  EXPECT_EQ(stack[5].toStringRef(), "cuda");
}

TEST(RewriteDeviceArguments, RewritesDevicesInsideLists) {
  c10::impl::GenericList devices(c10::DeviceObjType::get());
  devices.push_back(Device(DeviceType::CUDA, 2));
  devices.push_back(Device(DeviceType::CPU));
  torch::jit::Stack stack{c10::IValue(devices)};
  EXPECT_EQ(rewrite_device_arguments(stack, 1, cpu_redirect()), 1u);
  auto list = stack[0].toList();
  EXPECT_EQ(list.get(0).toDevice(), Device(DeviceType::CPU));
  EXPECT_EQ(list.get(1).toDevice(), Device(DeviceType::CPU));
}

TEST(RewriteDeviceArguments, NothingRedirectedRewritesNothing) {
  Availability both;
  both.cuda = true;
  both.mps = true;
  torch::jit::Stack stack{c10::IValue(Device(DeviceType::CUDA, 0))};
  EXPECT_EQ(rewrite_device_arguments(stack, 1, select_redirect(both, c10::nullopt)), 0u);
  EXPECT_EQ(stack[0].toDevice(), Device(DeviceType::CUDA, 0));
}

// End to end through the real dispatcher, from C++ callers that never touch Python.
class Installed : public ::testing::Test {
 protected:
  void SetUp() override {
    if (at::hasCUDA()) {
      GTEST_SKIP() << "CUDA is available here: it is never redirected";
    }
    install(Availability{}, std::string("cpu"));
  }
  void TearDown() override { uninstall(); }
};

TEST_F(Installed, FactoriesWithCudaDevicesLandOnTheTarget) {
  const auto options = at::TensorOptions().device(Device(DeviceType::CUDA, 1));
  EXPECT_TRUE(at::zeros({2, 3}, options).device().is_cpu());
  EXPECT_TRUE(at::empty_strided({2, 2}, {2, 1}, options).device().is_cpu());
  EXPECT_TRUE(at::arange(5, options).device().is_cpu());
  auto r = at::randn({4}, at::TensorOptions().device(DeviceType::MPS));
  EXPECT_TRUE(r.device().is_cpu());
  EXPECT_EQ(at::ones({3}, options).sum().item<float>(), 3.0f);
}

TEST_F(Installed, CopiesToCudaLandOnTheTargetAndNeverAlias) {
  auto source = at::arange(4, at::kFloat);
  auto copy = source.to(Device(DeviceType::CUDA, 0));
  EXPECT_TRUE(copy.device().is_cpu());
  EXPECT_NE(copy.data_ptr(), source.data_ptr());
  EXPECT_TRUE(at::equal(copy, source));
}

TEST_F(Installed, ThreadsWithoutPythonAreRedirected) {
  bool on_cpu = false;
  std::thread worker([&] {
    on_cpu = at::zeros({2}, at::TensorOptions().device(DeviceType::CUDA)).device().is_cpu();
  });
  worker.join();
  EXPECT_TRUE(on_cpu);
}

TEST_F(Installed, InstallIsIdempotentAndUninstallRestores) {
  install(Availability{}, std::string("cpu"));
  EXPECT_TRUE(is_installed());
  EXPECT_TRUE(c10::impl::hasDeviceGuardImpl(DeviceType::CUDA));
  uninstall();
  EXPECT_FALSE(is_installed());
  EXPECT_FALSE(c10::impl::hasDeviceGuardImpl(DeviceType::CUDA));
  EXPECT_TRUE(current_redirect().empty());
  EXPECT_THROW(at::zeros({2}, at::TensorOptions().device(DeviceType::CUDA)), c10::Error);
  install(Availability{}, std::string("cpu"));
  EXPECT_TRUE(at::zeros({2}, at::TensorOptions().device(DeviceType::CUDA)).device().is_cpu());
}

TEST_F(Installed, LeafAllocationsTakeTheUnboxedFastPathUntilUninstalled) {
  const auto empty = c10::Dispatcher::singleton().findSchemaOrThrow("aten::empty", "memory_format");
  const auto strided = c10::Dispatcher::singleton().findSchemaOrThrow("aten::empty_strided", "");
  EXPECT_TRUE(empty.hasKernelForDispatchKey(c10::DispatchKey::CUDA));
  EXPECT_TRUE(strided.hasKernelForDispatchKey(c10::DispatchKey::CUDA));
  const auto listed = fast_path();
  for (const char* expected : {"aten::empty.memory_format (CUDA)", "aten::empty_strided (CUDA)"}) {
    EXPECT_NE(std::find(listed.begin(), listed.end(), expected), listed.end()) << expected;
  }
  // Called unboxed and boxed (as TorchScript does), both land on the target.
  EXPECT_TRUE(at::empty({2}, at::TensorOptions().device(DeviceType::CUDA)).device().is_cpu());
  torch::jit::Stack stack{c10::IValue(std::vector<int64_t>{2}), c10::IValue(), c10::IValue(),
                          c10::IValue(Device(DeviceType::CUDA, 1)), c10::IValue(), c10::IValue()};
  empty.callBoxed(&stack);
  EXPECT_TRUE(stack.back().toTensor().device().is_cpu());
  uninstall();
  EXPECT_FALSE(empty.hasKernelForDispatchKey(c10::DispatchKey::CUDA));
  EXPECT_TRUE(fast_path().empty());
}

TEST_F(Installed, OpsWithoutADeviceArgumentGetAClearErrorNotARecursion) {
  // _local_scalar_dense dispatches on its tensor; forcing the CUDA key reaches the fallback with
  // nothing to rewrite.
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow("aten::_local_scalar_dense", "");
  torch::jit::Stack stack{c10::IValue(at::ones({1}))};
  try {
    op.redispatchBoxed(c10::DispatchKeySet(c10::DispatchKey::CUDA), &stack);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("no device argument to redirect"),
              std::string::npos)
        << e.what_without_backtrace();
  }
}

}  // namespace
}  // namespace torchdevice
