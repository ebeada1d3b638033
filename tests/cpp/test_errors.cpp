#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "torchdevice/state.h"

#include <string>

namespace torchdevice {
namespace {

using c10::Device;
using c10::DeviceType;

// CUDA code catches c10::OutOfMemoryError (torch.cuda.OutOfMemoryError in Python); the target's
// allocator failing on a redirected request must raise that.
TEST(Errors, TargetOutOfMemoryIsCudasOutOfMemoryError) {
  if (at::hasCUDA()) {
    GTEST_SKIP() << "CUDA is available here: it is never redirected";
  }
  install(Availability{}, std::string("cpu"));
  const auto cuda = at::TensorOptions().device(Device(DeviceType::CUDA, 0)).dtype(at::kByte);
  const int64_t huge = int64_t{1} << 52;
  EXPECT_THROW(at::empty({huge}, cuda), c10::OutOfMemoryError);
  EXPECT_THROW(at::zeros({huge}, cuda), c10::OutOfMemoryError);
  EXPECT_THROW(at::empty_strided({huge}, {1}, cuda), c10::OutOfMemoryError);
  try {
    at::empty({huge}, at::TensorOptions().dtype(at::kByte));  // not redirected: untouched
    FAIL() << "expected the CPU allocator to fail";
  } catch (const c10::OutOfMemoryError&) {
    FAIL() << "a request that is not redirected must keep torch's own error";
  } catch (const c10::Error&) {
  }
  uninstall();
}

}  // namespace
}  // namespace torchdevice
