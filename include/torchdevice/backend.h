#pragma once

#include <c10/util/Optional.h>

#include "torchdevice/target.h"

#include <string>

namespace torchdevice {

// The process-group backend to use in place of `requested` (init_process_group's `backend`:
// absent, "nccl", "gloo", or a device map such as "cuda:nccl,cpu:gloo"), or nullopt to keep it.
// Only when NCCL is unavailable and CUDA is redirected: a request that names NCCL, or names no
// backend, gets the backend the map gives the target's type when there is one, else "gloo". The
// answer is a bare name, which every torch version accepts (1.13 has no device maps).
c10::optional<std::string> fallback_backend(const c10::optional<std::string>& requested,
                                            const Redirect& redirect, bool nccl_available);

}  // namespace torchdevice
