#include "kernels.h"

#include "allocator.h"
#include "config.h"
#include "device.h"
#include "device_check.h"
#include "hooks.h"
#include "stream.h"

#ifdef TORCHDEVICE_EMULATED_MPS
#include "../../mps_emulated/csrc/missing_ops.h"
#endif

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/EmptyTensor.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/CPUFallback.h>
#include <ATen/native/Resize.h>
#include <ATen/ops/_local_scalar_dense.h>
#include <ATen/ops/_reshape_alias_native.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/resize_native.h>
#include <ATen/ops/set_native.h>
#include <ATen/ops/unfold_native.h>
#include <ATen/ops/view_as_complex_native.h>
#include <ATen/ops/view_as_real_native.h>
#include <ATen/ops/view_native.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

#include <cstring>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace torchdevice::standin {
namespace {

void check_dtype(c10::ScalarType dtype) {
  if (!kMpsRules) {
    return;
  }
  // MPS's refusals (TypeError), in its words (aten/src/ATen/native/mps/OperationUtils.mm,
  // getMPSDataType; aten/src/ATen/mps/EmptyTensor.cpp).
  TORCH_CHECK_TYPE(dtype != at::kDouble, "Cannot convert a ", kName, " Tensor to float64 dtype as the ",
                   kName, " framework doesn't support float64. Please use float32 instead.");
  TORCH_CHECK_TYPE(dtype != at::kBFloat16 || macos_version() >= 14, kName,
                   " BFloat16 is only supported on MacOS 14 or newer");
}

at::Tensor empty_memory_format(at::IntArrayRef size, std::optional<c10::ScalarType> dtype,
                               std::optional<c10::Layout> /*layout*/,
                               std::optional<c10::Device> device,
                               std::optional<bool> /*pin_memory*/,
                               std::optional<c10::MemoryFormat> memory_format) {
  const c10::ScalarType scalar_type = c10::dtype_or_default(dtype);
  check_dtype(scalar_type);
  const c10::DeviceGuard guard(c10::device_or_default(device));
  return at::detail::empty_generic(size, &device_allocator(),
                                   c10::DispatchKeySet(kDispatchKey), scalar_type,
                                   memory_format);
}

at::Tensor empty_strided(at::IntArrayRef size, at::IntArrayRef stride,
                         std::optional<c10::ScalarType> dtype, std::optional<c10::Layout> /*layout*/,
                         std::optional<c10::Device> device, std::optional<bool> /*pin_memory*/) {
  const c10::ScalarType scalar_type = c10::dtype_or_default(dtype);
  check_dtype(scalar_type);
  const c10::DeviceGuard guard(c10::device_or_default(device));
  return at::detail::empty_strided_generic(size, stride, &device_allocator(),
                                           c10::DispatchKeySet(kDispatchKey),
                                           scalar_type);
}

// The stand-in's memory is host memory: a CPU tensor over the same bytes lets torch's CPU
// kernels read and write it in place.
at::Tensor host_view(const at::Tensor& tensor) {
  if (!on_device(tensor)) {
    return tensor;
  }
  at::Tensor view = at::from_blob(tensor.data_ptr(), tensor.sizes(), tensor.strides(),
                                  at::TensorOptions().dtype(tensor.dtype()).device(at::kCPU));
  view._set_conj(tensor.is_conj());
  view._set_neg(tensor.is_neg());
  return view;
}

// Work queued on the calling thread's current stream of the tensor's device completes before
// the host touches its memory, as a blocking copy waits for its stream.
void wait_for_stream(const at::Tensor& tensor) {
  if (on_device(tensor)) {
    synchronize_stream(current_stream(tensor.device().index()));
  }
}

// MPS's non_blocking host->device copy (the emulated MPS): queued on the current stream and reading the source
// only when the stream's worker gets there, so a source changed or freed in between shows. A
// pinned source is the device's own host memory, kept until the copy has read it (as CUDA's and
// MPS's pinned allocators keep a block a queued copy uses).
void copy_later(const at::Tensor& source, const at::Tensor& destination) {
  c10::weak_intrusive_ptr<c10::StorageImpl> storage = source.storage().getWeakStorageImpl();
  c10::Storage kept = is_pinned(source.storage().data()) ? source.storage() : c10::Storage();
  const std::vector<int64_t> sizes = source.sizes().vec();
  const std::vector<int64_t> strides = source.strides().vec();
  const int64_t offset = source.storage_offset();
  const at::TensorOptions options = at::TensorOptions().dtype(source.dtype()).device(at::kCPU);
  const bool conj = source.is_conj();
  const bool neg = source.is_neg();
  enqueue(current_stream(destination.device().index()),
          [storage, kept, sizes, strides, offset, options, conj, neg, destination] {
            c10::intrusive_ptr<c10::StorageImpl> alive = storage.lock();
            at::Tensor from;
            if (alive) {
              from = at::empty({0}, options).set_(c10::Storage(std::move(alive)), offset, sizes,
                                                  strides);
              from._set_conj(conj);
              from._set_neg(neg);
            } else {
              // The host freed the source first: what the device reads is garbage (here, all
              // bits set: NaN for floating point), never the values that were there.
              from = at::empty(sizes, options);
              std::memset(from.data_ptr(), 0xFF, from.nbytes());
            }
            host_view(destination).copy_(from);
          });
}

at::Tensor copy_from(const at::Tensor& self, const at::Tensor& dst, bool non_blocking) {
  for (const at::Tensor* tensor : {&self, &dst}) {
    TORCH_CHECK(tensor->device().is_cpu() || on_device(*tensor), kName, ": cannot copy between ",
                self.device(), " and ", dst.device());
  }
  if (dst.numel() == 0) {
    return dst;
  }
  if (kMpsRules && non_blocking && self.device().is_cpu() && on_device(dst)) {
    copy_later(self, dst);
    return dst;
  }
  wait_for_stream(self);
  wait_for_stream(dst);
  host_view(dst).copy_(host_view(self));
  return dst;
}

#ifdef TORCHDEVICE_EMULATED_MPS
// torch's copy_ sends MPS copies to MPS's own copy (a DispatchStub a Linux torch has no entry in),
// not to _copy_from: the emulated MPS takes copy_ itself, in both directions.
at::Tensor& copy_(at::Tensor& self, const at::Tensor& src, bool non_blocking) {
  copy_from(src, self, non_blocking);
  return self;
}
#endif

const at::Tensor& resize_kernel(const at::Tensor& self, at::IntArrayRef size,
                         std::optional<c10::MemoryFormat> memory_format) {
  // Queued work may still write the old block that a resize frees.
  synchronize_device(self.device().index());
  const c10::DeviceGuard guard(self.device());
  return at::native::resize_(self, size, memory_format);
}

at::Tensor copy_from_and_resize(const at::Tensor& self, const at::Tensor& dst) {
  resize_kernel(dst, self.sizes(), std::nullopt);
  return copy_from(self, dst, false);
}

// A view over the same storage, as torch's as_strided_tensorimpl makes one (which refuses MPS
// tensors on some versions: MPS has a kernel of its own).
at::Tensor as_strided(const at::Tensor& self, at::IntArrayRef size, at::IntArrayRef stride,
                      std::optional<int64_t> storage_offset) {
  at::Tensor result = at::detail::make_tensor<c10::TensorImpl>(
      c10::TensorImpl::VIEW, c10::Storage(self.storage()), self.key_set(), self.dtype());
  at::native::setStrided(result, size, stride, storage_offset.value_or(self.storage_offset()));
  return result;
}

at::Scalar local_scalar_dense(const at::Tensor& self) {
  wait_for_stream(self);
  return at::_local_scalar_dense(host_view(self));
}

bool is_generator(const c10::Argument& argument) {
  const c10::TypePtr& type = argument.type();
  if (type->kind() == c10::TypeKind::GeneratorType) {
    return true;
  }
  const auto optional = type->cast<c10::OptionalType>();
  return optional && optional->getElementType()->kind() == c10::TypeKind::GeneratorType;
}

std::optional<c10::DeviceIndex> standin_device(const torch::jit::Stack& stack, size_t first) {
  for (size_t i = first; i < stack.size(); ++i) {
    const c10::IValue& value = stack[i];
    if (value.isTensor() && on_device(value.toTensor())) {
      return value.toTensor().device().index();
    }
    if (value.isTensorList()) {
      for (const at::Tensor& tensor : value.toTensorList().vec()) {
        if (on_device(tensor)) {
          return tensor.device().index();
        }
      }
    }
  }
  return std::nullopt;
}

// Everything without a kernel of its own runs on torch's CPU kernels. Random ops draw from the
// stand-in's generators (the one passed, or the device's default), not the CPU's: each is lent
// to the CPU kernel as a CPU generator with the same state, and takes the advanced state back.
void fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& arguments = op.schema().arguments();
  const size_t first = stack->size() - arguments.size();
#ifdef TORCHDEVICE_EMULATED_MPS
  check_mps_op(op, *stack, first);
#endif
  check_one_device(op, *stack, first);
  const std::optional<c10::DeviceIndex> device = standin_device(*stack, first);
  std::vector<std::pair<at::Generator, at::Generator>> lent;
  std::vector<std::unique_lock<std::mutex>> locks;
  for (size_t i = 0; i < arguments.size(); ++i) {
    if (!is_generator(arguments[i])) {
      continue;
    }
    c10::IValue& value = (*stack)[first + i];
    at::Generator own;
    if (value.isGenerator() && value.toGenerator().device().type() == kDeviceType) {
      own = value.toGenerator();
    } else if (value.isNone() && device.has_value()) {
      own = default_generator(*device);
    } else {
      continue;
    }
    locks.emplace_back(own.mutex());
    at::Generator cpu = at::make_generator<at::CPUGeneratorImpl>();
    cpu.set_state(own.get_state());
    value = c10::IValue(cpu);
    lent.emplace_back(std::move(own), std::move(cpu));
  }
  at::native::cpu_fallback(op, stack);
  for (auto& [own, cpu] : lent) {
    own.set_state(cpu.get_state());
  }
}

} // namespace

