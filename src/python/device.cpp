#include "device.h"

#include <torch/csrc/Device.h>

#include "torchdevice/state.h"

namespace torchdevice::python {

namespace {

newfunc original_new = nullptr;

// Lets torch parse the arguments (so every spelling and every error message is torch's own), then
// swaps a redirected result for the target.
PyObject* redirecting_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  PyObject* made = original_new(type, args, kwargs);
  if (made == nullptr || !THPDevice_Check(made)) {
    return made;
  }
  const Redirect redirect = current_redirect();
  if (!redirect.redirects(reinterpret_cast<THPDevice*>(made)->device.type())) {
    return made;
  }
  Py_DECREF(made);
  return THPDevice_New(redirect.target());
}

}  // namespace

void install_device_hook() {
  if (original_new != nullptr) {
    return;
  }
  original_new = THPDeviceType.tp_new;
  THPDeviceType.tp_new = &redirecting_new;
}

void uninstall_device_hook() {
  if (original_new == nullptr) {
    return;
  }
  THPDeviceType.tp_new = original_new;
  original_new = nullptr;
}

}  // namespace torchdevice::python
