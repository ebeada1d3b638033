#pragma once

namespace torchdevice::python {

// The legacy CUDA tensor types: torch.cuda.FloatTensor(...) and friends construct on the target,
// and Tensor.type('torch.cuda.FloatTensor') / .type(torch.cuda.FloatTensor) converts to the
// target. Storages (torch.cuda.FloatStorage) already land there through the dispatcher.
void install_legacy_types();
void uninstall_legacy_types();

}  // namespace torchdevice::python
