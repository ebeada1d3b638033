#include "torchdevice/target.h"

#include <ATen/Context.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>

#include "torchdevice/device_spec.h"

namespace torchdevice {

namespace {

constexpr uint32_t bit(c10::DeviceType type) {
  return 1u << static_cast<uint32_t>(type);
}

static_assert(static_cast<int>(c10::DeviceType::COMPILE_TIME_MAX_DEVICE_TYPES) <= 32,
              "Redirect packs the redirected device types into a 32-bit mask");

// A backend is usable when it registered a device guard (every backend torch can run does, built
// in or loaded as an extension) that sees at least one device.
bool has_devices(c10::DeviceType type) {
  return c10::impl::hasDeviceGuardImpl(type) &&
         c10::impl::getDeviceGuardImpl(type)->deviceCount() > 0;
}

}  // namespace

Availability probe_availability() {
  Availability available;
  // CUDA's and MPS's own hooks: a guard may be registered for them on a machine without them
  // (torchdevice's own no-op one while installed).
  available.cuda = at::hasCUDA();
  available.mps = at::hasMPS();
  for (auto type : kOtherAccelerators) {
    if (has_devices(type)) {
      available.other = type;
      break;
    }
  }
  return available;
}

bool is_available(c10::DeviceType type, const Availability& available) {
  switch (type) {
    case c10::DeviceType::CPU:
      return true;
    case c10::DeviceType::CUDA:
      return available.cuda;
    case c10::DeviceType::MPS:
      return available.mps;
    default:
      return available.other == type;
  }
}

Redirect::Redirect(uint32_t redirected_mask, c10::Device target)
    : mask_(redirected_mask), target_type_(target.type()), target_index_(target.index()) {
  TORCH_INTERNAL_ASSERT(!redirects(target_type_), "a redirect must not target a redirected type");
}

uint64_t Redirect::pack() const {
  return (static_cast<uint64_t>(mask_) << 32) |
         (static_cast<uint64_t>(static_cast<uint8_t>(target_type_)) << 8) |
         static_cast<uint64_t>(static_cast<uint8_t>(target_index_));
}

Redirect Redirect::unpack(uint64_t word) {
  Redirect r;
  r.mask_ = static_cast<uint32_t>(word >> 32);
  r.target_type_ = static_cast<c10::DeviceType>(static_cast<int8_t>((word >> 8) & 0xff));
  r.target_index_ = static_cast<c10::DeviceIndex>(static_cast<int8_t>(word & 0xff));
  return r;
}

Redirect select_redirect(const Availability& available,
                         const c10::optional<std::string>& override) {
  uint32_t mask = 0;
  for (auto type : kAccelerators) {
    if (!is_available(type, available)) {
      mask |= bit(type);
    }
  }

  c10::Device target(c10::DeviceType::CPU);
  if (override.has_value() && !override->empty()) {
    target = parse_device(*override);
    TORCH_CHECK(is_available(target.type(), available), "torchdevice: the requested target '",
                *override, "' is not available on this machine. Choose one of: ",
                available.mps ? "'mps', " : "", available.cuda ? "'cuda', " : "",
                available.other ? "'" + c10::DeviceTypeName(*available.other, true) + "', " : "",
                "'cpu'.");
  } else if (available.mps) {
    target = c10::Device(c10::DeviceType::MPS);
  } else if (available.cuda) {
    target = c10::Device(c10::DeviceType::CUDA);
  } else if (available.other) {
    target = c10::Device(*available.other);
  }
  // An accelerator target is one device: every redirected index lands on the one named, or 0.
  if (target.type() != c10::DeviceType::CPU && !target.has_index()) {
    target = c10::Device(target.type(), 0);
  }
  return Redirect(mask, target);
}

std::string describe(const Redirect& redirect) {
  std::string out;
  for (auto type : kAccelerators) {
    if (redirect.redirects(type)) {
      out += (out.empty() ? "" : ", ") + c10::DeviceTypeName(type, /*lower_case=*/true);
    }
  }
  if (out.empty()) {
    return "nothing redirected";
  }
  return out + " -> " + redirect.target().str();
}

}  // namespace torchdevice
