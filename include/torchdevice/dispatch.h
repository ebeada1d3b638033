#pragma once

#include <ATen/core/stack.h>

#include "torchdevice/target.h"

#include <cstddef>

namespace torchdevice {

// Rewrites, in place, every Device among the last `num_arguments` values of `stack` (also inside
// lists) whose type `redirect` redirects, to the redirect's target. Returns how many it rewrote.
size_t rewrite_device_arguments(torch::jit::Stack& stack, size_t num_arguments,
                                const Redirect& redirect);

// Registers a boxed dispatcher fallback on the backend keys of every redirected type, so that
// each op whose device argument names one re-dispatches to the target. Reads the live redirect
// (state.h) on every call, so retargeting needs no re-registration.
void register_fallbacks(const Redirect& redirect);
void deregister_fallbacks();

}  // namespace torchdevice
