#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/version.h>

#include "torchdevice/amp.h"
#include "torchdevice/pinning.h"
#include "torchdevice/state.h"
#include "torchdevice/target_device.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace torchdevice {
namespace {

using c10::DeviceType;
using c10::ScalarType;

constexpr bool kTorch2 = TORCH_VERSION_MAJOR >= 2;

std::vector<ScalarType> dtypes_of(DeviceType type) {
  const auto dtypes = target_device::autocast_dtypes(type);
  EXPECT_TRUE(dtypes.has_value()) << type << " is a backend torch itself knows";
  return dtypes.value_or(std::vector<ScalarType>{});
}

void expect_choice(DeviceType type, ScalarType requested, ScalarType dtype, bool enabled) {
  const AutocastChoice choice = autocast_choice(dtypes_of(type), requested);
  EXPECT_EQ(choice.dtype, dtype) << requested;
  EXPECT_EQ(choice.enabled, enabled) << requested;
}

TEST(AutocastChoice, KeepsWhatTheTargetSupports) {
  expect_choice(DeviceType::CPU, ScalarType::BFloat16, ScalarType::BFloat16, true);
  expect_choice(DeviceType::CUDA, ScalarType::Half, ScalarType::Half, true);
  expect_choice(DeviceType::CUDA, ScalarType::BFloat16, ScalarType::BFloat16, true);
}

TEST(AutocastChoice, Float16OnCpuIsBFloat16WhereTorchLacksIt) {
  // torch 1.x CPU autocast takes bfloat16 only; 2.x takes float16 too.
  expect_choice(DeviceType::CPU, ScalarType::Half,
                kTorch2 ? ScalarType::Half : ScalarType::BFloat16, true);
}

TEST(AutocastChoice, TheOther16BitFloatWhereOnlyThatOneIsSupported) {
  // What a backend answering [float16] (MPS on torch 2.5, or before macOS 14) gets for bfloat16.
  const AutocastChoice choice = autocast_choice({ScalarType::Half}, ScalarType::BFloat16);
  EXPECT_EQ(choice.dtype, ScalarType::Half);
  EXPECT_TRUE(choice.enabled);
}

TEST(AutocastChoice, WiderFloatsRunUncastWithADtypeTheTargetAccepts) {
  const auto supported = dtypes_of(DeviceType::CPU);
  for (auto wide : {ScalarType::Float, ScalarType::Double}) {
    const AutocastChoice choice = autocast_choice(supported, wide);
    EXPECT_FALSE(choice.enabled);
    EXPECT_NE(std::find(supported.begin(), supported.end(), choice.dtype), supported.end());
  }
}

TEST(AutocastChoice, ADeviceWithoutAutocastRunsUncast) {
  // Meta has no autocast in any torch: as MPS before torch 2.5.
  EXPECT_TRUE(dtypes_of(DeviceType::Meta).empty());
  for (auto requested : {ScalarType::Half, ScalarType::BFloat16, ScalarType::Float}) {
    const AutocastChoice choice = autocast_choice({}, requested);
    EXPECT_FALSE(choice.enabled);
    EXPECT_EQ(choice.dtype, requested);
  }
}

TEST(AutocastChoice, NonFloatsPassThroughForTorchToReport) {
  expect_choice(DeviceType::CPU, ScalarType::Int, ScalarType::Int, true);
}

TEST(AutocastDtypes, APrivateUse1BackendAnswersForItself) {
  // torch asks such a backend's module (get_amp_supported_dtype); so does the Python layer.
  if (kTorch2) {
    EXPECT_FALSE(target_device::autocast_dtypes(DeviceType::PrivateUse1).has_value());
  }
}

TEST(AutocastDtypes, MpsFromTorch25) {
  const auto mps = dtypes_of(DeviceType::MPS);
  if (TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 5)) {
    EXPECT_TRUE(mps.empty());
  } else {
    EXPECT_NE(std::find(mps.begin(), mps.end(), ScalarType::Half), mps.end());
  }
}

at::Tensor scalar(float value) {
  return at::full({1}, value, at::kFloat);
}

