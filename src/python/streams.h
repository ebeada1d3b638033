#pragma once

#include <pybind11/pybind11.h>

namespace torchdevice::python {

// torch.cuda.Stream, Event, current_stream, default_stream, set_stream, stream and StreamContext
// for the target. The target runs one ordered queue (the CPU finishes each op before returning;
// MPS keeps one command queue), so every stream is ordered with every other, waits are already
// satisfied, and an event's time is taken when everything before it has finished.
void define_streams(pybind11::module_& cuda);
void install_streams();

}  // namespace torchdevice::python
