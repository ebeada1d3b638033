#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "torchdevice/missing_ops.h"
#include "torchdevice/state.h"

#include <algorithm>
#include <string>

namespace torchdevice {
namespace {

using c10::Device;
using c10::DeviceType;

TEST(MissingOps, NamesTheVendorAndFusedCudaOps) {
  EXPECT_TRUE(is_cuda_only_op("aten::cudnn_convolution"));
  EXPECT_TRUE(is_cuda_only_op("aten::_cudnn_rnn"));
  EXPECT_TRUE(is_cuda_only_op("aten::miopen_batch_norm"));
  EXPECT_TRUE(is_cuda_only_op("aten::batch_norm_stats"));
  EXPECT_TRUE(is_cuda_only_op("aten::batch_norm_elemt.out"));
  EXPECT_STREQ(cuda_only_reason("aten::cudnn_convolution"), "cuDNN");
  EXPECT_STREQ(cuda_only_reason("aten::batch_norm_stats"), "SyncBatchNorm statistics");
  EXPECT_FALSE(is_cuda_only_op("aten::batch_norm"));
  EXPECT_FALSE(is_cuda_only_op("aten::zeros"));
}

TEST(MissingOps, MessageNamesOpTargetAndWhatToDo) {
  const Redirect redirect(1u << static_cast<uint32_t>(DeviceType::CUDA), Device(DeviceType::CPU));
  const std::string message = missing_op_message("aten::batch_norm_stats", redirect);
  EXPECT_NE(message.find("Could not run 'aten::batch_norm_stats' with arguments from the 'CPU' "
                         "backend"),
            std::string::npos);
  EXPECT_NE(message.find("cuda -> cpu"), std::string::npos);
  EXPECT_NE(message.find("nn.BatchNorm"), std::string::npos);
}

TEST(MissingOps, RegisteredWhileInstalledOnlyWhereTheTargetLacksTheOp) {
  if (at::hasCUDA()) {
    GTEST_SKIP() << "CUDA is available here: it is never redirected";
  }
  install(Availability{}, std::string("cpu"));
  const auto registered = missing_ops();
  EXPECT_NE(std::find(registered.begin(), registered.end(), "aten::batch_norm_stats"),
            registered.end());
  for (const auto& name : registered) {
    EXPECT_TRUE(is_cuda_only_op(name)) << name;
  }
  // Queries answer false on any backend, and ops with a composite kernel already run on the CPU:
  // nn.LSTM on the CPU asks both.
  for (const char* served : {"aten::_use_cudnn_ctc_loss", "aten::cudnn_is_acceptable",
                             "aten::_use_cudnn_rnn_flatten_weight"}) {
    EXPECT_EQ(std::find(registered.begin(), registered.end(), served), registered.end()) << served;
  }
  EXPECT_FALSE(at::cudnn_is_acceptable(at::ones({2})));
  const auto input = at::ones({2, 3}, at::TensorOptions().device(Device(DeviceType::CUDA, 0)));
  try {
    at::batch_norm_stats(input, 1e-5);
    FAIL() << "expected the CUDA-only error";
  } catch (const c10::NotImplementedError& error) {
    EXPECT_NE(std::string(error.what()).find("exists only for CUDA"), std::string::npos);
  }
  uninstall();
  EXPECT_TRUE(missing_ops().empty());
  try {
    at::batch_norm_stats(at::ones({2, 3}), 1e-5);
    FAIL() << "expected torch's own error";
  } catch (const c10::Error& error) {
    EXPECT_EQ(std::string(error.what()).find("exists only for CUDA"), std::string::npos);
  }
}

}  // namespace
}  // namespace torchdevice
