#include "torchdevice/float64.h"

#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/ops/empty.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <mutex>

namespace torchdevice::float64 {

namespace detail {
std::atomic<uint8_t> narrowed{0};
}  // namespace detail

namespace {

std::mutex configure_mutex;
Policy in_force = Policy::automatic;
c10::Device configured_target(c10::DeviceType::CPU);
bool probed = true;  // whether `refused` answers for `configured_target` yet
uint8_t refused = 0;  // the dtypes the target refused at the probe, as in `narrowed`

constexpr uint8_t kFloat64 = 1u;
constexpr uint8_t kComplex128 = 2u;
constexpr uint8_t kHint = 4u;

uint8_t bit_of(c10::ScalarType dtype) {
  return dtype == c10::ScalarType::Double          ? kFloat64
         : dtype == c10::ScalarType::ComplexDouble ? kComplex128
                                                   : 0;
}

// Asked of the target itself, so every backend answers for itself: a dtype the backend refuses
// to make a tensor of, or to compute with, is one it lacks. Both are asked: MPS makes complex128
// tensors and refuses every op on them.
bool refuses(c10::Device target, c10::ScalarType dtype) {
  // Asked of the backend's kernels alone: a Python mode (a fake-tensor trace) or a graph capture
  // in progress would otherwise answer, or record the probe.
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  c10::impl::ExcludeDispatchKeyGuard no_modes(
      c10::autocast_dispatch_keyset |
      c10::DispatchKeySet({c10::DispatchKey::Python, c10::DispatchKey::PythonTLSSnapshot,
                           c10::DispatchKey::Fake}));
  try {
    at::empty({1}, at::TensorOptions().device(target).dtype(dtype)).zero_();
    return false;
  } catch (const c10::Error&) {
    return true;
  }
}

uint8_t narrowed_by(Policy policy) {
  return policy == Policy::float32 ? (kFloat64 | kComplex128)
         : policy == Policy::error ? (refused != 0 ? kHint : 0)
                                   : refused;
}

// The probe, once per install, at the first moment an answer is needed: the first redirected
// request, or a question about the policy. Never at install: that runs at `import torchdevice`,
// in every spawned DataLoader worker too, and would start the device's queues and kernels
// (Metal's, on a Mac) in processes that may never use it.
void probe_locked() {
  if (probed) {
    return;
  }
  refused = 0;
  refused |= refuses(configured_target, c10::ScalarType::Double) ? kFloat64 : 0;
  refused |= refuses(configured_target, c10::ScalarType::ComplexDouble) ? kComplex128 : 0;
  probed = true;
  detail::narrowed.store(narrowed_by(in_force), std::memory_order_relaxed);
}

}  // namespace

namespace detail {
uint8_t probe() {
  std::lock_guard<std::mutex> lock(configure_mutex);
  probe_locked();
  return narrowed.load(std::memory_order_relaxed);
}
}  // namespace detail

Policy parse(const std::string& value) {
  if (value == "auto") {
    return Policy::automatic;
  }
  if (value == "float32") {
    return Policy::float32;
  }
  TORCH_CHECK(value == "error", "torchdevice: unknown float64 policy '", value,
              "' (TORCHDEVICE_FLOAT64 or install(float64=...)). Expected one of: 'auto' (narrow "
              "float64 to float32 only where the target lacks it), 'float32' (always), 'error' "
              "(never).");
  return Policy::error;
}

Policy from_env() {
  const char* value = std::getenv("TORCHDEVICE_FLOAT64");
  return value == nullptr || *value == '\0' ? Policy::automatic : parse(value);
}

std::string name(Policy policy) {
  switch (policy) {
    case Policy::automatic:
      return "auto";
    case Policy::float32:
      return "float32";
    case Policy::error:
      return "error";
  }
  TORCH_INTERNAL_ASSERT(false, "unknown float64 policy");
}

void configure(Policy policy, c10::Device target) {
  std::lock_guard<std::mutex> lock(configure_mutex);
  in_force = policy;
  configured_target = target;
  refused = 0;
  // The CPU has every dtype: nothing to ask. 'float32' narrows whatever the answer.
  probed = target.is_cpu();
  detail::narrowed.store(probed || policy == Policy::float32 ? narrowed_by(policy)
                                                             : detail::kUnprobed,
                         std::memory_order_relaxed);
}

void clear() {
  std::lock_guard<std::mutex> lock(configure_mutex);
  in_force = Policy::automatic;
  refused = 0;
  probed = true;
  detail::narrowed.store(0, std::memory_order_relaxed);
}

Policy policy() {
  std::lock_guard<std::mutex> lock(configure_mutex);
  return in_force;
}

bool target_refuses(c10::ScalarType dtype) {
  std::lock_guard<std::mutex> lock(configure_mutex);
  probe_locked();
  return (refused & bit_of(dtype)) != 0;
}

std::string describe(c10::ScalarType from, c10::ScalarType to) {
  return std::string(from == c10::ScalarType::Double ? "float64" : "complex128") + " -> " +
         (to == c10::ScalarType::Float ? "float32" : "complex64");
}

std::string refusal_hint(c10::ScalarType dtype) {
  std::lock_guard<std::mutex> lock(configure_mutex);
  probe_locked();
  if (in_force != Policy::error || (refused & bit_of(dtype)) == 0) {
    return {};
  }
  const bool real = dtype == c10::ScalarType::Double;
  return std::string("torchdevice: this request was redirected to ") + configured_target.str() +
         ", which has no " + (real ? "float64" : "complex128") +
         ", and the float64 policy 'error' keeps it. Set TORCHDEVICE_FLOAT64=auto (or "
         "torchdevice.install(float64='auto')) to narrow it to " +
         (real ? "float32" : "complex64") + " instead.";
}

}  // namespace torchdevice::float64