TEST(AmpUnscale, MultipliesEveryTensorAndLeavesFoundInfAtZeroWhenFinite) {
  auto a = at::tensor({2.0f, -4.0f});
  auto b = at::tensor({8.0, 1.0}, at::kDouble);
  auto found_inf = scalar(0.0f);
  std::vector<at::Tensor> grads{a, b};
  amp_non_finite_check_and_unscale(grads, found_inf, scalar(0.25f));
  EXPECT_TRUE(at::equal(a, at::tensor({0.5f, -1.0f})));
  EXPECT_TRUE(at::equal(b, at::tensor({2.0, 0.25}, at::kDouble)));
  EXPECT_EQ(found_inf.item<float>(), 0.0f);
}

TEST(AmpUnscale, FlagsInfinityAndNaNAnywhereAndStillUnscalesTheRest) {
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN()}) {
    auto a = at::tensor({4.0f});
    auto b = at::tensor({1.0f, bad});
    auto found_inf = scalar(0.0f);
    std::vector<at::Tensor> grads{a, b};
    amp_non_finite_check_and_unscale(grads, found_inf, scalar(0.5f));
    EXPECT_EQ(found_inf.item<float>(), 1.0f) << bad;
    EXPECT_EQ(a.item<float>(), 2.0f);
    EXPECT_EQ(b[0].item<float>(), 0.5f);
  }
}

TEST(AmpUnscale, HalfGradientsAreScaledInFloatThenRounded) {
  // 2049 is not a float16 value: the product must be formed in float, then rounded once.
  auto grad = at::tensor({4098.0f}).to(at::kHalf);
  auto found_inf = scalar(0.0f);
  std::vector<at::Tensor> grads{grad};
  amp_non_finite_check_and_unscale(grads, found_inf, scalar(0.5f));
  EXPECT_EQ(grad.item<float>(), at::tensor({2049.0f}).to(at::kHalf).item<float>());
}

TEST(AmpUnscale, RejectsMalformedArguments) {
  std::vector<at::Tensor> grads{at::ones({2})};
  auto found_inf = scalar(0.0f);
  auto two = at::ones({2});
  EXPECT_THROW(amp_non_finite_check_and_unscale(grads, two, scalar(1.0f)), c10::Error);
  EXPECT_THROW(amp_non_finite_check_and_unscale(grads, found_inf, at::ones({1}, at::kDouble)),
               c10::Error);
  std::vector<at::Tensor> ints{at::ones({2}, at::kInt)};
  EXPECT_THROW(amp_non_finite_check_and_unscale(ints, found_inf, scalar(1.0f)), c10::Error);
}

TEST(AmpUpdateScale, BacksOffAndResetsTheTrackerAfterAnOverflow) {
  auto scale = scalar(1024.0f);
  auto tracker = at::full({1}, 3, at::kInt);
  amp_update_scale(scale, tracker, scalar(1.0f), 2.0, 0.5, 4);
  EXPECT_EQ(scale.item<float>(), 512.0f);
  EXPECT_EQ(tracker.item<int>(), 0);
}

TEST(AmpUpdateScale, GrowsEveryIntervalOfGoodSteps) {
  auto scale = scalar(8.0f);
  auto tracker = at::zeros({1}, at::kInt);
  amp_update_scale(scale, tracker, scalar(0.0f), 2.0, 0.5, 3);
  amp_update_scale(scale, tracker, scalar(0.0f), 2.0, 0.5, 3);
  EXPECT_EQ(scale.item<float>(), 8.0f);
  EXPECT_EQ(tracker.item<int>(), 2);
  auto& returned = amp_update_scale(scale, tracker, scalar(0.0f), 2.0, 0.5, 3);
  EXPECT_TRUE(returned.is_same(scale));
  EXPECT_EQ(scale.item<float>(), 16.0f);
  EXPECT_EQ(tracker.item<int>(), 0);
}

TEST(AmpUpdateScale, KeepsAScaleWhoseGrowthWouldOverflow) {
  const float big = std::numeric_limits<float>::max() / 1.5f;
  auto scale = scalar(big);
  auto tracker = at::zeros({1}, at::kInt);
  amp_update_scale(scale, tracker, scalar(0.0f), 2.0, 0.5, 1);
  EXPECT_EQ(scale.item<float>(), big);
  EXPECT_EQ(tracker.item<int>(), 0);
}

