#pragma once

#include <Python.h>

namespace torchdevice::python {

// Whether the calling thread has Python frames to read: torch's bindings release the GIL before
// dispatching, so a hook reading its caller takes the GIL back. A thread that never ran Python
// (autograd workers, C++ callers), or an interpreter shutting down, has none and is never made to
// wait for the GIL.
inline bool thread_has_python_frames() {
#if PY_VERSION_HEX >= 0x030D0000
  const bool finalizing = Py_IsFinalizing();
#else
  const bool finalizing = _Py_IsFinalizing();
#endif
  return Py_IsInitialized() && !finalizing && PyGILState_GetThisThreadState() != nullptr;
}

}  // namespace torchdevice::python
