#include <gtest/gtest.h>

#include "torchdevice/backend.h"

namespace torchdevice {
namespace {

using c10::Device;
using c10::DeviceType;

uint32_t bit(DeviceType type) { return 1u << static_cast<uint32_t>(type); }

const Redirect kCudaToCpu(bit(DeviceType::CUDA) | bit(DeviceType::MPS), Device(DeviceType::CPU));
const Redirect kMpsToCuda(bit(DeviceType::MPS), Device(DeviceType::CUDA));

TEST(FallbackBackend, NcclBecomesGlooWithoutNccl) {
  EXPECT_EQ(fallback_backend(std::string("nccl"), kCudaToCpu, false), "gloo");
  EXPECT_EQ(fallback_backend(std::string("NCCL"), kCudaToCpu, false), "gloo");
}

TEST(FallbackBackend, NoBackendBecomesGloo) {
  EXPECT_EQ(fallback_backend(c10::nullopt, kCudaToCpu, false), "gloo");
}

TEST(FallbackBackend, DeviceMapKeepsTheTargetsOwnBackend) {
  EXPECT_EQ(fallback_backend(std::string("cuda:nccl,cpu:gloo"), kCudaToCpu, false), "gloo");
  EXPECT_EQ(fallback_backend(std::string("cpu:mpi,cuda:nccl"), kCudaToCpu, false), "mpi");
  EXPECT_EQ(fallback_backend(std::string("cuda:nccl"), kCudaToCpu, false), "gloo");
}

TEST(FallbackBackend, OtherBackendsAreKept) {
  EXPECT_EQ(fallback_backend(std::string("gloo"), kCudaToCpu, false), c10::nullopt);
  EXPECT_EQ(fallback_backend(std::string("mpi"), kCudaToCpu, false), c10::nullopt);
  EXPECT_EQ(fallback_backend(std::string("cpu:gloo,cuda:gloo"), kCudaToCpu, false), c10::nullopt);
}

TEST(FallbackBackend, NothingChangesWhereNcclExistsOrCudaIsReal) {
  EXPECT_EQ(fallback_backend(std::string("nccl"), kCudaToCpu, true), c10::nullopt);
  EXPECT_EQ(fallback_backend(c10::nullopt, kCudaToCpu, true), c10::nullopt);
  EXPECT_EQ(fallback_backend(std::string("nccl"), kMpsToCuda, false), c10::nullopt);
  EXPECT_EQ(fallback_backend(c10::nullopt, Redirect(), false), c10::nullopt);
}

}  // namespace
}  // namespace torchdevice
