#include "torchdevice/guard.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "torchdevice/log.h"

#include <string>

namespace torchdevice {

namespace {

// The registry is non-owning and guards must outlive every DeviceGuard, so these are never freed.
const c10::impl::DeviceGuardImplInterface* noop_guard(c10::DeviceType type) {
  static const c10::impl::NoOpDeviceGuardImpl<c10::DeviceType::CUDA> cuda;
  static const c10::impl::NoOpDeviceGuardImpl<c10::DeviceType::MPS> mps;
  switch (type) {
    case c10::DeviceType::CUDA:
      return &cuda;
    case c10::DeviceType::MPS:
      return &mps;
    default:
      TORCH_INTERNAL_ASSERT(false, "no no-op guard for ", type);
  }
}

std::atomic<const c10::impl::DeviceGuardImplInterface*>& slot(c10::DeviceType type) {
  return c10::impl::device_guard_impl_registry[static_cast<size_t>(type)];
}

}  // namespace

void register_guards(const Redirect& redirect) {
  for (auto type : kAccelerators) {
    if (!redirect.redirects(type)) {
      continue;
    }
    const c10::impl::DeviceGuardImplInterface* expected = nullptr;
    // compare_exchange: install ours only into an empty slot, never over a real guard.
    if (slot(type).compare_exchange_strong(expected, noop_guard(type))) {
      log::debug("registered no-op device guard for " + c10::DeviceTypeName(type, true));
    }
  }
}

void deregister_guards() {
  for (auto type : kAccelerators) {
    const c10::impl::DeviceGuardImplInterface* ours = noop_guard(type);
    // Only clears the slot if it still holds our guard.
    slot(type).compare_exchange_strong(ours, nullptr);
  }
}

}  // namespace torchdevice
