#pragma once

#include <ATen/core/stack.h>

#include "torchdevice/target.h"

#include <cstddef>
#include <string>
#include <vector>

namespace torchdevice {

// Rewrites, in place, every Device among the last `num_arguments` values of `stack` (also inside
// lists) whose type `redirect` redirects, to the redirect's target. Returns how many it rewrote.
size_t rewrite_device_arguments(torch::jit::Stack& stack, size_t num_arguments,
                                const Redirect& redirect);

// Registers a boxed dispatcher fallback on the backend keys of every redirected type, so that
// each op whose device argument names one re-dispatches to the target. Reads the live redirect
// (state.h) on every call, so retargeting needs no re-registration.
// Leaf allocation ops (empty.memory_format, empty_strided) also get unboxed kernels on the dense
// key, where it has none, sparing most redirected calls the boxing of the generic fallback.
void register_fallbacks(const Redirect& redirect);
void deregister_fallbacks();

// The ops on the unboxed fast path while installed, e.g. "aten::empty_strided (CUDA)".
std::vector<std::string> fast_path();

}  // namespace torchdevice
