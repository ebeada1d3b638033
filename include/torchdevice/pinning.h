#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/Optional.h>

#include "torchdevice/target.h"

namespace torchdevice {

// Tensor.pin_memory() where the target has no pinned host memory (the CPU, an MPS-like backend):
// a copy with the same layout, as torch's own pinning makes. Nothing is page-locked, so
// is_pinned() stays false.
at::Tensor pin_memory_copy(const at::Tensor& self, c10::optional<c10::Device> device);

// Registers pin_memory_copy for `_pin_memory` on the target's key where the target has no pinned
// host memory, and on each redirected backend key, wherever the key has no kernel for it. Idempotent; re-registers after a retarget.
void register_pinning(const Redirect& redirect);
// Removes what register_pinning added.
void deregister_pinning();

}  // namespace torchdevice
