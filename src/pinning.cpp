#include "torchdevice/pinning.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "torchdevice/log.h"
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

at::Tensor pin_memory_copy(const at::Tensor& self, c10::optional<c10::Device> /*device*/) {
  return at::empty_like(self, at::MemoryFormat::Preserve).copy_(self);
}

void register_pinning(const Redirect& redirect) {
  std::lock_guard<std::mutex> lock(registration_mutex);
  registrations.clear();  // a retarget changes the target's key
  if (redirect.empty()) {
    return;
  }
  // torch 1.x dispatches pinning on the backend it pins for (its device argument, CUDA by
  // default); torch 2.x on the backend of the accelerator it pins for. A target with a pinned
  // host allocator keeps its own pinning; one without (the CPU, MPS-like backends) gets the copy.
  std::vector<c10::DispatchKey> keys;
  if (!target_device::has_pinned_memory(redirect.target().type())) {
    keys.push_back(c10::computeDispatchKey(c10::nullopt, c10::kStrided, redirect.target()));
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
    library->impl("_pin_memory", TORCH_FN(pin_memory_copy));
    registrations.push_back(std::move(library));
    log::debug(std::string("registered _pin_memory for ") + c10::toString(key));
  }
}

void deregister_pinning() {
  std::lock_guard<std::mutex> lock(registration_mutex);
  registrations.clear();
}

}  // namespace torchdevice
