#include "torchdevice/amp.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/DispatchKey.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "torchdevice/log.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>

namespace torchdevice {

namespace {

// One float32 element: the scale, inv_scale and found_inf tensors torch's kernels accept.
void check_scalar_tensor(const at::Tensor& t, c10::ScalarType dtype, const char* name) {
  TORCH_CHECK(t.numel() == 1, name, " must be a 1-element tensor, but has ", t.numel(),
              " elements.");
  TORCH_CHECK(t.scalar_type() == dtype, name, " must be a ", c10::toString(dtype),
              " tensor, but is ", c10::toString(t.scalar_type()), ".");
}

std::mutex registration_mutex;
std::unique_ptr<torch::Library> registration;
c10::DispatchKey registered_key = c10::DispatchKey::Undefined;

bool has_kernel(const char* name, c10::DispatchKey key) {
  auto op = c10::Dispatcher::singleton().findOp(c10::OperatorName(name, ""));
  return !op.has_value() || op->hasKernelForDispatchKey(key);
}

}  // namespace

AutocastChoice autocast_choice(const std::vector<c10::ScalarType>& supported,
                               c10::ScalarType requested) {
  if (supported.empty()) {
    return {requested, false};  // nothing to cast to
  }
  auto is_supported = [&](c10::ScalarType dtype) {
    return std::find(supported.begin(), supported.end(), dtype) != supported.end();
  };
  if (is_supported(requested)) {
    return {requested, true};
  }
  // A 16-bit float has a close stand-in: the other one.
  if (requested == c10::ScalarType::Half && is_supported(c10::ScalarType::BFloat16)) {
    return {c10::ScalarType::BFloat16, true};
  }
  if (requested == c10::ScalarType::BFloat16 && is_supported(c10::ScalarType::Half)) {
    return {c10::ScalarType::Half, true};
  }
  // A wider float casts nothing down: the region runs uncast. The dtype is one the target takes,
  // as torch 1.x rejects any other even in a disabled region.
  if (requested == c10::ScalarType::Float || requested == c10::ScalarType::Double) {
    return {supported.front(), false};
  }
  return {requested, true};
}

void amp_non_finite_check_and_unscale(at::TensorList grads, at::Tensor& found_inf,
                                      const at::Tensor& inv_scale) {
  check_scalar_tensor(found_inf, c10::ScalarType::Float, "found_inf");
  check_scalar_tensor(inv_scale, c10::ScalarType::Float, "inv_scale");
  const float inv = inv_scale.item<float>();
  bool any_non_finite = false;
  for (const auto& grad : grads) {
    TORCH_CHECK(grad.is_floating_point(), "_amp_foreach_non_finite_check_and_unscale_: ",
                "every tensor must be floating point, but one is ",
                c10::toString(grad.scalar_type()), ".");
    TORCH_CHECK(grad.device() == found_inf.device(),
                "_amp_foreach_non_finite_check_and_unscale_: every tensor must be on ",
                found_inf.device(), ", but one is on ", grad.device(), ".");
    if (!any_non_finite && grad.numel() > 0) {
      any_non_finite = !at::isfinite(grad).all().item<bool>();
    }
    // As in torch's kernels: the product is taken in the opmath type (float for the 16-bit
    // types) and a scale of exactly 1 leaves values untouched.
    if (inv != 1.0f) {
      if (grad.scalar_type() == c10::ScalarType::Half ||
          grad.scalar_type() == c10::ScalarType::BFloat16) {
        grad.copy_(grad.to(c10::ScalarType::Float).mul_(inv));
      } else {
        grad.mul_(inv);
      }
    }
  }
  if (any_non_finite) {
    found_inf.fill_(1.0);
  }
}

at::Tensor& amp_update_scale(at::Tensor& scale, at::Tensor& growth_tracker,
                             const at::Tensor& found_inf, double growth_factor,
                             double backoff_factor, int64_t growth_interval) {
  check_scalar_tensor(scale, c10::ScalarType::Float, "current_scale");
  check_scalar_tensor(growth_tracker, c10::ScalarType::Int, "growth_tracker");
  check_scalar_tensor(found_inf, c10::ScalarType::Float, "found_inf");
  const float current = scale.item<float>();
  if (found_inf.item<float>() != 0.0f) {
    scale.fill_(static_cast<float>(current * backoff_factor));
    growth_tracker.fill_(0);
    return scale;
  }
  const int64_t successful = growth_tracker.item<int32_t>() + 1;
  if (successful == growth_interval) {
    const auto grown = static_cast<float>(current * growth_factor);
    // A scale that would overflow stays where it is.
    if (std::isfinite(grown)) {
      scale.fill_(grown);
    }
    growth_tracker.fill_(0);
  } else {
    growth_tracker.fill_(successful);
  }
  return scale;
}

void register_amp_kernels(const Redirect& redirect) {
  std::lock_guard<std::mutex> lock(registration_mutex);
  if (redirect.empty()) {
    registration.reset();
    return;
  }
  const c10::Device target = redirect.target();
  const c10::DispatchKey key =
      c10::computeDispatchKey(c10::nullopt, c10::kStrided, target);
  if (registration && registered_key == key) {
    return;
  }
  registration.reset();
  registered_key = key;
  const bool unscale_missing = !has_kernel("aten::_amp_foreach_non_finite_check_and_unscale_", key);
  const bool update_missing = !has_kernel("aten::_amp_update_scale_", key);
  if (!unscale_missing && !update_missing) {
    return;
  }
  registration =
      std::make_unique<torch::Library>(torch::Library::IMPL, "aten", key, __FILE__, __LINE__);
  if (unscale_missing) {
    registration->impl("_amp_foreach_non_finite_check_and_unscale_",
                       TORCH_FN(amp_non_finite_check_and_unscale));
  }
  if (update_missing) {
    registration->impl("_amp_update_scale_", TORCH_FN(amp_update_scale));
  }
  log::debug(std::string("registered GradScaler kernels for ") + c10::toString(key));
}

void deregister_amp_kernels() {
  std::lock_guard<std::mutex> lock(registration_mutex);
  registration.reset();
  registered_key = c10::DispatchKey::Undefined;
}

}  // namespace torchdevice
