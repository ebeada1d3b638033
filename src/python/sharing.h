#pragma once

namespace torchdevice::python {

// Device tensors handed to child processes (model.share_memory(), the hogwild pattern): torch
// shares CUDA tensors through CUDA IPC and CPU tensors through shared memory, and nothing else.
// On an accelerator target other than CUDA, UntypedStorage.share_memory_ of a target storage
// raises at that first call, naming the cause and the remedies, instead of MPS's obscure
// "_share_fd_: only available on CPU" there, or a failure later while pickling (PrivateUse1,
// whose share_memory_ torch makes a no-op).
void install_sharing();

}  // namespace torchdevice::python
