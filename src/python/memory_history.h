#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// torch.cuda.memory._record_memory_history, _snapshot and memory_snapshot for the CPU target,
// backed by torchdevice's own allocation records (torchdevice/memory_history.h); torch's own
// _dump_snapshot pickles what _snapshot returns. Other targets raise an error naming the call.
void define_memory_history(pybind11::module_& cuda);
void install_memory_history();
void uninstall_memory_history();

}  // namespace torchdevice::python
