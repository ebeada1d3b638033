#include "torchdevice/staged_backend.h"

#if TORCHDEVICE_HAS_C10D_BACKENDS
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/library.h>

#include "torchdevice/log.h"

#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>
#endif

namespace torchdevice {

#if TORCHDEVICE_HAS_C10D_BACKENDS

namespace {

using c10d::Work;
using Tensors = std::vector<at::Tensor>;

// CPU copies of what a collective reads and writes: one tensor, a list, or a list of lists.
at::Tensor to_cpu(const at::Tensor& tensor) {
  return tensor.to(at::kCPU);
}

template <class T>
std::vector<T> to_cpu(const std::vector<T>& items) {
  std::vector<T> host;
  host.reserve(items.size());
  for (const auto& item : items) {
    host.push_back(to_cpu(item));
  }
  return host;
}

void copy_back(at::Tensor& device, const at::Tensor& host) {
  device.copy_(host);
}

template <class T>
void copy_back(std::vector<T>& device, const std::vector<T>& host) {
  for (size_t i = 0; i < device.size(); ++i) {
    copy_back(device[i], host[i]);
  }
}

// The CPU collective has finished and its results are on the device: a completed Work whose
// future holds the device tensors, as the reducer and `Work.get_future()` read them.
c10::intrusive_ptr<Work> completed(const c10::IValue& value) {
  auto future = c10::make_intrusive<c10::ivalue::Future>(value.type());
  future->markCompleted(value);
  return Work::create_from_future(future);
}

c10::intrusive_ptr<Work> completed(const at::Tensor& tensor) {
  return completed(c10::IValue(Tensors{tensor}));
}

// Each collective waits for the CPU backend's work before copying back: the copies must see its
// result, and the device tensors are the caller's as soon as this returns.
class CpuStagedBackend final : public c10d::Backend {
 public:
  explicit CpuStagedBackend(c10::intrusive_ptr<c10d::Backend> cpu)
      : Backend(cpu->getRank(), cpu->getSize()), cpu_(std::move(cpu)) {}

  const std::string getBackendName() const override {
    return cpu_->getBackendName() + " (staged through the cpu)";
  }

  c10::intrusive_ptr<Work> broadcast(Tensors& tensors,
                                     const c10d::BroadcastOptions& opts) override {
    return staged(tensors, [&](Tensors& host) { return cpu_->broadcast(host, opts); });
  }

  c10::intrusive_ptr<Work> allreduce(Tensors& tensors,
                                     const c10d::AllreduceOptions& opts) override {
    return staged(tensors, [&](Tensors& host) { return cpu_->allreduce(host, opts); });
  }

  c10::intrusive_ptr<Work> allreduce_coalesced(
      Tensors& tensors, const c10d::AllreduceCoalescedOptions& opts) override {
    return staged(tensors, [&](Tensors& host) { return cpu_->allreduce_coalesced(host, opts); });
  }

  c10::intrusive_ptr<Work> reduce(Tensors& tensors, const c10d::ReduceOptions& opts) override {
    return staged(tensors, [&](Tensors& host) { return cpu_->reduce(host, opts); });
  }

  c10::intrusive_ptr<Work> allgather(std::vector<Tensors>& outputs, Tensors& inputs,
                                     const c10d::AllgatherOptions& opts) override {
    return staged(outputs, inputs, [&](auto& out, auto& in) {
      return cpu_->allgather(out, in, opts);
    });
  }

  c10::intrusive_ptr<Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                           const c10d::AllgatherOptions& opts) override {
    return staged(output, input, [&](auto& out, auto& in) {
      return cpu_->_allgather_base(out, in, opts);
    });
  }

  c10::intrusive_ptr<Work> gather(std::vector<Tensors>& outputs, Tensors& inputs,
                                  const c10d::GatherOptions& opts) override {
    return staged(outputs, inputs, [&](auto& out, auto& in) {
      return cpu_->gather(out, in, opts);
    });
  }

  c10::intrusive_ptr<Work> scatter(Tensors& outputs, std::vector<Tensors>& inputs,
                                   const c10d::ScatterOptions& opts) override {
    return staged(outputs, inputs, [&](auto& out, auto& in) {
      return cpu_->scatter(out, in, opts);
    });
  }

  c10::intrusive_ptr<Work> reduce_scatter(Tensors& outputs, std::vector<Tensors>& inputs,
                                          const c10d::ReduceScatterOptions& opts) override {
    return staged(outputs, inputs, [&](auto& out, auto& in) {
      return cpu_->reduce_scatter(out, in, opts);
    });
  }

