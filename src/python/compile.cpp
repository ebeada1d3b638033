#include "compile.h"

#include <torch/csrc/utils/pybind.h>

#include "cuda_api.h"
#include "device_module.h"
#include "patch.h"
#include "torchdevice/log.h"
#include "torchdevice/state.h"

#include <string>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

constexpr char kFallbackBackend[] = "aot_eager";

// Held forever: releasing it after the interpreter is gone would crash at exit.
py::object& original_compile() {
  static auto* held = new py::object();
  return *held;
}

bool asks_for_inductor(const py::kwargs& kwargs) {
  if (!kwargs.contains("backend") || kwargs["backend"].is_none()) {
    return true;  // inductor is torch.compile's default
  }
  const py::object backend = kwargs["backend"];
  return py::isinstance<py::str>(backend) && backend.cast<std::string>() == "inductor";
}

py::object compile(py::args args, py::kwargs kwargs) {
  if (!asks_for_inductor(kwargs) || target_has_inductor()) {
    return original_compile()(*args, **kwargs);
  }
  static bool said = false;  // the GIL is held
  if (!said) {
    said = true;
    log::warn("torchdevice: inductor has no code generator for " + target().str() +
              "; torch.compile uses the '" + kFallbackBackend +
              "' backend there (its mode and options are inductor's and are dropped)");
  }
  kwargs["backend"] = py::str(kFallbackBackend);
  for (const char* inductor_only : {"mode", "options"}) {
    if (kwargs.contains(inductor_only)) {
      PyDict_DelItemString(kwargs.ptr(), inductor_only);
    }
  }
  return original_compile()(*args, **kwargs);
}

}  // namespace

void install_compile() {
  auto torch = py::module_::import("torch");
  if (target().is_cpu() || !py::hasattr(torch, "compile")) {
    return;  // inductor compiles for the CPU; torch 1.x has no torch.compile
  }
  if (!original_compile()) {
    original_compile() = torch.attr("compile");
  }
  patch(torch, "compile", py::cpp_function(&compile, py::name("compile")));
}

}  // namespace torchdevice::python
