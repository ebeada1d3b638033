// Where a Linux torch calls a DispatchStub with the MPS device type: its DispatchStubs have no MPS
// slot at all (they are compiled without USE_MPS) and fail an internal assert ("An unexpected
// device type was provided mps"). Each such call site is taken over at the narrowest point, one
// op, and routed as torch on a Mac routes it.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>

namespace torchdevice::standin {
namespace {

// scaled_dot_product_attention asks _fused_sdp_choice_stub whether the device has a fused kernel
// (aten/src/ATen/native/transformers/attention.cpp). Torch's MPS answers math; the math kernel is
// composite, so registered on AutogradMPS this keeps autograd through it.
at::Tensor scaled_dot_product_attention(const at::Tensor& query, const at::Tensor& key,
                                        const at::Tensor& value,
                                        const std::optional<at::Tensor>& attn_mask,
                                        double dropout_p, bool is_causal,
                                        std::optional<double> scale, bool enable_gqa) {
  return std::get<0>(at::_scaled_dot_product_attention_math(
      query, key, value, attn_mask, dropout_p, is_causal, std::nullopt, scale, enable_gqa));
}

} // namespace

TORCH_LIBRARY_IMPL(aten, AutogradMPS, m) {
  m.impl("scaled_dot_product_attention", TORCH_FN(scaled_dot_product_attention));
}

} // namespace torchdevice::standin
