#include "report.h"

#include <frameobject.h>

#include "python_thread.h"

#include "torchdevice/log.h"
#include "torchdevice/report.h"

#include <string>

namespace py = pybind11;

namespace torchdevice::python {

namespace {

// Frames from files under these folders are torch's or torchdevice's, not the program's.
struct Library {
  std::string torch;
  std::string torchdevice;
};

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// The first Python frame outside torch and torchdevice, on this thread. Called with the GIL.
report::Site walk_frames(const Library& library) {
  PyFrameObject* frame = PyEval_GetFrame();
  Py_XINCREF(frame);
  while (frame != nullptr) {
    auto code = py::reinterpret_steal<py::object>(
        reinterpret_cast<PyObject*>(PyFrame_GetCode(frame)));
    const auto file = code.attr("co_filename").cast<std::string>();
    if (!starts_with(file, library.torch) && !starts_with(file, library.torchdevice)) {
      const py::object name = py::hasattr(code, "co_qualname") ? code.attr("co_qualname")
                                                               : code.attr("co_name");
      report::Site site{file, PyFrame_GetLineNumber(frame), name.cast<std::string>()};
      Py_DECREF(frame);
      return site;
    }
    PyFrameObject* back = PyFrame_GetBack(frame);
    Py_DECREF(frame);
    frame = back;
  }
  return {"<no Python caller>", 0, ""};
}

// torch's bindings release the GIL before dispatching, so the calling Python thread takes it back
// to read its own frames. A thread that never ran Python (autograd workers, C++ callers) has no
// frames to read and is never made to wait for the GIL.
report::Site program_site(const Library& library) {
  if (!thread_has_python_frames()) {
    return {"<no Python caller>", 0, ""};
  }
  const PyGILState_STATE gil = PyGILState_Ensure();
  report::Site site;
  try {
    site = walk_frames(library);
  } catch (const py::error_already_set&) {
    site = {"<unreadable Python frame>", 0, ""};
  }
  PyGILState_Release(gil);
  return site;
}

std::string package_folder(const char* module) {
  auto os_path = py::module_::import("os.path");
  const auto file = py::module_::import(module).attr("__file__");
  return py::str(os_path.attr("dirname")(os_path.attr("abspath")(file))).cast<std::string>() + "/";
}

// Turning the report on also installs the resolver: by then torchdevice._C has its __file__.
void enable(bool on) {
  if (on) {
    install_site_resolver();
  }
  report::set_enabled(on);
}

py::list entries() {
  py::list listed;
  for (const auto& entry : report::entries()) {
    py::dict row;
    row["file"] = entry.site.file;
    row["line"] = entry.site.line;
    row["function"] = entry.site.function;
    row["what"] = entry.what;
    row["requested"] = entry.requested;
    row["target"] = entry.target;
    row["count"] = entry.count;
    row["narrowed"] = entry.narrowed;
    listed.append(row);
  }
  return listed;
}

}  // namespace

void install_site_resolver() {
  const Library library{package_folder("torch"), package_folder("torchdevice._C")};
  report::set_site_resolver([library]() { return program_site(library); });
}

void define_report(py::module_& m) {
  m.def("_report_enable", &enable, py::arg("on"));
  m.def("_report_enabled", &report::enabled);
  m.def("_report_entries", &entries, "The call sites seen, as dicts.");
  m.def("_report_clear", &report::clear);
  m.def("_report_summary", &report::summary);
  m.def("_report_log_summary", []() { log::info(report::summary()); });
}

}  // namespace torchdevice::python
