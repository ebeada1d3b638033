#pragma once

namespace torchdevice::python {

// The legacy CUDA tensor types: torch.cuda.FloatTensor(...) and friends construct on the target,
// and Tensor.type('torch.cuda.FloatTensor') / .type(torch.cuda.FloatTensor) converts to the
// target; torch.set_default_tensor_type(torch.cuda.FloatTensor) makes the CPU twin the default
// where the target is the CPU (and says what to use instead elsewhere). Storages (torch.cuda.FloatStorage) already land there through the dispatcher.
void install_legacy_types();
void uninstall_legacy_types();

}  // namespace torchdevice::python
