#include <gtest/gtest.h>

#include <c10/util/Exception.h>

#include "torchdevice/device_spec.h"

namespace torchdevice {
namespace {

using c10::Device;
using c10::DeviceType;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

TEST(ParseDevice, AcceptsTorchSpellings) {
  EXPECT_EQ(parse_device("cuda"), Device(DeviceType::CUDA));
  EXPECT_EQ(parse_device("cuda:1"), Device(DeviceType::CUDA, 1));
  EXPECT_EQ(parse_device("mps"), Device(DeviceType::MPS));
  EXPECT_EQ(parse_device("cpu"), Device(DeviceType::CPU));
}

TEST(ParseDevice, MalformedSpecsNameTheValueAndTheGrammar) {
  for (const char* bad : {"", "gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:0:1", " cuda", "CUDA"}) {
    const std::string message = error_of([&] { parse_device(bad); });
    EXPECT_NE(message.find(std::string("'") + bad + "'"), std::string::npos) << bad << message;
    EXPECT_NE(message.find("such as 'cuda'"), std::string::npos) << message;
  }
}

TEST(ParseDevice, IndicesPastTheIndexTypeAreErrorsNotWrapped) {
  EXPECT_EQ(parse_device("cuda:127"), Device(DeviceType::CUDA, 127));
  for (const char* bad : {"cuda:128", "cuda:300", "mps:256", "cuda:99999999999"}) {
    const std::string message = error_of([&] { parse_device(bad); });
    EXPECT_NE(message.find(std::string("'") + bad + "'"), std::string::npos) << bad << message;
  }
  EXPECT_NE(error_of([] { parse_device("cuda:300"); }).find("at most 127"), std::string::npos);
}

TEST(CheckDeviceIndex, AnyNonNegativeIndexIsAccepted) {
  EXPECT_EQ(check_device_index(0, DeviceType::CUDA), 0);
  EXPECT_EQ(check_device_index(7, DeviceType::CUDA), 7);
}

TEST(CheckDeviceIndex, NegativeAndHugeIndicesAreErrors) {
  EXPECT_NE(error_of([] { check_device_index(-1, DeviceType::CUDA); }).find("must not be negative"),
            std::string::npos);
  EXPECT_NE(error_of([] { check_device_index(1 << 20, DeviceType::CUDA); }).find("out of range"),
            std::string::npos);
}

}  // namespace
}  // namespace torchdevice
