#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "torchdevice/target.h"

#include <vector>

namespace torchdevice {

// The dtypes the running torch can autocast to on a device of `type` (empty: no autocast there).
std::vector<c10::ScalarType> autocast_dtypes(c10::DeviceType type);

// The dtype autocast uses on `type` when code asks for `requested`: `requested` itself where
// supported, else the closest supported one (the other 16-bit float; bfloat16 for float32, as it
// keeps float32's exponent range). A dtype autocast never takes (integers, ...) is returned
// unchanged so that torch reports it; so is everything when `type` has no autocast at all.
c10::ScalarType autocast_dtype(c10::DeviceType type, c10::ScalarType requested);

// GradScaler's two helper ops, computed as torch's CUDA kernels compute them, on any device.
// Every tensor of `grads` is multiplied by `inv_scale` in its own opmath type; `found_inf` becomes
// 1 when any element of any of them is infinite or NaN.
void amp_non_finite_check_and_unscale(at::TensorList grads, at::Tensor& found_inf,
                                      const at::Tensor& inv_scale);
// Backs the scale off and resets the tracker after an overflow; otherwise counts a good step and
// grows the scale (when the grown value is finite) every `growth_interval` good steps.
at::Tensor& amp_update_scale(at::Tensor& scale, at::Tensor& growth_tracker,
                             const at::Tensor& found_inf, double growth_factor,
                             double backoff_factor, int64_t growth_interval);
// Registers the two kernels above on the target's dispatch key for each op that has none there
// (torch 1.13 has only CUDA ones). Idempotent; re-registers after a retarget.
void register_amp_kernels(const Redirect& redirect);
// Removes every kernel register_amp_kernels added.
void deregister_amp_kernels();

}  // namespace torchdevice
