#pragma once

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

// What MPS does with an op it has no kernel for, and with dtypes its ops refuse: checked by the
// stand-in's CPU fallback (tests/standin/csrc/kernels.cpp) before it computes, in the emulated MPS
// build only.
namespace torchdevice::standin {

// An op MPS lacks at this torch version (missing_ops.inc) raises NotImplementedError in MPS's
// words, or, with PYTORCH_ENABLE_MPS_FALLBACK=1 (read once, as torch reads it), warns once and
// runs on the CPU. A complex128 argument raises MPS's TypeError.
void check_mps_op(const c10::OperatorHandle& op, const torch::jit::Stack& stack, size_t first);

} // namespace torchdevice::standin
