#include "torchdevice/float64.h"

#include <ATen/ops/empty.h>
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
uint8_t refused = 0;  // the dtypes the target refused at the last probe, as in `narrowed`

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
  try {
    at::empty({1}, at::TensorOptions().device(target).dtype(dtype)).zero_();
    return false;
  } catch (const c10::Error&) {
    return true;
  }
}

}  // namespace

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
  uint8_t refusals = 0;
  if (!target.is_cpu()) {
    refusals |= refuses(target, c10::ScalarType::Double) ? kFloat64 : 0;
    refusals |= refuses(target, c10::ScalarType::ComplexDouble) ? kComplex128 : 0;
  }
  in_force = policy;
  configured_target = target;
  refused = refusals;
  const uint8_t narrowed = policy == Policy::float32 ? (kFloat64 | kComplex128)
                           : policy == Policy::error ? (refusals != 0 ? kHint : 0)
                                                     : refusals;
  detail::narrowed.store(narrowed, std::memory_order_relaxed);
}

void clear() {
  std::lock_guard<std::mutex> lock(configure_mutex);
  in_force = Policy::automatic;
  refused = 0;
  detail::narrowed.store(0, std::memory_order_relaxed);
}

Policy policy() {
  std::lock_guard<std::mutex> lock(configure_mutex);
  return in_force;
}

bool target_refuses(c10::ScalarType dtype) {
  std::lock_guard<std::mutex> lock(configure_mutex);
  return (refused & bit_of(dtype)) != 0;
}

std::string describe(c10::ScalarType from, c10::ScalarType to) {
  return std::string(from == c10::ScalarType::Double ? "float64" : "complex128") + " -> " +
         (to == c10::ScalarType::Float ? "float32" : "complex64");
}

std::string refusal_hint(c10::ScalarType dtype) {
  std::lock_guard<std::mutex> lock(configure_mutex);
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