bool has_cpu_kernel(const char* name) {
  return c10::Dispatcher::singleton()
      .findOp(c10::OperatorName(name, ""))
      ->hasKernelForDispatchKey(c10::DispatchKey::CPU);
}

// Where torch has its own CPU kernels (2.x), ours must agree with them exactly.
TEST(AmpKernels, AgreeWithTorchsOwnCpuKernelsWhereTheyExist) {
  if (is_installed() || !has_cpu_kernel("aten::_amp_update_scale_")) {
    GTEST_SKIP() << "this torch has no CPU kernels of its own for the AMP ops";
  }
  const auto values = at::tensor({3.0f, -7.5f, 1e-3f, 65504.0f});
  for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble}) {
    auto ours = values.to(dtype);
    auto theirs = values.to(dtype);
    auto ours_inf = scalar(0.0f);
    auto theirs_inf = scalar(0.0f);
    std::vector<at::Tensor> ours_list{ours};
    amp_non_finite_check_and_unscale(ours_list, ours_inf, scalar(1.0f / 3.0f));
    at::_amp_foreach_non_finite_check_and_unscale_({theirs}, theirs_inf, scalar(1.0f / 3.0f));
    EXPECT_TRUE(at::equal(ours, theirs)) << dtype;
    EXPECT_TRUE(at::equal(ours_inf, theirs_inf));
  }
  for (float found : {0.0f, 1.0f}) {
    auto ours = scalar(3.0f), theirs = scalar(3.0f);
    auto ours_tracker = at::full({1}, 1, at::kInt), theirs_tracker = at::full({1}, 1, at::kInt);
    amp_update_scale(ours, ours_tracker, scalar(found), 3.0, 0.3, 2);
    at::_amp_update_scale_(theirs, theirs_tracker, scalar(found), 3.0, 0.3, 2);
    EXPECT_TRUE(at::equal(ours, theirs));
    EXPECT_TRUE(at::equal(ours_tracker, theirs_tracker));
  }
}

class AmpInstalled : public ::testing::Test {
 protected:
  void SetUp() override {
    if (at::hasCUDA()) {
      GTEST_SKIP() << "CUDA is available here: it is never redirected";
    }
    native_unscale_ = has_cpu_kernel("aten::_amp_foreach_non_finite_check_and_unscale_");
    native_update_ = has_cpu_kernel("aten::_amp_update_scale_");
    native_pin_ = has_cpu_kernel("aten::_pin_memory");
    install(Availability{}, std::string("cpu"));
  }
  void TearDown() override { uninstall(); }

  bool native_unscale_ = false;
  bool native_update_ = false;
  bool native_pin_ = false;
};

TEST_F(AmpInstalled, TheOpsRunOnTheTargetAndUninstallRemovesOnlyOurKernels) {
  auto grad = at::tensor({6.0f, std::numeric_limits<float>::infinity()});
  auto found_inf = scalar(0.0f);
  at::_amp_foreach_non_finite_check_and_unscale_({grad}, found_inf, scalar(0.5f));
  EXPECT_EQ(found_inf.item<float>(), 1.0f);
  EXPECT_EQ(grad[0].item<float>(), 3.0f);
  auto scale = scalar(4.0f);
  auto tracker = at::zeros({1}, at::kInt);
  at::_amp_update_scale_(scale, tracker, found_inf, 2.0, 0.25, 10);
  EXPECT_EQ(scale.item<float>(), 1.0f);

  uninstall();
  EXPECT_EQ(has_cpu_kernel("aten::_amp_foreach_non_finite_check_and_unscale_"), native_unscale_);
  EXPECT_EQ(has_cpu_kernel("aten::_amp_update_scale_"), native_update_);
  EXPECT_EQ(has_cpu_kernel("aten::_pin_memory"), native_pin_);
}

TEST_F(AmpInstalled, PinningForCudaCopiesWithTheSameLayout) {
  auto source = at::arange(6, at::kFloat).reshape({2, 3}).t();
  auto pinned = source.pin_memory();
  EXPECT_TRUE(pinned.device().is_cpu());
  EXPECT_NE(pinned.data_ptr(), source.data_ptr());
  EXPECT_EQ(pinned.strides(), source.strides());
  EXPECT_TRUE(at::equal(pinned, source));
  EXPECT_FALSE(pinned.is_pinned());
}

}  // namespace
}  // namespace torchdevice
