#pragma once

#include "torchdevice/target.h"

#include <string>
#include <vector>

// Ops that exist only for CUDA (cuDNN, MIOpen, SyncBatchNorm's statistics, fused CUDA kernels).
// Code written for CUDA reaches them; the target has no kernel for them, and torch's own error
// would only say the target's backend lacks the op. While installed they raise an error that
// names the op and the target and says what to use instead.
namespace torchdevice {

// Whether `name` ("aten::cudnn_convolution") is one of those ops, by its name alone.
bool is_cuda_only_op(const std::string& name);

// Why `name` is CUDA's alone ("cuDNN", "SyncBatchNorm statistics", ...), or nullptr if it is not.
const char* cuda_only_reason(const std::string& name);

// The error such an op raises on the target: torch's own first sentence, then why and what to do.
std::string missing_op_message(const std::string& name, const Redirect& redirect);

// Registers the error kernel on the target's key for every CUDA-only op that no kernel could serve
// there (none on the key, no composite one, no fallback) and that is not a query returning a bool.
// Re-registers after a retarget.
void register_missing_ops(const Redirect& redirect);
void deregister_missing_ops();

// The ops registered now, e.g. "aten::batch_norm_stats".
std::vector<std::string> missing_ops();

}  // namespace torchdevice