  c10::intrusive_ptr<Work> _reduce_scatter_base(at::Tensor& output, at::Tensor& input,
                                                const c10d::ReduceScatterOptions& opts) override {
    return staged(output, input, [&](auto& out, auto& in) {
      return cpu_->_reduce_scatter_base(out, in, opts);
    });
  }

  c10::intrusive_ptr<Work> alltoall_base(at::Tensor& output, at::Tensor& input,
                                         std::vector<int64_t>& output_split_sizes,
                                         std::vector<int64_t>& input_split_sizes,
                                         const c10d::AllToAllOptions& opts) override {
    return staged(output, input, [&](auto& out, auto& in) {
      return cpu_->alltoall_base(out, in, output_split_sizes, input_split_sizes, opts);
    });
  }

  c10::intrusive_ptr<Work> send(Tensors& tensors, int dst_rank, int tag) override {
    auto host = to_cpu(tensors);
    cpu_->send(host, dst_rank, tag)->wait();
    return completed(tensors);
  }

  c10::intrusive_ptr<Work> recv(Tensors& tensors, int src_rank, int tag) override {
    return staged(tensors, [&](Tensors& host) { return cpu_->recv(host, src_rank, tag); });
  }

  c10::intrusive_ptr<Work> barrier(const c10d::BarrierOptions& opts) override {
    cpu_->barrier(opts)->wait();
    return completed(Tensors{});
  }

 private:
  // Runs `collective` on CPU copies, waits for it, and copies what it wrote back to the device.
  template <class Out, class In, class Collective>
  c10::intrusive_ptr<Work> staged(Out& outputs, In& inputs, Collective&& collective) {
    auto host_outputs = to_cpu(outputs);
    auto host_inputs = to_cpu(inputs);
    collective(host_outputs, host_inputs)->wait();
    copy_back(outputs, host_outputs);
    return completed(outputs);
  }

  // The same for a collective whose tensors are read and written in place.
  template <class Collective>
  c10::intrusive_ptr<Work> staged(Tensors& tensors, Collective&& collective) {
    auto host = to_cpu(tensors);
    collective(host)->wait();
    copy_back(tensors, host);
    return completed(tensors);
  }

  c10::intrusive_ptr<c10d::Backend> cpu_;
};

bool has_backend_for(const c10d::ProcessGroup& group, c10::DeviceType device_type) {
  for (const auto& device : group.getDeviceTypes()) {
    if (device.type() == device_type) {
      return true;
    }
  }
  return false;
}

// gloo takes only CPU and CUDA tensors. A group may still list gloo for the target's type: a
// device map's "cuda" names the target while CUDA is redirected.
bool takes(c10d::ProcessGroup& group, c10::DeviceType device_type) {
  if (!has_backend_for(group, device_type)) {
    return false;
  }
  return device_type == c10::kCPU || device_type == c10::kCUDA ||
         group.getBackend(device_type)->getBackendName() != "gloo";
}

// Op-level staging (register_staged_ops): the stack's device tensors swapped for CPU copies,
// remembered so that what the op wrote goes back and its results name the device tensors.
class Staging {
 public:
  c10::IValue to_host(const c10::IValue& value) {
    if (value.isTensor()) {
      return host(value.toTensor());
    }
    if (value.isTensorList()) {
      return host(value.toTensorList());
    }
    if (value.isList()) {  // Tensor[][]: allgather's and reduce_scatter's lists of lists
      const auto items = value.toListRef();
      if (!items.empty() && items.front().isTensorList()) {
        c10::List<c10::List<at::Tensor>> lists;
        for (const auto& item : items) {
          lists.push_back(host(item.toTensorList()));
        }
        return lists;
      }
    }
    return value;
  }

  // The device tensor a result stands for, and back where the op wrote.
  c10::IValue to_device(const c10::IValue& value) {
    if (value.isTensor()) {
      return device(value.toTensor());
    }
    if (value.isTensorList()) {
      c10::List<at::Tensor> list;
      for (const at::Tensor& tensor : value.toTensorList().vec()) {
        list.push_back(device(tensor));
      }
      return list;
    }
    return value;
  }

  void copy_back() {
    for (auto& [impl, pair] : moved_) {
      pair.first.copy_(pair.second);
    }
  }

 private:
  at::Tensor host(const at::Tensor& tensor) {
    if (!tensor.defined() || tensor.is_cpu()) {
      return tensor;
    }
    at::Tensor copy = tensor.to(at::kCPU);
    moved_.emplace(copy.unsafeGetTensorImpl(), std::make_pair(tensor, copy));
    return copy;
  }

