#include "missing_ops.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_set>

namespace torchdevice::standin {
namespace {

// Generated at configure time by tests/mps_emulated/gen_missing_ops.py from the native_functions.yaml
// of the torch being built for: the ops with a CPU kernel and none for MPS.
constexpr const char* kMissing[] = {
#include "missing_ops.inc"
};

const std::unordered_set<std::string_view>& missing() {
  static const std::unordered_set<std::string_view> names(std::begin(kMissing), std::end(kMissing));
  return names;
}

bool fallback_enabled() {
  static const bool enabled = [] {
    const char* value = std::getenv("PYTORCH_ENABLE_MPS_FALLBACK");
    return value != nullptr && std::atoi(value) != 0;  // as MPSFallback.mm reads it
  }();
  return enabled;
}

std::string full_name(const c10::OperatorName& name) {
  return name.overload_name.empty() ? name.name : name.name + "." + name.overload_name;
}

void check_dtypes(const torch::jit::Stack& stack, size_t first) {
  const auto refuse = [](const at::Tensor& tensor) {
    // aten/src/ATen/native/mps/OperationUtils.mm, getMPSDataType. A CPU scalar (a Python
    // number, 1j) is cast to the op's type, as MPS does.
    TORCH_CHECK_TYPE(!tensor.defined() || tensor.is_cpu() ||
                         tensor.scalar_type() != at::kComplexDouble,
                     "Trying to convert ComplexDouble to the MPS backend but it does not have "
                     "support for that dtype.");
  };
  for (size_t i = first; i < stack.size(); ++i) {
    if (stack[i].isTensor()) {
      refuse(stack[i].toTensor());
    } else if (stack[i].isTensorList()) {
      for (const at::Tensor& tensor : stack[i].toTensorList().vec()) {
        refuse(tensor);
      }
    }
  }
}

} // namespace

void check_mps_op(const c10::OperatorHandle& op, const torch::jit::Stack& stack, size_t first) {
  const std::string name = full_name(op.operator_name());
  // Every other aten op stands for an MPS kernel; an op of another library (c10d's collectives,
  // an extension's) with no MPS kernel of its own meets MPS's fallback, as on a Mac.
  const bool aten = name.rfind("aten::", 0) == 0;
  if (!aten || missing().count(name) != 0) {
    // aten/src/ATen/mps/MPSFallback.mm: mps_error_fallback and mps_fallback.
    TORCH_CHECK_NOT_IMPLEMENTED(
        fallback_enabled(), "The operator '", name,
        "' is not currently implemented for the MPS device. If you want this op to be considered "
        "for addition please comment on https://github.com/pytorch/pytorch/issues/141287 and "
        "mention use-case, that resulted in missing op as well as commit hash ",
        "(emulated MPS). As a temporary fix, you can set the environment variable "
        "`PYTORCH_ENABLE_MPS_FALLBACK=1` to use the CPU as a fallback for this op. WARNING: this "
        "will be slower than running natively on MPS.");
    TORCH_WARN_ONCE("The operator '", name,
                    "' is not currently supported on the MPS backend and will fall back to run on "
                    "the CPU. This may have performance implications.");
    return;
  }
  check_dtypes(stack, first);
}

} // namespace torchdevice::standin
