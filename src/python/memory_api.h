#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// torch.cuda's device-property and memory functions, answered from the target: on the CPU from
// the host and a CountingAllocator in front of the CPU allocator, on MPS from torch.mps.
void define_memory_api(pybind11::module_& cuda);
// Replaces them on torch.cuda (and torch.cuda.memory, whose own helpers look them up there) and,
// on a CPU target, starts counting CPU allocations.
void install_memory_api();
// Stops counting (the original CPU allocator goes back); called on uninstall and on a retarget
// away from the CPU.
void uninstall_memory_api();

}  // namespace torchdevice::python
