#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/Optional.h>

#include "torchdevice/target.h"

namespace torchdevice {

// Tensor.pin_memory() for the target where it has no pinned host memory (the CPU, MPS before
// its pinned allocator handed out host memory): a copy with the same layout, as torch's own pinning makes. Nothing is page-locked,
// so is_pinned() stays false. Pinning asked explicitly for another device is torch's own.
at::Tensor pin_memory_for_target(const at::Tensor& self, c10::optional<c10::Device> device);

// Registers pin_memory_for_target for `_pin_memory` on each redirected backend key and, where the
// target has no pinned host memory, on the CPU key (torch 2 dispatches pinning on the source's
// backend, torch 1.13 on the device it pins for), wherever the key has no kernel of its own.
// Idempotent; re-registers after a retarget.
void register_pinning(const Redirect& redirect);
// Removes what register_pinning added.
void deregister_pinning();

}  // namespace torchdevice
