#include "torchdevice/pinning.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 6)
#include <ATen/ops/_pin_memory_native.h>  // torch's device-generic pinning
#endif

#include "torchdevice/log.h"
#include "torchdevice/state.h"
#include "torchdevice/target_device.h"

#include <memory>
#include <mutex>
#include <vector>

namespace torchdevice {

namespace {

std::mutex registration_mutex;
std::vector<std::unique_ptr<torch::Library>> registrations;

bool has_pin_kernel(c10::DispatchKey key) {
  auto op = c10::Dispatcher::singleton().findOp(c10::OperatorName("aten::_pin_memory", ""));
  return !op.has_value() || op->hasKernelForDispatchKey(key);
}

}  // namespace

at::Tensor pin_memory_for_target(const at::Tensor& self, c10::optional<c10::Device> device) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 6)
  if (device.has_value()) {
    const Redirect redirect = current_redirect();
    if (!redirect.redirects(device->type()) && device->type() != redirect.target().type()) {
      return at::native::_pin_memory(self, device);  // torch's own, for another accelerator
    }
  }
#endif
  (void)device;
  return at::empty_like(self, at::MemoryFormat::Preserve).copy_(self);
}

void register_pinning(const Redirect& redirect) {
  std::lock_guard<std::mutex> lock(registration_mutex);
  registrations.clear();  // a retarget changes the target's key
  if (redirect.empty()) {
    return;
  }
  std::vector<c10::DispatchKey> keys;
  if (!target_device::has_pinned_memory(redirect.target().type())) {
    keys.push_back(c10::DispatchKey::CPU);
  }
  for (auto type : kAccelerators) {
    if (redirect.redirects(type)) {
      keys.push_back(c10::computeDispatchKey(c10::nullopt, c10::kStrided, c10::Device(type)));
    }
  }
  for (auto key : keys) {
    if (has_pin_kernel(key)) {
      continue;
    }
    auto library =
        std::make_unique<torch::Library>(torch::Library::IMPL, "aten", key, __FILE__, __LINE__);
    library->impl("_pin_memory", TORCH_FN(pin_memory_for_target));
    registrations.push_back(std::move(library));
    log::debug(std::string("registered _pin_memory for ") + c10::toString(key));
  }
}

void deregister_pinning() {
  std::lock_guard<std::mutex> lock(registration_mutex);
  registrations.clear();
}

}  // namespace torchdevice
