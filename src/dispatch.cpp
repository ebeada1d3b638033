#include "torchdevice/dispatch.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty_ops.h>
#include <ATen/ops/empty_strided_ops.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "torchdevice/float64.h"
#include "torchdevice/log.h"
#include "torchdevice/report.h"
#include "torchdevice/state.h"
#include "torchdevice/target_device.h"

#include <c10/core/DefaultDtype.h>
#include <c10/core/TensorOptions.h>

#include <memory>
#include <string>
#include <tuple>
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

// A call that passed dispatch before an uninstall on another thread arrives with nothing in
// force: it gets the error torch gives for a backend it lacks, not one about torchdevice's state.
// The name is formatted only on failure: this runs on every redirected call.
template <class Name>
void check_still_installed(const Redirect& redirect, const Name& op_name) {
  TORCH_CHECK_NOT_IMPLEMENTED(!redirect.empty(), "Could not run '", op_name,
                              "' on an unavailable accelerator: torchdevice was uninstalled "
                              "while this call was in flight.");
}

constexpr char kOutOfMemoryOn[] = "Out of memory on ";

// Running out of memory, reported without the target's name yet (a redirected call's own
// allocation; the name is added once).
bool out_of_memory_unnamed(const c10::Error& error) {
  return target_device::is_out_of_memory(error) && error.msg().rfind(kOutOfMemoryOn, 0) != 0;
}

// CUDA code catches torch.cuda.OutOfMemoryError (c10::OutOfMemoryError) to shrink its batch; a
// redirected call raises that for any exhaustion and says where the memory ran out. A wide dtype
// the target refused under the float64 policy 'error' keeps the target's error, with a hint
// naming the policy. Exceptions cost nothing on the path that does not throw.
template <class Call>
decltype(auto) with_target_errors(const Redirect& redirect, c10::optional<c10::ScalarType> dtype,
                                  Call&& call) {
  try {
    return call();
  } catch (c10::Error& error) {
    TORCH_CHECK_WITH(OutOfMemoryError, !out_of_memory_unnamed(error), kOutOfMemoryOn,
                     redirect.target(), ", where torchdevice redirects ", describe(redirect),
                     ": ", error.what_without_backtrace());
    if (dtype.has_value()) {
      const std::string hint = float64::refusal_hint(*dtype);
      if (!hint.empty()) {
        error.add_context(hint);
      }
    }
    throw;
  }
}

bool is_wide(c10::ScalarType dtype) {
  return dtype == c10::ScalarType::Double || dtype == c10::ScalarType::ComplexDouble;
}

// Whether `type` is of `kind`, or optional of it.
bool is_kind(const c10::TypePtr& type, c10::TypeKind kind) {
  if (const auto* optional = type->castRaw<c10::OptionalType>()) {
    return optional->getElementType()->kind() == kind;
  }
  return type->kind() == kind;
}

// A request's dtypes under the float64 policy: what was narrowed (for the report) and the wide
// dtype asked for (for the error hint).
struct Narrowing {
  std::string narrowed;
  c10::optional<c10::ScalarType> wide;

  // The dtype to allocate for `asked`: narrowed where the policy says so.
  c10::ScalarType operator()(c10::ScalarType asked) {
    if (!is_wide(asked)) {
      return asked;
    }
    wide = asked;
    const c10::ScalarType substitute = float64::substitute(asked);
    if (substitute != asked) {
      narrowed = float64::describe(asked, substitute);
    }
    return substitute;
  }
};

// The boxed path: each ScalarType argument (held on the stack as an int). A None dtype is left
// to the op: it means "inferred" there.
Narrowing narrow_dtype_arguments(const c10::OperatorHandle& op, torch::jit::Stack& stack,
                                 size_t num_arguments) {
  Narrowing narrowing;
  const auto& arguments = op.schema().arguments();
  const size_t first = stack.size() - num_arguments;
  for (size_t i = 0; i < num_arguments; ++i) {
    c10::IValue& value = stack[first + i];
    if (value.isInt() && is_kind(arguments[i].real_type(), c10::TypeKind::ScalarTypeType)) {
      value = c10::IValue(static_cast<int64_t>(
          narrowing(static_cast<c10::ScalarType>(value.toInt()))));
    }
  }
  return narrowing;
}

// Counts the request for the report: the first redirected device among the arguments.
void report_request(const c10::OperatorHandle& op, const torch::jit::Stack& stack,
                    size_t num_arguments, const Redirect& redirect, const std::string& narrowed) {
  for (size_t i = stack.size() - num_arguments; i < stack.size(); ++i) {
    if (stack[i].isDevice() && redirect.redirects(stack[i].toDevice().type())) {
      report::record(c10::toString(op.schema().operator_name()), stack[i].toDevice().str(),
                     redirect.target(), narrowed);
      return;
    }
  }
}