void register_autocast() {
  if (c10::Dispatcher::singleton().hasBackendFallbackForDispatchKey(
          c10::DispatchKey::AutocastPrivateUse1)) {
    return;
  }
  // Leaked: the registrations stay for the life of the process, like PrivateUse1 itself.
  auto* everything = new torch::Library(torch::Library::IMPL, "_",
                                        c10::DispatchKey::AutocastPrivateUse1, __FILE__, __LINE__);
  everything->fallback(torch::CppFunction::makeFallthrough());
  auto* casts = new torch::Library(torch::Library::IMPL, "aten",
                                   c10::DispatchKey::AutocastPrivateUse1, __FILE__, __LINE__);
  torch::Library& m = *casts;
  // The matrix products and convolutions CUDA's autocast runs in lower precision...
  KERNEL_PRIVATEUSEONE(conv1d, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(conv2d, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(conv3d, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(mm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(mv, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(bmm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(matmul, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(linear, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(addmm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(addbmm, lower_precision_fp)
  KERNEL_PRIVATEUSEONE(baddbmm, lower_precision_fp)
  // ...and the reductions and losses it keeps in float32.
  KERNEL_PRIVATEUSEONE(softmax, int, fp32)
  // The stand-in runs torch's math attention (MPS has a kernel of its own): its _safe_softmax
  // calls softmax inside the kernel, below autograd, where the cast above would leave a float32
  // output saved for a half gradient. Cast at the top instead, as softmax is.
  KERNEL_PRIVATEUSEONE(_safe_softmax, fp32)
  KERNEL_PRIVATEUSEONE(log_softmax, int, fp32)
  KERNEL_PRIVATEUSEONE(layer_norm, fp32)
  KERNEL_PRIVATEUSEONE(group_norm, fp32)
  KERNEL_PRIVATEUSEONE(mse_loss, fp32)
  KERNEL_PRIVATEUSEONE(cross_entropy_loss, fp32)
  KERNEL_PRIVATEUSEONE(exp, fp32)
  KERNEL_PRIVATEUSEONE(log, fp32)
  KERNEL_PRIVATEUSEONE(sum, fp32)
}

TORCH_LIBRARY_IMPL(_, TORCHDEVICE_DEVICE_KEY, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&fallback>());
}

TORCH_LIBRARY_IMPL(aten, TORCHDEVICE_DEVICE_KEY, m) {
  m.impl("empty.memory_format", TORCH_FN(empty_memory_format));
  m.impl("empty_strided", TORCH_FN(empty_strided));
  m.impl("_copy_from", TORCH_FN(copy_from));
  m.impl("_copy_from_and_resize", TORCH_FN(copy_from_and_resize));
#ifdef TORCHDEVICE_EMULATED_MPS
  m.impl("copy_", TORCH_FN(copy_));
#endif
  m.impl("resize_", TORCH_FN(resize_kernel));
  m.impl("_local_scalar_dense", TORCH_FN(local_scalar_dense));
  // Views alias the same memory: the CPU fallback would hand back copies.
  m.impl("view", TORCH_FN(at::native::view));
  m.impl("as_strided", TORCH_FN(as_strided));
  m.impl("_reshape_alias", TORCH_FN(at::native::_reshape_alias));
  m.impl("unfold", TORCH_FN(at::native::unfold));
  m.impl("view_as_real", TORCH_FN(at::native::view_as_real));
  m.impl("view_as_complex", TORCH_FN(at::native::view_as_complex));
  m.impl("set_.source_Storage", TORCH_FN(at::native::set_));
  m.impl("set_.source_Storage_storage_offset", TORCH_FN(at::native::set_storage_cpu_));
  m.impl("set_.source_Tensor", TORCH_FN(at::native::set_tensor_));
}

} // namespace torchdevice::standin
