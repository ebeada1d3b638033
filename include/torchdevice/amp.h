#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "torchdevice/target.h"

#include <vector>

namespace torchdevice {

// What autocast on a device whose autocast takes `supported` (target_device::autocast_dtypes, or
// its backend's answer) does when code asks for `requested`.
struct AutocastChoice {
  c10::ScalarType dtype;
  bool enabled;  // false: the region runs uncast
};
// With no autocast at all (`supported` empty), the region runs uncast. Else `requested` itself
// where supported; else the other 16-bit float where that one is (float16 <-> bfloat16); a wider
// float (float32, float64), which casts nothing down, runs uncast with a dtype the target takes.
// Anything else (integers) is returned unchanged for torch to report.
AutocastChoice autocast_choice(const std::vector<c10::ScalarType>& supported,
                               c10::ScalarType requested);

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