// Reached by every op whose dispatch key resolves to a redirected backend (no kernel exists there
// on this build). Factories get here through BackendSelect, which derives the key from `device=`.
void redirect_fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const Redirect redirect = current_redirect();
  check_still_installed(redirect, op.schema().operator_name());
  const auto num_arguments = op.schema().arguments().size();
  const Narrowing dtype = float64::engaged() ? narrow_dtype_arguments(op, *stack, num_arguments)
                                             : Narrowing{};
  if (report::enabled() || !dtype.narrowed.empty()) {
    report_request(op, *stack, num_arguments, redirect, dtype.narrowed);
  }
  const size_t rewritten = rewrite_device_arguments(*stack, num_arguments, redirect);
  // Without a device argument to rewrite, calling again would land here again.
  TORCH_CHECK(rewritten > 0, "torchdevice: '", op.schema().operator_name(),
              "' reached a redirected backend with no device argument to redirect (",
              describe(redirect),
              "). Move its tensor inputs to the target device first, or report this op.");
  with_target_errors(redirect, dtype.wide, [&] { op.callBoxed(stack); });
}

// The unboxed fast path. Factories decompose into a few leaf allocations (zeros = empty + zero_,
// .cuda() = _to_copy = empty_strided + copy_), so unboxed kernels for those leaves spare nearly
// every redirected call the boxing of the generic fallback. Built from each op's own schema type,
// so the signature follows the running torch.
struct Rewrite {
  Redirect redirect;
  c10::optional<c10::Device> requested;  // the first device rewritten, for the report

  c10::optional<c10::Device> operator()(c10::optional<c10::Device> device) {
    if (device.has_value() && redirect.redirects(device->type())) {
      if (!requested.has_value()) {
        requested = device;
      }
      return redirect.target();
    }
    return device;
  }
  template <class T>
  decltype(auto) operator()(T&& value) {
    return std::forward<T>(value);
  }
};

// The leaf allocation's dtype argument. At a leaf, no dtype means the default dtype, which
// set_default_dtype(torch.float64) makes wide.
struct NarrowLeafDtype {
  Narrowing& narrowing;

  void operator()(c10::optional<c10::ScalarType>& dtype) {
    const c10::ScalarType asked = dtype.value_or(c10::get_default_dtype_as_scalartype());
    const c10::ScalarType allocated = narrowing(asked);
    if (allocated != asked) {
      dtype = allocated;
    }
  }
  template <class T>
  void operator()(T& /*other*/) {}
};

// "aten::empty.memory_format", as the boxed path names ops in the report.
template <class Op>
std::string operator_name() {
  const std::string overload = Op::overload_name;
  return std::string(Op::name) + (overload.empty() ? "" : "." + overload);
}

template <class Op, class Schema = typename Op::schema>
struct Unboxed;

template <class Op, class Return, class... Args>
struct Unboxed<Op, Return(Args...)> {
  static Return call(Args... args) {
    Rewrite rewrite{current_redirect(), c10::nullopt};
    check_still_installed(rewrite.redirect, Op::name);
    // Evaluated before the call, in a braced list, so `rewrote` is final when checked.
    std::tuple<decltype(rewrite(std::forward<Args>(args)))...> rewritten{
        rewrite(std::forward<Args>(args))...};
    TORCH_CHECK(rewrite.requested.has_value(), "torchdevice: '", Op::name,
                "' reached a redirected backend with no device argument to redirect (",
                describe(rewrite.redirect), ").");
    Narrowing dtype;
    if (float64::engaged()) {
      NarrowLeafDtype narrow{dtype};
      std::apply([&](auto&... values) { (narrow(values), ...); }, rewritten);
    }
    if (report::enabled() || !dtype.narrowed.empty()) {
      report::record(operator_name<Op>(), rewrite.requested->str(), rewrite.redirect.target(),
                     dtype.narrowed);
    }
    // BackendSelect already ran for this call: go straight to the target's dense kernel.
    const auto target_key = c10::computeDispatchKey(c10::nullopt, c10::nullopt,
                                                    rewrite.redirect.target());
    return with_target_errors(rewrite.redirect, dtype.wide, [&]() -> Return {
      return std::apply(
          [&](auto&&... forwarded) {
            return Op::redispatch(c10::DispatchKeySet(target_key),
                                  std::forward<decltype(forwarded)>(forwarded)...);
          },
          std::move(rewritten));
    });
  }
};

struct FastPathOp {
  const char* name;  // as registered under the "aten" namespace
  torch::CppFunction (*kernel)();
};

const FastPathOp fast_path_ops[] = {
    {"empty.memory_format",
     [] { return torch::CppFunction::makeFromUnboxedFunction(
              TORCH_FN(Unboxed<at::_ops::empty_memory_format>::call)); }},
    {"empty_strided",
     [] { return torch::CppFunction::makeFromUnboxedFunction(
              TORCH_FN(Unboxed<at::_ops::empty_strided>::call)); }},
};

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
std::vector<std::string> fast_path_registered;

