#pragma once

#include <c10/core/Device.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <string>

namespace torchdevice {

// Which accelerators this process can really use. Injected in tests, probed at install.
struct Availability {
  bool cuda = false;
  bool mps = false;
  // Another accelerator torch knows and this process can use: XPU, HPU or a PrivateUse1 device
  // (an NPU, MUSA, ..., or the test suite's stand-in). A process has at most one.
  c10::optional<c10::DeviceType> other;
};

Availability probe_availability();

// The accelerator types code is written for, whose requests torchdevice redirects when absent.
constexpr c10::DeviceType kAccelerators[] = {c10::DeviceType::CUDA, c10::DeviceType::MPS};

// The other accelerators a target may be, probed through their registered device guards.
constexpr c10::DeviceType kOtherAccelerators[] = {
    c10::DeviceType::XPU, c10::DeviceType::HPU, c10::DeviceType::PrivateUse1};

bool is_available(c10::DeviceType type, const Availability& available);

// What a redirect does: requests for any type in `redirected` go to `target`.
// Packed into one word so the dispatcher fallback reads a consistent snapshot with one atomic load.
class Redirect {
 public:
  Redirect() = default;
  Redirect(uint32_t redirected_mask, c10::Device target);

  bool redirects(c10::DeviceType type) const {
    return (mask_ >> static_cast<uint32_t>(type)) & 1u;
  }
  bool empty() const { return mask_ == 0; }
  uint32_t mask() const { return mask_; }
  c10::Device target() const { return c10::Device(target_type_, target_index_); }

  uint64_t pack() const;
  static Redirect unpack(uint64_t word);

 private:
  uint32_t mask_ = 0;
  c10::DeviceType target_type_ = c10::DeviceType::CPU;
  c10::DeviceIndex target_index_ = -1;
};

// The redirect for this machine: every unavailable accelerator goes to the best available device
// that is not itself redirected (MPS, then CUDA, then another accelerator, then CPU), or to
// `override` when given. `override` is a device string such as "cpu", "mps" or a PrivateUse1
// backend's name; it must name an available device.
Redirect select_redirect(const Availability& available, const c10::optional<std::string>& override);

// The human-readable form used in logs and errors, e.g. "cuda, mps -> cpu".
std::string describe(const Redirect& redirect);

}  // namespace torchdevice
