#include "device_check.h"

#include <c10/util/Exception.h>

#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

namespace torchdevice::standin {
namespace {

// Generated at configure time by tests/standin/gen_device_checks.py from the native_functions.yaml
// of the torch being built for.
constexpr const char* kUnchecked[] = {
#include "device_unchecked.inc"
};

bool unchecked(const c10::OperatorName& name) {
  static const std::unordered_set<std::string_view> names(std::begin(kUnchecked),
                                                          std::end(kUnchecked));
  const std::string full =
      name.overload_name.empty() ? name.name : name.name + "." + name.overload_name;
  return names.count(full) != 0;
}

class CommonDevice {
 public:
  CommonDevice(const c10::OperatorHandle& op, bool scalars_allowed)
      : op_(op), scalars_allowed_(scalars_allowed) {}

  void check(const at::Tensor& tensor, const c10::Argument& argument) {
    if (!tensor.defined() ||
        (scalars_allowed_ && !argument.is_out() && tensor.dim() == 0 && tensor.is_cpu())) {
      return;
    }
    if (!device_.has_value()) {
      device_ = tensor.device();
      return;
    }
    // CUDA's words (aten/src/ATen/core/op_registration/adaption.cpp).
    TORCH_CHECK(tensor.device() == *device_,
                "Expected all tensors to be on the same device, but got ", argument.name(),
                " is on ", tensor.device(), ", different from other tensors on ", *device_,
                " (when checking argument in method ", op_.schema().name(), ")");
  }

 private:
  const c10::OperatorHandle& op_;
  const bool scalars_allowed_;
  std::optional<c10::Device> device_;
};

}  // namespace

void check_one_device(const c10::OperatorHandle& op, const torch::jit::Stack& stack,
                      size_t first) {
  const bool relaxed = unchecked(op.operator_name());
  CommonDevice common(op, relaxed);
  const auto& arguments = op.schema().arguments();
  for (size_t i = 0; i < arguments.size(); ++i) {
    const c10::Argument& argument = arguments[i];
    if (argument.kwarg_only() && !argument.is_out()) {
      continue;  // torchgen checks positional and out arguments only
    }
    const c10::IValue& value = stack[first + i];
    if (value.isTensor()) {
      common.check(value.toTensor(), argument);
    } else if (value.isTensorList()) {
      for (const at::Tensor& tensor : value.toTensorList().vec()) {
        common.check(tensor, argument);
      }
    } else if (value.isList() && !relaxed) {  // Tensor?[]: the index ops' indices are NoCheck
      for (const c10::IValue& element : value.toListRef()) {
        if (element.isTensor()) {
          common.check(element.toTensor(), argument);
        }
      }
    }
  }
}

}  // namespace torchdevice::standin