  c10::List<at::Tensor> host(const c10::List<at::Tensor>& tensors) {
    c10::List<at::Tensor> copies;
    for (const at::Tensor& tensor : tensors.vec()) {
      copies.push_back(host(tensor));
    }
    return copies;
  }

  at::Tensor device(const at::Tensor& tensor) {
    auto found = tensor.defined() ? moved_.find(tensor.unsafeGetTensorImpl()) : moved_.end();
    return found == moved_.end() ? tensor : found->second.first;
  }

  // By the CPU copy's TensorImpl: the device tensor and its copy.
  std::unordered_map<const c10::TensorImpl*, std::pair<at::Tensor, at::Tensor>> moved_;
};

void staged_op(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const size_t arguments = op.schema().arguments().size();
  Staging staging;
  for (size_t i = stack->size() - arguments; i < stack->size(); ++i) {
    (*stack)[i] = staging.to_host((*stack)[i]);
  }
  op.callBoxed(stack);  // the CPU kernel: the group's CPU backend
  const size_t returns = op.schema().returns().size();
  c10::List<at::Tensor> results;
  std::vector<size_t> works;
  for (size_t i = stack->size() - returns; i < stack->size(); ++i) {
    c10::IValue& value = (*stack)[i];
    if (value.isCustomClass() &&
        value.type() == c10::getCustomClassType<c10::intrusive_ptr<Work>>()) {
      value.toCustomClass<Work>()->wait();
      works.push_back(i);
    }
  }
  staging.copy_back();
  for (size_t i = stack->size() - returns; i < stack->size(); ++i) {
    c10::IValue& value = (*stack)[i];
    value = staging.to_device(value);
    if (value.isTensorList()) {
      results = value.toTensorList();
    }
  }
  for (size_t i : works) {
    (*stack)[i] = c10::IValue(completed(c10::IValue(results)));
  }
}

std::mutex staged_ops_mutex;
std::unique_ptr<torch::Library> staged_ops;

}  // namespace

void register_staged_ops(const Redirect& redirect) {
  std::lock_guard<std::mutex> lock(staged_ops_mutex);
  staged_ops.reset();  // a retarget changes the target's key
  const c10::Device target = redirect.target();
  if (redirect.empty() || target.is_cpu() || target.is_cuda()) {
    return;
  }
  const auto key = c10::computeDispatchKey(c10::nullopt, c10::kStrided, target);
  auto& dispatcher = c10::Dispatcher::singleton();
  for (const auto& name : dispatcher.getAllOpNames()) {
    if (name.name.rfind("c10d::", 0) != 0) {
      continue;
    }
    const auto op = dispatcher.findOp(name);
    if (!op || !op->hasKernelForDispatchKey(c10::DispatchKey::CPU) ||
        op->hasKernelForDispatchKey(key)) {
      continue;
    }
    if (!staged_ops) {
      staged_ops = std::make_unique<torch::Library>(torch::Library::IMPL, "c10d", key, __FILE__,
                                                    __LINE__);
    }
    const std::string qualified = name.overload_name.empty()
                                      ? name.name
                                      : name.name + "." + name.overload_name;
    staged_ops->impl(qualified.substr(6).c_str(), torch::CppFunction::makeFromBoxedFunction<&staged_op>());
  }
  if (staged_ops) {
    log::debug(std::string("c10d ops staged through the cpu for ") + c10::toString(key));
  }
}

void deregister_staged_ops() {
  std::lock_guard<std::mutex> lock(staged_ops_mutex);
  staged_ops.reset();
}

bool stage_through_cpu(const std::string& group_name, c10::DeviceType device_type) {
  auto group = c10d::resolve_process_group(group_name);
  if (takes(*group, device_type) || !has_backend_for(*group, c10::kCPU)) {
    return false;
  }
  // CUSTOM: a type of its own, so the group's other types keep their backends.
  c10::intrusive_ptr<c10d::Backend> staged =
      c10::make_intrusive<CpuStagedBackend>(group->getBackend(c10::kCPU));
  group->setBackend(device_type, c10d::ProcessGroup::BackendType::CUSTOM, staged);
  return true;
}

#else

bool stage_through_cpu(const std::string& /*group_name*/, c10::DeviceType /*device_type*/) {
  return false;
}

void register_staged_ops(const Redirect& /*redirect*/) {}
void deregister_staged_ops() {}

#endif

}  // namespace torchdevice
