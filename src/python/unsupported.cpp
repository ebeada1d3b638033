#include "unsupported.h"

#include <torch/csrc/utils/pybind.h>

#include "cuda_api.h"
#include "patch.h"

#include <string>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// torch's own functions that run on the target through torchdevice's replacements (those of
// CUDAGraph's base and torch._C's graph functions, graphs.h): not wrapped.
bool runs_on_target(const std::string& name) {
  return name == "make_graphed_callables" || name == "graph_pool_handle" ||
         name == "is_current_stream_capturing";
}

class Unsupported {
 public:
  Unsupported(std::string name, py::object original)
      : name_(std::move(name)), original_(std::move(original)) {}

  py::object call(const py::args& args, const py::kwargs& kwargs) const {
    try {
      return original_(*args, **kwargs);
    } catch (py::error_already_set& error) {
      // Warnings raised as errors and non-Exception signals pass through untouched.
      if (!error.matches(PyExc_Exception) || error.matches(PyExc_Warning)) {
        throw;
      }
      const std::string message = "torch.cuda." + name_ + "() is not supported on the " +
                                  target().str() +
                                  " target that torchdevice redirects CUDA to: it needs the CUDA "
                                  "runtime, which this machine lacks (torch's error follows)";
      py::raise_from(error, PyExc_RuntimeError, message.c_str());
      throw py::error_already_set();
    }
  }

  const std::string& name() const { return name_; }
  const py::object& original() const { return original_; }

 private:
  std::string name_;
  py::object original_;
};

}  // namespace

void install_unsupported() {
  auto cuda = py::module_::import("torch.cuda");
  auto api = py::module_::import("torchdevice._C").attr("_cuda");
  auto unsupported_type = api.attr("Unsupported");
  auto function_type = py::module_::import("types").attr("FunctionType");
  for (auto item : cuda.attr("__dict__").cast<py::dict>()) {
    const std::string name = item.first.cast<std::string>();
    py::object value = py::reinterpret_borrow<py::object>(item.second);
    if (name.empty() || name[0] == '_' || !py::isinstance(value, function_type) ||
        py::isinstance(value, unsupported_type) || runs_on_target(name)) {
      continue;
    }
    const std::string module = py::str(value.attr("__module__"));
    if (module.rfind("torch.cuda", 0) != 0) {
      continue;  // an import torch.cuda makes (typing, functools), not CUDA API
    }
    patch(cuda, name, unsupported_type(name, value));
  }
}

void define_unsupported(py::module_& cuda) {
  py::class_<Unsupported>(cuda, "Unsupported")
      .def(py::init<std::string, py::object>())
      .def("__call__", &Unsupported::call)
      .def_property_readonly("name", &Unsupported::name)
      .def_property_readonly("__wrapped__", &Unsupported::original)
      .def("__repr__", [](const Unsupported& u) {
        return "<torch.cuda." + u.name() + ": torch's own, not supported on the target>";
      });
}

}  // namespace torchdevice::python
