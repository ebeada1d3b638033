#include "torchdevice/graph_capture.h"

#include <ATen/ATen.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "torchdevice/log.h"
#include "torchdevice/state.h"

#include <atomic>
#include <memory>
#include <mutex>

namespace torchdevice {

namespace {

// The recorder's key: a functionality key below autograd, autocast, ADInplaceOrView, the
// conjugate/negative views and functionalization, which nothing but C++ FakeTensor experiments
// use, so an included TLS bit reaches every op just above the kernels. Its fallback is
// registered while torchdevice can capture, and only where the dispatcher has none.
constexpr c10::DispatchKey kRecordKey = c10::DispatchKey::Fake;

// The graph capturing on this thread; and the one capturing anywhere, for the threads that work
// for the capturing thread with its dispatch state copied to them (autograd runs an
// accelerator's backward on the device's own thread). One capture at a time per process.
thread_local CapturedGraph* active = nullptr;
std::atomic<CapturedGraph*> underway{nullptr};

std::mutex registration_mutex;
std::unique_ptr<torch::Library> recorder;

void record_fallback(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                     torch::jit::Stack* stack) {
  const auto below = keys & c10::DispatchKeySet(c10::DispatchKeySet::FULL_AFTER, kRecordKey);
  // The capturing thread's `active` is always the graph underway.
  CapturedGraph* graph = underway.load(std::memory_order_acquire);
  if (graph == nullptr) {
    // The bit was copied to a thread after the capture ended (a graph task's saved TLS).
    c10::impl::ExcludeDispatchKeyGuard no_record(kRecordKey);
    op.redispatchBoxed(below, stack);
    return;
  }
  graph->record(op, below, stack);
}

void ensure_registered() {
  std::lock_guard<std::mutex> lock(registration_mutex);
  if (recorder) {
    return;
  }
  TORCH_CHECK(!c10::Dispatcher::singleton().hasBackendFallbackForDispatchKey(kRecordKey),
              "torchdevice cannot capture CUDA graphs on this torch: its dispatcher already has a "
              "fallback for the ", kRecordKey, " key that the capture records through");
  recorder = std::make_unique<torch::Library>(torch::Library::IMPL, "_", kRecordKey, __FILE__,
                                              __LINE__);
  recorder->fallback(torch::CppFunction::makeFromBoxedFunction<&record_fallback>());
  log::debug("registered the CUDA graph recorder on the " + std::string(c10::toString(kRecordKey)) +
             " key");
}

void collect(const c10::IValue& value, std::vector<at::Tensor>& out) {
  if (value.isTensor()) {
    out.push_back(value.toTensor());
  } else if (value.isList()) {
    for (const c10::IValue& element : value.toListRef()) {
      if (element.isTensor()) {
        out.push_back(element.toTensor());
      }
    }
  }
}

// Whether a call works on the target: a tensor argument there, or a device argument naming it or
// a type redirected to it (a factory, seen before the redirect rewrites it). CUDA graphs capture
// device work only; host ops inside a capture run once, there and then.
bool works_on_target(const torch::jit::Stack& arguments, const Redirect& redirect) {
  const c10::DeviceType target = redirect.target().type();
  for (const c10::IValue& value : arguments) {
    if (value.isDevice() && (value.toDevice().type() == target ||
                             redirect.redirects(value.toDevice().type()))) {
      return true;
    }
    std::vector<at::Tensor> tensors;
    collect(value, tensors);
    for (const at::Tensor& tensor : tensors) {
      if (tensor.defined() && tensor.device().type() == target) {
        return true;
      }
    }
  }
  return false;
}

const c10::StorageImpl* storage_of(const at::Tensor& t) {
  return t.defined() && t.has_storage() ? t.storage().unsafeGetStorageImpl() : nullptr;
}

// A byte tensor over all of `storage`, whatever its tensors' dtypes.
at::Tensor bytes_of(const c10::Storage& storage) {
  const auto nbytes = static_cast<int64_t>(storage.nbytes());
  return at::empty({0}, at::TensorOptions().dtype(at::kByte).device(storage.device()))
      .set_(storage, 0, {nbytes}, {1});
}

bool writes_arguments(const c10::FunctionSchema& schema) {
  for (const auto& argument : schema.arguments()) {
    if (argument.alias_info() != nullptr && argument.alias_info()->isWrite()) {
      return true;
    }
  }
  return false;
}

// Allocations whose contents are undefined: a CUDA graph holds no kernel for them.
bool allocation_only(const c10::FunctionSchema& schema) {
  const std::string& name = schema.name();
  return name.rfind("aten::empty", 0) == 0 || name.rfind("aten::new_empty", 0) == 0;
}

// The profiler's ranges: no kernel either, and torch 1.x hands a range out as a tensor that wraps
// a C++ object, which must never be copied into.
bool profiler_range(const c10::FunctionSchema& schema) {
  return schema.name().rfind("profiler::", 0) == 0;
}

}  // namespace

CapturedGraph::~CapturedGraph() {
  if (active == this) {
    c10::impl::tls_set_dispatch_key_included(kRecordKey, false);
    active = nullptr;
  }
  CapturedGraph* self = this;
  underway.compare_exchange_strong(self, nullptr);
}

void CapturedGraph::begin() {
  TORCH_CHECK(!captured_ && !capturing_,
              "This CUDAGraph instance already owns a captured graph. To capture a new graph, "
              "call reset() or create a new instance.");
  TORCH_CHECK(active == nullptr,
              "A CUDA graph capture is already underway on this thread; end it before beginning "
              "another.");
  ensure_registered();
  CapturedGraph* none = nullptr;
  TORCH_CHECK(underway.compare_exchange_strong(none, this),
              "A CUDA graph capture is already underway on another thread; the target torchdevice "
              "redirects CUDA to records one capture at a time.");
  redirect_ = current_redirect();
  capturing_ = true;
  active = this;
  c10::impl::tls_set_dispatch_key_included(kRecordKey, true);
}

void CapturedGraph::end() {
  TORCH_CHECK(capturing_ && active == this,
              "capture_end() without capture_begin() of this CUDAGraph on this thread");
  c10::impl::tls_set_dispatch_key_included(kRecordKey, false);
  active = nullptr;
  underway.store(nullptr, std::memory_order_release);
  capturing_ = false;
  restore_saved();
  captured_ = true;
}

void CapturedGraph::reset() {
  TORCH_CHECK(!capturing_, "reset() of a CUDAGraph while it is capturing");
  records_.clear();
  saved_.clear();
  fresh_.clear();
  pool_.clear();
  captured_ = false;
}

void CapturedGraph::save_before_write(const c10::FunctionSchema& schema,
                                      const torch::jit::Stack& arguments) {
  const auto& formals = schema.arguments();
  for (size_t i = 0; i < formals.size(); ++i) {
    if (formals[i].alias_info() == nullptr || !formals[i].alias_info()->isWrite()) {
      continue;
    }
    std::vector<at::Tensor> written;
    collect(arguments[i], written);
    for (const auto& tensor : written) {
      const auto* impl = storage_of(tensor);
      if (impl == nullptr || fresh_.count(impl) != 0 || saved_ids_.count(impl) != 0) {
        continue;
      }
      saved_ids_.insert(impl);
      saved_.push_back({tensor.storage(), bytes_of(tensor.storage()).clone()});
    }
  }
}

void CapturedGraph::restore_saved() {
  c10::impl::ExcludeDispatchKeyGuard no_record(kRecordKey);
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  for (const auto& saved : saved_) {
    bytes_of(saved.storage).copy_(saved.bytes);
  }
  saved_.clear();
  saved_ids_.clear();
}

void CapturedGraph::record(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                           torch::jit::Stack* stack) {
  const auto& schema = op.schema();
  const size_t num_arguments = schema.arguments().size();
  TORCH_INTERNAL_ASSERT(stack->size() >= num_arguments);
  torch::jit::Stack arguments(stack->end() - static_cast<std::ptrdiff_t>(num_arguments),
                              stack->end());
  // On the CPU target every tensor is the target's: everything is device work there.
  if (!redirect_.target().is_cpu() && !works_on_target(arguments, redirect_)) {
    c10::impl::ExcludeDispatchKeyGuard no_record(kRecordKey);
    op.redispatchBoxed(keys, stack);
    return;
  }
  std::unordered_set<const c10::StorageImpl*> argument_storage;
  {
    // Saving, and the op's own inner calls, are not part of what is captured.
    c10::impl::ExcludeDispatchKeyGuard no_record(kRecordKey);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      save_before_write(schema, arguments);
    }
    op.redispatchBoxed(keys, stack);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<at::Tensor> argument_tensors;
  for (const auto& value : arguments) {
    collect(value, argument_tensors);
  }
  for (const auto& tensor : argument_tensors) {
    argument_storage.insert(storage_of(tensor));
  }

  Record entry{op, keys, std::move(arguments), {}, true};
  if (profiler_range(schema)) {
    entry.replay = false;
    entry.arguments.clear();
    records_.push_back(std::move(entry));
    return;
  }
  const auto& returns = schema.returns();
  TORCH_INTERNAL_ASSERT(stack->size() >= returns.size());
  const size_t first = stack->size() - returns.size();
  bool has_result = false;
  for (size_t i = 0; i < returns.size(); ++i) {
    std::vector<at::Tensor> produced;
    collect((*stack)[first + i], produced);
    const bool functional = returns[i].alias_info() == nullptr;
    for (auto& tensor : produced) {
      const auto* impl = storage_of(tensor);
      // Views, and results that are an argument's memory, change with their source by themselves.
      const bool owns_memory =
          functional && impl != nullptr && argument_storage.count(impl) == 0;
      if (owns_memory) {
        fresh_.insert(impl);
        pool_.push_back(tensor.storage());
        has_result = true;
      }
      entry.results.push_back(owns_memory ? tensor : at::Tensor());
    }
  }
  entry.replay = (has_result || writes_arguments(schema)) && !allocation_only(schema);
  if (!entry.replay) {
    entry.arguments.clear();
    entry.results.clear();
  }
  records_.push_back(std::move(entry));
}

void CapturedGraph::replay() {
  TORCH_CHECK(captured_, "replay() of a CUDAGraph that has not been captured (call capture_end)");
  TORCH_CHECK(active == nullptr,
              "replay() of a CUDA graph while another capture is underway on this thread is not "
              "supported on the target torchdevice redirects CUDA to");
  // As when captured: the kernels' inner calls skip autograd and autocast.
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  for (const auto& entry : records_) {
    if (!entry.replay) {
      continue;
    }
    torch::jit::Stack stack(entry.arguments);
    entry.op.redispatchBoxed(entry.keys, &stack);
    if (entry.results.empty()) {
      continue;
    }
    std::vector<at::Tensor> produced;
    const size_t num_returns = entry.op.schema().returns().size();
    for (size_t i = stack.size() - num_returns; i < stack.size(); ++i) {
      collect(stack[i], produced);
    }
    TORCH_CHECK(produced.size() == entry.results.size(), "CUDA graph replay: ",
                entry.op.schema().name(), " returned ", produced.size(),
                " tensors where the capture returned ", entry.results.size());
    for (size_t i = 0; i < produced.size(); ++i) {
      const at::Tensor& captured = entry.results[i];
      if (!captured.defined()) {
        continue;
      }
      TORCH_CHECK(produced[i].sizes() == captured.sizes(), "CUDA graph replay: ",
                  entry.op.schema().name(), " produced shape ", produced[i].sizes(),
                  " where the capture produced ", captured.sizes(),
                  "; a graph cannot hold data-dependent shapes");
      captured.copy_(produced[i]);
    }
  }
}

std::vector<std::string> CapturedGraph::describe() const {
  std::vector<std::string> lines;
  for (const auto& entry : records_) {
    lines.push_back(c10::toString(entry.op.schema().operator_name()) +
                    (entry.replay ? "" : " (not replayed: a view, query or bare allocation)"));
  }
  return lines;
}

size_t CapturedGraph::replayed_ops() const {
  size_t count = 0;
  for (const auto& entry : records_) {
    count += entry.replay ? 1 : 0;
  }
  return count;
}

CapturedGraph* capturing_graph() {
  return active;
}

void deregister_graph_capture() {
  std::lock_guard<std::mutex> lock(registration_mutex);
  recorder.reset();
}

}  // namespace torchdevice
