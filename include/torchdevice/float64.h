#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <c10/macros/Macros.h>
#include <c10/util/Optional.h>

#include <atomic>
#include <cstdint>
#include <string>

// The float64 policy: what a redirected request for float64 (or complex128) gets. MPS has no
// float64, and CUDA code makes float64 without asking (torch.from_numpy(a).cuda()), so each
// redirected request may be narrowed to float32 (complex64), visibly: the call site is warned
// about once and the redirect report shows it. Explicit 'cpu' and non-redirected work are never
// touched. Set by TORCHDEVICE_FLOAT64 or install(float64=...):
//   auto     narrow only a dtype the target refuses (asked of the target once per install, at
//            the first redirected request: never at import)
//   float32  narrow always, on any target
//   error    never narrow: the target's own error, with a hint naming this switch
namespace torchdevice::float64 {

enum class Policy : uint8_t { automatic, float32, error };

// "auto", "float32" or "error"; anything else is a PyTorch-style error naming the choices.
Policy parse(const std::string& value);
// TORCHDEVICE_FLOAT64, or auto when unset.
Policy from_env();
std::string name(Policy policy);

// Decides for `target` which dtypes redirected requests get narrowed; called by install.
void configure(Policy policy, c10::Device target);
// Nothing narrowed (uninstall).
void clear();

Policy policy();

// Whether the target refuses `dtype` (false on the CPU); probes the target if not yet done.
bool target_refuses(c10::ScalarType dtype);

namespace detail {
// Bit 0: float64 -> float32; bit 1: complex128 -> complex64; bit 2: the policy is 'error' and the
// target refuses a wide dtype (its errors get a hint); kUnprobed alone: the target has not been
// asked yet. Written only by configure/clear and the probe.
extern std::atomic<uint8_t> narrowed;
constexpr uint8_t kUnprobed = 8u;
// Asks the target (once), then returns `narrowed`.
uint8_t probe();

inline uint8_t narrowed_now() {
  const uint8_t narrowed = detail::narrowed.load(std::memory_order_relaxed);
  return C10_UNLIKELY(narrowed == kUnprobed) ? probe() : narrowed;
}
}  // namespace detail

// Whether the policy acts on anything now (narrows, or hints): one relaxed load, so redirected
// requests pay nothing more where it does not.
inline bool engaged() {
  return detail::narrowed_now() != 0;
}

// The dtype a redirected request for `dtype` gets under the policy in force.
inline c10::ScalarType substitute(c10::ScalarType dtype) {
  const uint8_t narrowed = detail::narrowed_now();
  if (dtype == c10::ScalarType::Double && (narrowed & 1u) != 0) {
    return c10::ScalarType::Float;
  }
  if (dtype == c10::ScalarType::ComplexDouble && (narrowed & 2u) != 0) {
    return c10::ScalarType::ComplexFloat;
  }
  return dtype;
}

// "float64 -> float32" for the report and the warning.
std::string describe(c10::ScalarType from, c10::ScalarType to);

// Under the error policy, for a request of `dtype` that the target refused: the hint naming the
// switch; empty otherwise.
std::string refusal_hint(c10::ScalarType dtype);

}  // namespace torchdevice::float64
