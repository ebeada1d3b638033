#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/Optional.h>

#include "torchdevice/target.h"

namespace torchdevice {

// Tensor.pin_memory() for a redirected accelerator: a copy with the same layout, as torch's own
// pinning makes. The target reads all of its memory directly, so there is nothing to page-lock and
// is_pinned() stays false.
at::Tensor pin_memory_copy(const at::Tensor& self, c10::optional<c10::Device> device);

// Registers pin_memory_copy for `_pin_memory` on the target's key and each redirected backend key
// that has no kernel for it. Idempotent; re-registers after a retarget.
void register_pinning(const Redirect& redirect);
// Removes what register_pinning added.
void deregister_pinning();

}  // namespace torchdevice