std::string qualified(const char* name) {
  return std::string("aten::") + name;
}

// Registers the unboxed kernels for `key`, skipping any op that already has a kernel there.
void register_fast_path(c10::DispatchKey key) {
  auto library = std::make_unique<torch::Library>(torch::Library::IMPL, "aten", key, __FILE__,
                                                  __LINE__);
  bool any = false;
  for (const auto& op : fast_path_ops) {
    const std::string full = qualified(op.name);
    const auto dot = full.find('.');
    const auto handle = c10::Dispatcher::singleton().findSchema(
        {full.substr(0, dot), dot == std::string::npos ? "" : full.substr(dot + 1)});
    if (!handle.has_value() || handle->hasKernelForDispatchKey(key)) {
      continue;
    }
    library->impl(op.name, op.kernel());
    fast_path_registered.push_back(full + " (" + c10::toString(key) + ")");
    any = true;
  }
  if (any) {
    registrations.push_back(std::move(library));
  }
}

// Whether `schema` takes a device argument a redirect can rewrite.
bool takes_device(const c10::FunctionSchema& schema) {
  for (const auto& argument : schema.arguments()) {
    if (is_kind(argument.type(), c10::TypeKind::DeviceObjType)) {
      return true;
    }
  }
  return false;
}

// A factory with a CompositeExplicitAutograd kernel runs that kernel on the redirected key (a
// composite kernel fills every backend's entry, ahead of a backend fallback), and only the leaf
// allocations inside it are redirected. Where the target has a kernel of its own for the op, that
// skips it: kaiser_window's composite kernel calls a DispatchStub that has no entry for a
// PrivateUse1 device, whose backend registers kaiser_window itself. Such ops get the redirect as
// their kernel on the redirected key, so the whole call runs as if asked of the target.
void register_whole_call_redirects(c10::DispatchKey redirected, c10::Device target) {
  const auto target_key = c10::computeDispatchKey(c10::nullopt, c10::kStrided, target);
  auto library = std::make_unique<torch::Library>(torch::Library::IMPL, "aten", redirected,
                                                  __FILE__, __LINE__);
  bool any = false;
  auto& dispatcher = c10::Dispatcher::singleton();
  for (const auto& name : dispatcher.getAllOpNames()) {
    const std::string full = c10::toString(name);
    const auto op = dispatcher.findOp(name);
    // An op may have kernels registered before (or without) its schema.
    if (full.rfind("aten::", 0) != 0 || !op.has_value() || !op->hasSchema() ||
        !takes_device(op->schema()) ||
        !op->hasKernelForDispatchKey(target_key) || op->hasKernelForDispatchKey(redirected) ||
        !(op->hasKernelForDispatchKey(c10::DispatchKey::CompositeExplicitAutograd) ||
          op->hasKernelForDispatchKey(
              c10::DispatchKey::CompositeExplicitAutogradNonFunctional))) {
      continue;
    }
    library->impl(full.substr(std::string("aten::").size()).c_str(),
                  torch::CppFunction::makeFromBoxedFunction<&redirect_fallback>());
    log::debug("redirecting whole calls of " + full + " on " + c10::toString(redirected) +
               ": the target has a kernel of its own for it");
    any = true;
  }
  if (any) {
    registrations.push_back(std::move(library));
  }
}

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
      // Torch registers its own fallback on MPS where MPS is built but unavailable (VMs, CI
      // runners), and a key takes one fallback: that one stays. The leaf kernels below still
      // redirect the factories and copies that reach the key.
      if (c10::Dispatcher::singleton().hasBackendFallbackForDispatchKey(key)) {
        log::info("torchdevice: " + std::string(c10::toString(key)) +
                  " already has a backend fallback; redirecting only its allocations there");
        continue;
      }
      // A Library of kind IMPL for namespace "_" is what TORCH_LIBRARY_IMPL(_, KEY, m) builds;
      // owning it here lets uninstall deregister by destroying it.
      auto library = std::make_unique<torch::Library>(torch::Library::IMPL, "_", key,
                                                      __FILE__, __LINE__);
      library->fallback(torch::CppFunction::makeFromBoxedFunction<&redirect_fallback>());
      registrations.push_back(std::move(library));
      log::debug("registered dispatcher fallback for " + std::string(c10::toString(key)));
    }
    register_fast_path(backend_keys(type).front());
    register_whole_call_redirects(backend_keys(type).front(), redirect.target());
  }
}

void deregister_fallbacks() {
  std::lock_guard<std::mutex> lock(registration_mutex);
  registrations.clear();
  fast_path_registered.clear();
}

std::vector<std::string> fast_path() {
  std::lock_guard<std::mutex> lock(registration_mutex);
  return fast_path_registered;
}

}  // namespace torchdevice
