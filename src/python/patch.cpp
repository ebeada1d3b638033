#include "patch.h"

#include <pybind11/eval.h>

#include <algorithm>
#include <array>
#include <vector>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

struct Patch {
  py::object owner;
  std::string name;
  py::object original;  // null handle: the owner had no attribute of its own by that name
};

// Whether `owner` itself holds `name` (not a class it inherits it from): only then is there an
// original to put back; otherwise restoring means deleting ours.
bool owns(py::handle owner, const std::string& name) {
  if (PyType_Check(owner.ptr())) {
    return PyDict_GetItemString(reinterpret_cast<PyTypeObject*>(owner.ptr())->tp_dict,
                                name.c_str()) != nullptr;
  }
  return py::hasattr(owner, name.c_str());
}

// Heap-allocated and never freed: destroying Python references after interpreter finalisation
// would crash at exit.
std::vector<Patch>& patches() {
  static auto* list = new std::vector<Patch>();
  return *list;
}

}  // namespace

void patch(py::handle owner, const std::string& name, py::object replacement) {
  for (const auto& existing : patches()) {
    // Patched twice (a retarget): keep the first original, the one torch had.
    if (existing.owner.is(owner) && existing.name == name) {
      py::setattr(owner, name.c_str(), replacement);
      return;
    }
  }
  py::object original;
  if (PyType_Check(owner.ptr())) {
    // The class's own entry, as stored: getattr would unwrap a staticmethod such as __new__.
    original = py::reinterpret_borrow<py::object>(PyDict_GetItemString(
        reinterpret_cast<PyTypeObject*>(owner.ptr())->tp_dict, name.c_str()));
  } else if (owns(owner, name)) {
    original = owner.attr(name.c_str());
  }
  py::setattr(owner, name.c_str(), replacement);
  patches().push_back({py::reinterpret_borrow<py::object>(owner), name, std::move(original)});
}

void patch_tensor_method(PyMethodDef* def) {
  auto tensor = py::module_::import("torch").attr("Tensor");
  const py::object before = tensor.attr(def->ml_name);
  auto descriptor = py::reinterpret_steal<py::object>(
      PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(tensor.ptr()), def));
  if (!descriptor) {
    throw py::error_already_set();
  }
  patch(tensor, def->ml_name, descriptor);
  // Lazy modules' uninitialized parameters accept only the Tensor methods on a list that holds
  // torch's own functions (torch.nn.parameter.UninitializedTensorMixin): the replacement joins
  // the list wherever the method it replaces is on it.
  auto parameter = py::module_::import("torch.nn.parameter");
  if (!py::hasattr(parameter, "UninitializedTensorMixin")) {
    return;
  }
  auto mixin = parameter.attr("UninitializedTensorMixin");
  const py::list allowed = mixin.attr("_allowed_methods");
  if (!allowed.contains(before)) {
    return;
  }
  py::list extended;
  for (const auto& method : allowed) {
    extended.append(method);
  }
  extended.append(descriptor);
  patch(mixin, "_allowed_methods", extended);
}

PyObject* call_method(PyObject* method, PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                      PyObject* kwnames, Py_ssize_t replace, PyObject* value) {
  const Py_ssize_t total = nargs + (kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames));
  // A Tensor method takes a handful of arguments: no allocation for them.
  std::array<PyObject*, 8> small{};
  std::vector<PyObject*> large;
  PyObject** stack = small.data();
  if (static_cast<size_t>(total) + 1 > small.size()) {
    large.resize(static_cast<size_t>(total) + 1);
    stack = large.data();
  }
  stack[0] = self;
  std::copy(args, args + total, stack + 1);
  if (replace >= 0) {
    stack[replace + 1] = value;
  }
  return PyObject_Vectorcall(method, stack, static_cast<size_t>(nargs) + 1, kwnames);
}

Py_ssize_t argument_index(Py_ssize_t nargs, PyObject* kwnames, Py_ssize_t position,
                          const char* name) {
  if (position >= 0 && position < nargs) {
    return position;
  }
  if (kwnames != nullptr) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); ++i) {
      if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, i), name) == 0) {
        return nargs + i;
      }
    }
  }
  return -1;
}

void wrap_method(py::handle owner, const std::string& name, py::cpp_function function) {
  // A Python function, made once: it binds as a method, and functools.wraps gives it the
  // original's metadata and __wrapped__, which inspect.signature follows. Its code is filed
  // under torchdevice's package folder, so that the redirect report, which looks for the first
  // frame outside torch and torchdevice, never takes the wrapper for the program's call site.
  static PyObject* const make = [] {
    auto os_path = py::module_::import("os.path");
    const py::object folder =
        os_path.attr("dirname")(os_path.attr("abspath")(
            py::module_::import("torchdevice._C").attr("__file__")));
    const py::object file = os_path.attr("join")(folder, "<wrapped method>");
    auto builtins = py::module_::import("builtins");
    py::dict scope;
    builtins.attr("exec")(builtins.attr("compile")(R"(
import functools
def make(impl, original):
    def method(*args, **kwargs):
        return impl(*args, **kwargs)
    return functools.wraps(original)(method) if original is not None else method
)",
                                                   file, "exec"),
                          scope);
    return py::object(scope["make"]).release().ptr();
  }();
  py::object original = py::getattr(owner, name.c_str(), py::none());
  patch(owner, name, py::handle(make)(std::move(function), original));
}

void restore_all() {
  auto& list = patches();
  // Reverse order, so an attribute patched on top of another patch unwinds correctly.
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    if (it->original) {
      py::setattr(it->owner, it->name.c_str(), it->original);
    } else if (owns(it->owner, it->name)) {
      py::delattr(it->owner, it->name.c_str());
    }
  }
  list.clear();
}

std::vector<std::string> patched_names() {
  std::vector<std::string> names;
  for (const auto& entry : patches()) {
    const char* attribute = PyModule_Check(entry.owner.ptr()) ? "__name__" : "__qualname__";
    names.push_back(py::str(entry.owner.attr(attribute)).cast<std::string>() + "." + entry.name);
  }
  return names;
}

}  // namespace torchdevice::python
