#include "torchdevice/dispatch.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "torchdevice/log.h"
#include "torchdevice/report.h"
#include "torchdevice/state.h"

#include <memory>
#include <mutex>
#include <vector>

namespace torchdevice {

namespace {

bool rewrite(c10::IValue& value, const Redirect& redirect) {
  if (value.isDevice()) {
    if (redirect.redirects(value.toDevice().type())) {
      value = c10::IValue(redirect.target());
      return true;
    }
    return false;
  }
  if (value.isList()) {
    // No ATen op takes Device[] today; custom ops may, and a missed one would recurse forever.
    bool any = false;
    auto list = value.toList();
    for (size_t i = 0; i < list.size(); ++i) {
      c10::IValue element = list.get(i);
      if (rewrite(element, redirect)) {
        list.set(i, std::move(element));
        any = true;
      }
    }
    return any;
  }
  return false;
}

// Counts the request for the report: the first redirected device among the arguments.
void report_request(const c10::OperatorHandle& op, const torch::jit::Stack& stack,
                    size_t num_arguments, const Redirect& redirect) {
  for (size_t i = stack.size() - num_arguments; i < stack.size(); ++i) {
    if (stack[i].isDevice() && redirect.redirects(stack[i].toDevice().type())) {
      report::record(c10::toString(op.schema().operator_name()), stack[i].toDevice().str(),
                     redirect.target());
      return;
    }
  }
}

// Reached by every op whose dispatch key resolves to a redirected backend (no kernel exists there
// on this build). Factories get here through BackendSelect, which derives the key from `device=`.
void redirect_fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const Redirect redirect = current_redirect();
  const auto num_arguments = op.schema().arguments().size();
  if (report::enabled()) {
    report_request(op, *stack, num_arguments, redirect);
  }
  const size_t rewritten = rewrite_device_arguments(*stack, num_arguments, redirect);
  // Without a device argument to rewrite, calling again would land here again.
  TORCH_CHECK(rewritten > 0, "torchdevice: '", op.schema().operator_name(),
              "' reached a redirected backend with no device argument to redirect (",
              describe(redirect),
              "). Move its tensor inputs to the target device first, or report this op.");
  op.callBoxed(stack);
}

// The backend keys a request for `type` can dispatch to (dense and sparse layouts).
std::vector<c10::DispatchKey> backend_keys(c10::DeviceType type) {
  switch (type) {
    case c10::DeviceType::CUDA:
      return {c10::DispatchKey::CUDA, c10::DispatchKey::SparseCUDA};
    case c10::DeviceType::MPS:
      return {c10::DispatchKey::MPS};
    default:
      TORCH_INTERNAL_ASSERT(false, "no backend keys known for ", type);
  }
}

std::mutex registration_mutex;
std::vector<std::unique_ptr<torch::Library>> registrations;

}  // namespace

size_t rewrite_device_arguments(torch::jit::Stack& stack, size_t num_arguments,
                                const Redirect& redirect) {
  TORCH_INTERNAL_ASSERT(num_arguments <= stack.size());
  size_t rewritten = 0;
  for (size_t i = stack.size() - num_arguments; i < stack.size(); ++i) {
    rewritten += rewrite(stack[i], redirect) ? 1 : 0;
  }
  return rewritten;
}

void register_fallbacks(const Redirect& redirect) {
  std::lock_guard<std::mutex> lock(registration_mutex);
  TORCH_INTERNAL_ASSERT(registrations.empty(), "fallbacks registered twice");
  for (auto type : kAccelerators) {
    if (!redirect.redirects(type)) {
      continue;
    }
    for (auto key : backend_keys(type)) {
      // A Library of kind IMPL for namespace "_" is what TORCH_LIBRARY_IMPL(_, KEY, m) builds;
      // owning it here lets uninstall deregister by destroying it.
      auto library = std::make_unique<torch::Library>(torch::Library::IMPL, "_", key,
                                                      __FILE__, __LINE__);
      library->fallback(torch::CppFunction::makeFromBoxedFunction<&redirect_fallback>());
      registrations.push_back(std::move(library));
      log::debug("registered dispatcher fallback for " + std::string(c10::toString(key)));
    }
  }
}

void deregister_fallbacks() {
  std::lock_guard<std::mutex> lock(registration_mutex);
  registrations.clear();
}

}  // namespace torchdevice
