#pragma once

namespace torchdevice::python {

// torch.distributed on a machine where CUDA is redirected: init_process_group / new_group get
// gloo where the program asks for NCCL (or names no backend) and NCCL is unavailable, and
// DistributedDataParallel accepts device_ids/output_device for a module living on the CPU target.
// Only called when CUDA is redirected; every attribute goes back through restore_all().
void install_distributed();
// Called after restore_all(): forgets the originals it wrapped.
void uninstall_distributed();

}  // namespace torchdevice::python
