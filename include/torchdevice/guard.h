#pragma once

#include "torchdevice/target.h"

namespace torchdevice {

// Copies and device-scoped code construct a DeviceGuard for the requested type; a build without
// that backend has no guard for it and fails. Registers a no-op guard for each redirected type
// that has none (a real guard is never replaced), and removes exactly those on uninstall.
void register_guards(const Redirect& redirect);
void deregister_guards();

}  // namespace torchdevice
