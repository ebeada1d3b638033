#include "torchdevice/missing_ops.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "torchdevice/log.h"
#include "torchdevice/state.h"

#include <memory>
#include <mutex>

namespace torchdevice {

namespace {

bool starts_with(const std::string& text, const char* prefix) {
  return text.rfind(prefix, 0) == 0;
}

// Ops without a vendor prefix that only CUDA implements: SyncBatchNorm's statistics, the fused
// dropout and RNN cells, the depthwise convolutions cuDNN lacks.
constexpr const char* kCudaOnly[] = {
    "aten::batch_norm_stats",          "aten::batch_norm_elemt",
    "aten::batch_norm_gather_stats",   "aten::batch_norm_gather_stats_with_counts",
    "aten::batch_norm_backward_reduce", "aten::batch_norm_backward_elemt",
    "aten::_fused_dropout",            "aten::_masked_scale",
    "aten::_conv_depthwise2d",         "aten::conv_depthwise3d",
    "aten::_thnn_fused_lstm_cell",     "aten::_thnn_fused_lstm_cell_backward_impl",
    "aten::_thnn_fused_gru_cell",      "aten::_thnn_fused_gru_cell_backward",
};

void missing_op_kernel(const c10::OperatorHandle& op, torch::jit::Stack* /*stack*/) {
  TORCH_CHECK_NOT_IMPLEMENTED(
      false, missing_op_message(c10::toString(op.schema().operator_name()), current_redirect()));
}

std::mutex registration_mutex;
std::unique_ptr<torch::Library> registration;
std::vector<std::string> registered;

}  // namespace

bool is_cuda_only_op(const std::string& name) {
  // "_use_cudnn_*" ops are queries every backend may ask; they answer false without CUDA.
  if (starts_with(name, "aten::_use_cudnn")) {
    return false;
  }
  if (starts_with(name, "aten::cudnn_") || starts_with(name, "aten::_cudnn_") ||
      starts_with(name, "aten::miopen_") || starts_with(name, "aten::_miopen_")) {
    return true;
  }
  const std::string base = name.substr(0, name.find('.'));
  for (const char* op : kCudaOnly) {
    if (base == op) {
      return true;
    }
  }
  return false;
}

std::string missing_op_message(const std::string& name, const Redirect& redirect) {
  const c10::Device target = redirect.target();
  return "Could not run '" + name + "' with arguments from the '" +
         c10::toString(c10::computeDispatchKey(c10::nullopt, c10::kStrided, target)) +
         "' backend. It exists only for CUDA, and torchdevice redirects " + describe(redirect) +
         ", which has no kernel for it. Code reaches it through a CUDA-only path (cuDNN or MIOpen "
         "calls, nn.SyncBatchNorm's statistics, fused CUDA kernels): use the portable "
         "equivalent on " + target.str() +
         " (e.g. nn.BatchNorm*d for SyncBatchNorm, F.dropout, the unfused RNN cells), or run "
         "on a machine with CUDA.";
}

void register_missing_ops(const Redirect& redirect) {
  std::lock_guard<std::mutex> lock(registration_mutex);
  registration.reset();  // a retarget changes the target's key
  registered.clear();
  if (!redirect.redirects(c10::DeviceType::CUDA)) {
    return;
  }
  const auto key = c10::computeDispatchKey(c10::nullopt, c10::kStrided, redirect.target());
  const auto composite = c10::DispatchKeySet({c10::DispatchKey::CompositeImplicitAutograd,
                                              c10::DispatchKey::CompositeExplicitAutograd});
  auto library =
      std::make_unique<torch::Library>(torch::Library::IMPL, "aten", key, __FILE__, __LINE__);
  auto& dispatcher = c10::Dispatcher::singleton();
  for (const auto& name : dispatcher.getAllOpNames()) {
    const std::string full = c10::toString(name);
    if (!is_cuda_only_op(full)) {
      continue;
    }
    const auto op = dispatcher.findOp(name);
    if (!op.has_value() || op->hasKernelForDispatchKey(key) ||
        op->hasKernelForAnyDispatchKey(composite)) {
      continue;
    }
    library->impl(full.substr(std::string("aten::").size()).c_str(),
                  torch::CppFunction::makeFromBoxedFunction<&missing_op_kernel>());
    registered.push_back(full);
  }
  log::debug("registered the CUDA-only error for " + std::to_string(registered.size()) +
             " ops on " + c10::toString(key));
  registration = std::move(library);
}

void deregister_missing_ops() {
  std::lock_guard<std::mutex> lock(registration_mutex);
  registration.reset();
  registered.clear();
}

std::vector<std::string> missing_ops() {
  std::lock_guard<std::mutex> lock(registration_mutex);
  return registered;
}

}  // namespace torchdevice
