#include "torchdevice/state.h"

#include <c10/util/Exception.h>

#include "torchdevice/amp.h"
#include "torchdevice/dispatch.h"
#include "torchdevice/float64.h"
#include "torchdevice/guard.h"
#include "torchdevice/log.h"
#include "torchdevice/missing_ops.h"
#include "torchdevice/pinning.h"
#include "torchdevice/staged_backend.h"

#include <atomic>
#include <cstdlib>
#include <mutex>

namespace torchdevice {

namespace {

std::mutex install_mutex;
std::atomic<bool> installed{false};
// Read by the dispatcher fallback on every redirected call; written only under install_mutex.
std::atomic<uint64_t> live_redirect{Redirect().pack()};

c10::optional<std::string> override_from_env() {
  const char* value = std::getenv("TORCHDEVICE_TARGET");
  if (value == nullptr || *value == '\0') {
    return c10::nullopt;
  }
  return std::string(value);
}

}  // namespace

Redirect install(const c10::optional<std::string>& override,
                 const c10::optional<std::string>& float64_policy) {
  return install(probe_availability(), override, float64_policy);
}

namespace {

void register_all(const Redirect& redirect) {
  register_guards(redirect);
  register_fallbacks(redirect);
  register_amp_kernels(redirect);
  register_pinning(redirect);
  register_missing_ops(redirect);
  register_staged_ops(redirect);
}

void deregister_all() {
  deregister_fallbacks();
  deregister_guards();
  deregister_amp_kernels();
  deregister_pinning();
  deregister_missing_ops();
  deregister_staged_ops();
}

}  // namespace

Redirect install(const Availability& available, const c10::optional<std::string>& override,
                 const c10::optional<std::string>& float64_policy) {
  std::lock_guard<std::mutex> lock(install_mutex);
  log::configure_from_env();
  const Redirect redirect =
      select_redirect(available, override.has_value() ? override : override_from_env());
  const float64::Policy policy =
      float64_policy.has_value() ? float64::parse(*float64_policy) : float64::from_env();

  // All or nothing: a registration that fails (another library holds a key) leaves nothing of
  // this install behind, so the process is as it was before the call, or uninstalled if a
  // previous install was being replaced.
  try {
    if (installed.load()) {
      const Redirect previous = current_redirect();
      if (previous.mask() == redirect.mask()) {
        // Same backends: the fallbacks read the live redirect, so retargeting is one store.
        if (previous.target() != redirect.target()) {
          live_redirect.store(redirect.pack());
          register_amp_kernels(redirect);
          register_pinning(redirect);
          register_missing_ops(redirect);
          register_staged_ops(redirect);
          log::info("torchdevice: retargeted: " + describe(redirect));
        }
        float64::configure(policy, redirect.target());
        return redirect;
      }
      // Different availability (tests inject it): re-register for the new set of backends.
      deregister_all();
    }
    live_redirect.store(redirect.pack());
    register_all(redirect);
  } catch (...) {
    deregister_all();
    live_redirect.store(Redirect().pack());
    installed.store(false);
    throw;
  }
  float64::configure(policy, redirect.target());
  installed.store(true);
  log::info("torchdevice: installed: " + describe(redirect) + ", float64 policy " +
            float64::name(policy));
  return redirect;
}

void uninstall() {
  std::lock_guard<std::mutex> lock(install_mutex);
  if (!installed.load()) {
    return;
  }
  deregister_all();
  float64::clear();
  live_redirect.store(Redirect().pack());
  installed.store(false);
  log::info("torchdevice: uninstalled");
}

bool is_installed() {
  return installed.load();
}

Redirect current_redirect() {
  return Redirect::unpack(live_redirect.load(std::memory_order_acquire));
}

}  // namespace torchdevice
