#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

namespace torchdevice::standin {

// Refuses an op whose tensor arguments sit on two devices, as CUDA does, before the CPU fallback
// (which copies every argument to the CPU without asking where it lives) would compute it.
// torchgen's rule for CUDA kernels: positional and out arguments, all on one device; the ops
// native_functions.yaml marks `device_check: NoCheck` check themselves, mostly through
// TensorIterator, which also takes 0-dim CPU inputs, and the index ops take CPU indices.
void check_one_device(const c10::OperatorHandle& op, const torch::jit::Stack& stack, size_t first);

} // namespace torchdevice::standin
