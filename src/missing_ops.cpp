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

// Ops without a vendor prefix that only CUDA implements, and why they are CUDA's alone.
struct CudaOnlyOp {
  const char* name;
  const char* reason;
};
constexpr CudaOnlyOp kCudaOnly[] = {
    {"aten::batch_norm_stats", "SyncBatchNorm statistics"},
    {"aten::batch_norm_elemt", "SyncBatchNorm statistics"},
    {"aten::batch_norm_gather_stats", "SyncBatchNorm statistics"},
    {"aten::batch_norm_gather_stats_with_counts", "SyncBatchNorm statistics"},
    {"aten::batch_norm_backward_reduce", "SyncBatchNorm statistics"},
    {"aten::batch_norm_backward_elemt", "SyncBatchNorm statistics"},
    {"aten::_fused_dropout", "fused CUDA kernel"},
    {"aten::_masked_scale", "fused CUDA kernel"},
    {"aten::_conv_depthwise2d", "CUDA depthwise convolution"},
    {"aten::conv_depthwise3d", "CUDA depthwise convolution"},
    {"aten::_thnn_fused_lstm_cell", "fused CUDA kernel"},
    {"aten::_thnn_fused_lstm_cell_backward_impl", "fused CUDA kernel"},
    {"aten::_thnn_fused_gru_cell", "fused CUDA kernel"},
    {"aten::_thnn_fused_gru_cell_backward", "fused CUDA kernel"},
};

// A query ("is cuDNN acceptable for this input?") answers false on a backend without the library;
// it must never raise.
bool is_query(const c10::FunctionSchema& schema) {
  const auto& returns = schema.returns();
  return returns.size() == 1 && returns[0].type()->kind() == c10::TypeKind::BoolType;
}

// Whether a call on `key` already reaches a kernel that can run the op: one registered on the key
// itself, a composite one (alias keys such as CompositeImplicitAutograd are resolved into each
// backend's entry of the computed dispatch table, which is why a DispatchKeySet of alias keys
// cannot ask this), or a backend fallback — but an accelerator's fallback (torch's MPS fallback, a
// PrivateUse1 backend's) runs the op with the CPU's kernels, so it serves only ops the CPU has.
bool target_has_kernel(const c10::OperatorHandle& op, c10::DispatchKey key) {
  if (!op.hasComputedKernelForDispatchKey(key)) {
    return false;
  }
  const bool by_fallback_only =
      c10::Dispatcher::singleton().hasBackendFallbackForDispatchKey(key) &&
      !op.hasKernelForDispatchKey(key) &&
      !op.hasKernelForDispatchKey(c10::DispatchKey::CompositeImplicitAutograd) &&
      !op.hasKernelForDispatchKey(c10::DispatchKey::CompositeExplicitAutograd);
  return !by_fallback_only || op.hasComputedKernelForDispatchKey(c10::DispatchKey::CPU);
}

void missing_op_kernel(const c10::OperatorHandle& op, torch::jit::Stack* /*stack*/) {
  TORCH_CHECK_NOT_IMPLEMENTED(
      false, missing_op_message(c10::toString(op.schema().operator_name()), current_redirect()));
}

std::mutex registration_mutex;
std::unique_ptr<torch::Library> registration;
std::vector<std::string> registered;

}  // namespace

const char* cuda_only_reason(const std::string& name) {
  if (starts_with(name, "aten::cudnn_") || starts_with(name, "aten::_cudnn_")) {
    return "cuDNN";
  }
  if (starts_with(name, "aten::miopen_") || starts_with(name, "aten::_miopen_")) {
    return "MIOpen";
  }
  const std::string base = name.substr(0, name.find('.'));
  for (const auto& op : kCudaOnly) {
    if (base == op.name) {
      return op.reason;
    }
  }
  return nullptr;
}

bool is_cuda_only_op(const std::string& name) {
  return cuda_only_reason(name) != nullptr;
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
  auto library =
      std::make_unique<torch::Library>(torch::Library::IMPL, "aten", key, __FILE__, __LINE__);
  auto& dispatcher = c10::Dispatcher::singleton();
  for (const auto& name : dispatcher.getAllOpNames()) {
    const std::string full = c10::toString(name);
    if (!is_cuda_only_op(full)) {
      continue;
    }
    const auto op = dispatcher.findOp(name);
    if (!op.has_value() || is_query(op->schema()) || target_has_kernel(*op, key)) {
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
