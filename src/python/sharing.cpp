#include "sharing.h"

#include <pybind11/pybind11.h>
#include <torch/csrc/Device.h>

#include "patch.h"
#include "torchdevice/state.h"

#include <stdexcept>
#include <string>

namespace py = pybind11;

namespace torchdevice::python {

void install_sharing() {
  const Redirect redirect = current_redirect();
  const c10::Device target = redirect.target();
  if (redirect.empty() || target.is_cpu() || target.is_cuda()) {
    return;  // the CPU and CUDA share their memory: torch's own code serves them
  }
  auto storage = py::module_::import("torch").attr("UntypedStorage");
  py::object original = storage.attr("share_memory_");
  const std::string type = c10::DeviceTypeName(target.type(), /*lower_case=*/true);
  py::cpp_function share(
      [original, type](py::object self, py::args args, py::kwargs kwargs) -> py::object {
        if (py::str(self.attr("device").attr("type")).cast<std::string>() == type) {
          throw std::runtime_error(
              "share_memory_(): a tensor on " + type +
              " (where torchdevice runs 'cuda' work) cannot be shared with other processes: "
              "torch shares CUDA tensors through CUDA IPC and CPU tensors through shared "
              "memory, and " + type + " has neither. Run with TORCHDEVICE_TARGET=cpu to share "
              "the model in CPU memory, or share it on the CPU and move it to the device inside "
              "each process.");
        }
        return original(self, *args, **kwargs);
      },
      py::name("share_memory_"));
  // A method, as the function it replaces: bound to the storage it is called on.
  wrap_method(storage, "share_memory_", std::move(share));
}

}  // namespace torchdevice::python
