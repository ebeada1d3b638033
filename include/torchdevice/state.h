#pragma once

#include <c10/util/Optional.h>

#include "torchdevice/target.h"

#include <string>

namespace torchdevice {

// The C++ half of install: target selection, dispatcher fallbacks and device guards. Usable from
// plain C++ (no Python); the Python module adds its own hooks on top. Thread-safe and idempotent:
// installing again with the same override changes nothing; with another override it retargets.
// `override` falls back to the TORCHDEVICE_TARGET environment variable when not given, and
// `float64_policy` (the float64 policy, torchdevice/float64.h) to TORCHDEVICE_FLOAT64.
Redirect install(const c10::optional<std::string>& override = c10::nullopt,
                 const c10::optional<std::string>& float64_policy = c10::nullopt);
Redirect install(const Availability& available, const c10::optional<std::string>& override,
                 const c10::optional<std::string>& float64_policy = c10::nullopt);

// Exact inverse of install: fallbacks and guards removed. A no-op when not installed.
void uninstall();

bool is_installed();

// The redirect in force (empty when not installed). One atomic load: safe on hot paths.
Redirect current_redirect();

}  // namespace torchdevice
