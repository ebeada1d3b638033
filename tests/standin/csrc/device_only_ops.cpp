// Ops torch sends to an accelerator's own kernels and never to the CPU's: convolution of a
// PrivateUse1 tensor goes to `convolution_overrideable`, nn.LSTM/GRU cells on it to the fused
// `_thnn_*` kernels, and kaiser_window to a DispatchStub with no CPU route. torch has no CPU kernel
// for the first two, so the CPU fallback cannot serve them; every real PrivateUse1 backend (NPU,
// MUSA, ...) implements them. The stand-in computes each on the CPU with torch's own ops and hands
// the results back on the device, as the fallback does for everything else. A Linux torch sends
// MPS tensors the same way (its MPS branches are compiled for macOS only), so the emulated MPS
// takes them too.
#include "device.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

namespace torchdevice::standin {
namespace {

at::Tensor on_cpu(const at::Tensor& tensor) {
  return tensor.defined() ? tensor.cpu() : tensor;
}

std::optional<at::Tensor> on_cpu(const std::optional<at::Tensor>& tensor) {
  if (!tensor.has_value() || !tensor->defined()) {
    return std::nullopt;
  }
  return tensor->cpu();
}

at::Tensor on(const at::Tensor& tensor, c10::Device device) {
  return tensor.defined() ? tensor.to(device) : tensor;
}

at::Tensor convolution(const at::Tensor& input, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef dilation, bool transposed,
                       at::IntArrayRef output_padding, int64_t groups) {
  return at::convolution(on_cpu(input), on_cpu(weight), on_cpu(bias), stride, padding, dilation,
                         transposed, output_padding, groups)
      .to(input.device());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> convolution_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, bool transposed,
    at::IntArrayRef output_padding, int64_t groups, std::array<bool, 3> output_mask) {
  // The bias has one element per output channel.
  const int64_t channels = transposed ? weight.size(1) * groups : weight.size(0);
  auto [grad_input, grad_weight, grad_bias] = at::convolution_backward(
      on_cpu(grad_output), on_cpu(input), on_cpu(weight), at::IntArrayRef{channels}, stride,
      padding, dilation, transposed, output_padding, groups, output_mask);
  const auto device = input.device();
  return {on(grad_input, device), on(grad_weight, device), on(grad_bias, device)};
}

// LSTM cell: gates (input, forget, cell, output) from the two matrix products; the workspace
// keeps the activated gates for the backward.
std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_lstm_cell(
    const at::Tensor& input_gates, const at::Tensor& hidden_gates, const at::Tensor& cx,
    const std::optional<at::Tensor>& input_bias, const std::optional<at::Tensor>& hidden_bias) {
  at::Tensor gates = on_cpu(input_gates) + on_cpu(hidden_gates);
  if (auto bias = on_cpu(input_bias)) {
    gates = gates + *bias;
  }
  if (auto bias = on_cpu(hidden_bias)) {
    gates = gates + *bias;
  }
  auto chunks = gates.chunk(4, 1);
  const auto i = chunks[0].sigmoid();
  const auto f = chunks[1].sigmoid();
  const auto g = chunks[2].tanh();
  const auto o = chunks[3].sigmoid();
  const auto cy = f * on_cpu(cx) + i * g;
  const auto hy = o * cy.tanh();
  const auto device = input_gates.device();
  return {hy.to(device), cy.to(device), at::cat({i, f, g, o}, 1).to(device)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_lstm_cell_backward(
    const std::optional<at::Tensor>& grad_hy, const std::optional<at::Tensor>& grad_cy,
    const at::Tensor& cx, const at::Tensor& cy, const at::Tensor& workspace, bool has_bias) {
  const auto gates = on_cpu(workspace).chunk(4, 1);
  const auto& i = gates[0];
  const auto& f = gates[1];
  const auto& g = gates[2];
  const auto& o = gates[3];
  const auto tanh_cy = on_cpu(cy).tanh();
  const auto zeros = at::zeros_like(tanh_cy);
  const auto ghy = on_cpu(grad_hy).value_or(zeros);
  const auto gcy = on_cpu(grad_cy).value_or(zeros) + ghy * o * (1 - tanh_cy * tanh_cy);
  const auto grad_gates = at::cat({gcy * g * i * (1 - i), gcy * on_cpu(cx) * f * (1 - f),
                                   gcy * i * (1 - g * g), ghy * tanh_cy * o * (1 - o)},
                                  1);
  const auto device = workspace.device();
  const at::Tensor grad_bias = has_bias ? grad_gates.sum(0).to(device) : at::Tensor();
  return {grad_gates.to(device), (gcy * f).to(device), grad_bias};
}

// GRU cell: reset and update gates, then the new gate; the workspace keeps what the backward
// needs (r, z, the hidden part of the new gate, hx, n).
std::tuple<at::Tensor, at::Tensor> fused_gru_cell(const at::Tensor& input_gates,
                                                  const at::Tensor& hidden_gates,
                                                  const at::Tensor& hx,
                                                  const std::optional<at::Tensor>& input_bias,
                                                  const std::optional<at::Tensor>& hidden_bias) {
  at::Tensor ig = on_cpu(input_gates);
  at::Tensor hg = on_cpu(hidden_gates);
  if (auto bias = on_cpu(input_bias)) {
    ig = ig + *bias;
  }
  if (auto bias = on_cpu(hidden_bias)) {
    hg = hg + *bias;
  }
  const auto in = ig.chunk(3, 1);
  const auto hid = hg.chunk(3, 1);
  const auto r = (in[0] + hid[0]).sigmoid();
  const auto z = (in[1] + hid[1]).sigmoid();
  const auto n = (in[2] + r * hid[2]).tanh();
  const auto h = on_cpu(hx);
  const auto hy = n + z * (h - n);
  const auto device = input_gates.device();
  return {hy.to(device), at::cat({r, z, hid[2], h, n}, 1).to(device)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> fused_gru_cell_backward(
    const at::Tensor& grad_hy, const at::Tensor& workspace, bool has_bias) {
  const auto saved = on_cpu(workspace).chunk(5, 1);
  const auto& r = saved[0];
  const auto& z = saved[1];
  const auto& hn = saved[2];
  const auto& hx = saved[3];
  const auto& n = saved[4];
  const auto grad = on_cpu(grad_hy);
  const auto dn = grad * (1 - z) * (1 - n * n);
  const auto dz = grad * (hx - n) * z * (1 - z);
  const auto dr = dn * hn * r * (1 - r);
  const auto grad_input_gates = at::cat({dr, dz, dn}, 1);
  const auto grad_hidden_gates = at::cat({dr, dz, dn * r}, 1);
  const auto device = workspace.device();
  at::Tensor grad_input_bias;
  at::Tensor grad_hidden_bias;
  if (has_bias) {
    grad_input_bias = grad_input_gates.sum(0).to(device);
    grad_hidden_bias = grad_hidden_gates.sum(0).to(device);
  }
  return {grad_input_gates.to(device), grad_hidden_gates.to(device), (grad * z).to(device),
          grad_input_bias, grad_hidden_bias};
}

at::TensorOptions cpu_options(std::optional<c10::ScalarType> dtype,
                              std::optional<c10::Layout> layout) {
  return at::TensorOptions().dtype(dtype).layout(layout);
}

at::Tensor kaiser_window_beta(int64_t length, bool periodic, double beta,
                              std::optional<c10::ScalarType> dtype,
                              std::optional<c10::Layout> layout,
                              std::optional<c10::Device> device, std::optional<bool> /*pin*/) {
  return at::kaiser_window(length, periodic, beta, cpu_options(dtype, layout)).to(*device);
}

at::Tensor kaiser_window_periodic(int64_t length, bool periodic,
                                  std::optional<c10::ScalarType> dtype,
                                  std::optional<c10::Layout> layout,
                                  std::optional<c10::Device> device, std::optional<bool> /*pin*/) {
  return at::kaiser_window(length, periodic, cpu_options(dtype, layout)).to(*device);
}

at::Tensor kaiser_window(int64_t length, std::optional<c10::ScalarType> dtype,
                         std::optional<c10::Layout> layout, std::optional<c10::Device> device,
                         std::optional<bool> pin) {
  return at::kaiser_window(length, cpu_options(dtype, layout)).to(*device);
}

// Two losses that, reduced, come back from torch's CPU fallback with torch 2.14's warning "An
// output with one or more elements was resized" (an error under -W error), though their CPU
// kernels called directly do not warn: computed here with those kernels.
at::Tensor mse_loss(const at::Tensor& self, const at::Tensor& target, int64_t reduction) {
  return at::mse_loss(on_cpu(self), on_cpu(target), reduction).to(self.device());
}

at::Tensor smooth_l1_loss(const at::Tensor& self, const at::Tensor& target, int64_t reduction,
                          double beta) {
  return at::smooth_l1_loss(on_cpu(self), on_cpu(target), reduction, beta).to(self.device());
}

// native_batch_norm updates its running statistics in place, though its schema does not mark
// them as written (Tensor? running_mean): torch's CPU fallback updates CPU copies and drops them.
std::tuple<at::Tensor, at::Tensor, at::Tensor> native_batch_norm(
    const at::Tensor& input, const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& running_mean,
    const std::optional<at::Tensor>& running_var, bool training, double momentum, double eps) {
  auto mean = on_cpu(running_mean);
  auto var = on_cpu(running_var);
  auto [output, save_mean, save_invstd] = at::native_batch_norm(
      on_cpu(input), on_cpu(weight), on_cpu(bias), mean, var, training, momentum, eps);
  if (mean.has_value()) {
    running_mean->copy_(*mean);
  }
  if (var.has_value()) {
    running_var->copy_(*var);
  }
  const auto device = input.device();
  return {output.to(device), on(save_mean, device), on(save_invstd, device)};
}

}  // namespace

TORCH_LIBRARY_IMPL(aten, TORCHDEVICE_DEVICE_KEY, m) {
  m.impl("native_batch_norm", TORCH_FN(native_batch_norm));
  m.impl("mse_loss", TORCH_FN(mse_loss));
  m.impl("smooth_l1_loss", TORCH_FN(smooth_l1_loss));
  m.impl("convolution_overrideable", TORCH_FN(convolution));
  m.impl("convolution_backward_overrideable", TORCH_FN(convolution_backward));
  m.impl("_thnn_fused_lstm_cell", TORCH_FN(fused_lstm_cell));
  m.impl("_thnn_fused_lstm_cell_backward_impl", TORCH_FN(fused_lstm_cell_backward));
  m.impl("_thnn_fused_gru_cell", TORCH_FN(fused_gru_cell));
  m.impl("_thnn_fused_gru_cell_backward", TORCH_FN(fused_gru_cell_backward));
  m.impl("kaiser_window", TORCH_FN(kaiser_window));
  m.impl("kaiser_window.periodic", TORCH_FN(kaiser_window_periodic));
  m.impl("kaiser_window.beta", TORCH_FN(kaiser_window_beta));
}

}  // namespace torchdevice::standin
