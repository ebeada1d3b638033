#pragma once

namespace torchdevice::python {

// `x.to('cuda', non_blocking=True)` and `x.cuda(non_blocking=True)` from unpinned host memory,
// where the target may read the source after the copy returned (target_device.h): the copy is
// completed before returning, as CUDA completes a copy from pageable memory, so freeing or
// reusing the source right after cannot corrupt the result. Installed only on such a target;
// pinned sources and calls without non_blocking=True go straight to torch.
void install_non_blocking();
void uninstall_non_blocking();

}  // namespace torchdevice::python
