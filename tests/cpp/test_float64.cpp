#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "torchdevice/float64.h"
#include "torchdevice/state.h"

#include <string>

namespace torchdevice {
namespace {

using c10::Device;
using c10::DeviceType;
using c10::ScalarType;

// The CPU target has float64, so only the 'float32' policy narrows there: the C++ callers'
// view of the policy (no Python involved).
class Float64Policy : public ::testing::Test {
 protected:
  void TearDown() override { uninstall(); }
  static Redirect install_with(const std::string& policy) {
    return install(Availability{}, c10::nullopt, policy);
  }
};

TEST_F(Float64Policy, ParsesTheThreeNamesAndRefusesOthersNamingThem) {
  EXPECT_EQ(float64::parse("auto"), float64::Policy::automatic);
  EXPECT_EQ(float64::parse("float32"), float64::Policy::float32);
  EXPECT_EQ(float64::parse("error"), float64::Policy::error);
  try {
    float64::parse("fp32");
    FAIL() << "accepted 'fp32'";
  } catch (const c10::Error& error) {
    const std::string message = error.what_without_backtrace();
    EXPECT_NE(message.find("'fp32'"), std::string::npos) << message;
    EXPECT_NE(message.find("'auto'"), std::string::npos) << message;
  }
}

TEST_F(Float64Policy, Float32NarrowsRedirectedFactoriesAndCopiesOnly) {
  install_with("float32");
  const auto cuda = at::TensorOptions().device(Device(DeviceType::CUDA, 0));
  EXPECT_EQ(at::zeros({2}, cuda.dtype(at::kDouble)).scalar_type(), ScalarType::Float);
  EXPECT_EQ(at::empty({2}, cuda.dtype(at::kComplexDouble)).scalar_type(),
            ScalarType::ComplexFloat);
  const at::Tensor wide = at::arange(4, at::kDouble) / 3;
  const at::Tensor copied = wide.to(Device(DeviceType::CUDA, 0));
  EXPECT_EQ(copied.scalar_type(), ScalarType::Float);
  EXPECT_TRUE(at::equal(copied, wide.to(at::kFloat)));
  // Explicit CPU and integer dtypes are no concern of the policy.
  EXPECT_EQ(at::zeros({2}, at::TensorOptions().dtype(at::kDouble)).scalar_type(),
            ScalarType::Double);
  EXPECT_EQ(at::zeros({2}, cuda.dtype(at::kLong)).scalar_type(), ScalarType::Long);
}

TEST_F(Float64Policy, AutoAndErrorKeepFloat64WhereTheTargetHasIt) {
  for (const char* policy : {"auto", "error"}) {
    install_with(policy);
    EXPECT_FALSE(float64::engaged()) << policy;
    const auto cuda = at::TensorOptions().device(Device(DeviceType::CUDA, 0));
    EXPECT_EQ(at::zeros({2}, cuda.dtype(at::kDouble)).scalar_type(), ScalarType::Double)
        << policy;
  }
}

TEST_F(Float64Policy, UninstallNarrowsNothing) {
  install_with("float32");
  EXPECT_EQ(float64::substitute(ScalarType::Double), ScalarType::Float);
  uninstall();
  EXPECT_FALSE(float64::engaged());
  EXPECT_EQ(float64::substitute(ScalarType::Double), ScalarType::Double);
}

TEST_F(Float64Policy, ABadPolicyLeavesTheInstallAsItWas) {
  install_with("float32");
  EXPECT_THROW(install_with("half"), c10::Error);
  EXPECT_TRUE(is_installed());
  EXPECT_EQ(float64::policy(), float64::Policy::float32);
}

}  // namespace
}  // namespace torchdevice
