#include <gtest/gtest.h>

#include <c10/util/Exception.h>

#include "torchdevice/target.h"

namespace torchdevice {
namespace {

using c10::Device;
using c10::DeviceType;

Availability machine(bool cuda, bool mps) {
  Availability available;
  available.cuda = cuda;
  available.mps = mps;
  return available;
}

TEST(SelectRedirect, CpuOnlyMachineSendsCudaAndMpsToCpu) {
  const Redirect r = select_redirect(machine(false, false), c10::nullopt);
  EXPECT_TRUE(r.redirects(DeviceType::CUDA));
  EXPECT_TRUE(r.redirects(DeviceType::MPS));
  EXPECT_FALSE(r.redirects(DeviceType::CPU));
  EXPECT_EQ(r.target(), Device(DeviceType::CPU));
}

TEST(SelectRedirect, AppleMachineSendsCudaToMps) {
  const Redirect r = select_redirect(machine(false, true), c10::nullopt);
  EXPECT_TRUE(r.redirects(DeviceType::CUDA));
  EXPECT_FALSE(r.redirects(DeviceType::MPS));
  EXPECT_EQ(r.target(), Device(DeviceType::MPS, 0));
}

TEST(SelectRedirect, NvidiaMachineSendsMpsToCudaAndLeavesCudaAlone) {
  const Redirect r = select_redirect(machine(true, false), c10::nullopt);
  EXPECT_FALSE(r.redirects(DeviceType::CUDA));
  EXPECT_TRUE(r.redirects(DeviceType::MPS));
  EXPECT_EQ(r.target(), Device(DeviceType::CUDA, 0));
}

TEST(SelectRedirect, MachineWithBothRedirectsNothing) {
  const Redirect r = select_redirect(machine(true, true), c10::nullopt);
  EXPECT_TRUE(r.empty());
}

TEST(SelectRedirect, OverrideChoosesAnAvailableTarget) {
  const Redirect r = select_redirect(machine(false, true), std::string("cpu"));
  EXPECT_TRUE(r.redirects(DeviceType::CUDA));
  EXPECT_EQ(r.target(), Device(DeviceType::CPU));
  const Redirect indexed = select_redirect(machine(true, false), std::string("cuda:0"));
  EXPECT_EQ(indexed.target(), Device(DeviceType::CUDA, 0));
}

TEST(SelectRedirect, OverrideToAnUnavailableDeviceIsAnError) {
  try {
    select_redirect(machine(false, false), std::string("mps"));
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("'mps' is not available"),
              std::string::npos)
        << e.what_without_backtrace();
  }
  EXPECT_THROW(select_redirect(machine(false, false), std::string("cuda")), c10::Error);
}

TEST(SelectRedirect, MalformedOverrideIsAnError) {
  EXPECT_THROW(select_redirect(machine(false, false), std::string("gpu")), c10::Error);
}

TEST(SelectRedirect, EmptyOverrideMeansAutomatic) {
  const Redirect r = select_redirect(machine(false, false), std::string(""));
  EXPECT_EQ(r.target(), Device(DeviceType::CPU));
}

TEST(Redirect, PackRoundTrips) {
  for (const Device target : {Device(DeviceType::CPU), Device(DeviceType::MPS, 0),
                              Device(DeviceType::CUDA, 3)}) {
    const uint32_t mask = target.is_cuda() ? (1u << static_cast<int>(DeviceType::MPS))
                                           : (1u << static_cast<int>(DeviceType::CUDA));
    const Redirect r(mask, target);
    const Redirect back = Redirect::unpack(r.pack());
    EXPECT_EQ(back.target(), target);
    EXPECT_EQ(back.mask(), mask);
  }
  EXPECT_TRUE(Redirect::unpack(Redirect().pack()).empty());
}

TEST(Redirect, DescribeNamesSourcesAndTarget) {
  EXPECT_EQ(describe(select_redirect(machine(false, false), c10::nullopt)), "cuda, mps -> cpu");
  EXPECT_EQ(describe(select_redirect(machine(true, true), c10::nullopt)), "nothing redirected");
}

}  // namespace
}  // namespace torchdevice
