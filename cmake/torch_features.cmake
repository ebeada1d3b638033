# What the torch being built against offers. Each difference the sources branch on is tested here
# (a header's presence, a declaration compiling, a Python name existing), so a torch release that
# lacks one fails now, with a message naming it, rather than at import with an undefined symbol.
# Included by CMakeLists.txt after find_package(Torch) and the C++ standard are settled.
include(CheckCXXSourceCompiles)

string(REGEX MATCH "^([0-9]+)\\.([0-9]+)" _ "${TORCHDEVICE_TORCH_VERSION}")
set(TORCHDEVICE_TORCH_MAJOR_MINOR "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")
if(NOT Torch_VERSION MATCHES "^${CMAKE_MATCH_1}\\.${CMAKE_MATCH_2}(\\.|$)")
  message(FATAL_ERROR
    "find_package(Torch) found torch ${Torch_VERSION} (${Torch_DIR}) but ${Python3_EXECUTABLE} "
    "runs torch ${TORCHDEVICE_TORCH_VERSION}. Point CMAKE_PREFIX_PATH at the interpreter's torch "
    "(python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)') or pick the "
    "interpreter with -DPython3_EXECUTABLE=.")
endif()
if(TORCHDEVICE_TORCH_MAJOR_MINOR VERSION_LESS 1.13)
  message(FATAL_ERROR "torch ${TORCHDEVICE_TORCH_VERSION} is too old: torchdevice needs 1.13 or newer.")
endif()

# Compiled only, never linked: the declarations are what is tested.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS})
set(CMAKE_REQUIRED_FLAGS "${TORCH_CXX_FLAGS}")
set(CMAKE_REQUIRED_QUIET ON)
# torch 2.x made Allocator::allocate non-const and added copy_data (which release: tested, not assumed).
check_cxx_source_compiles([[
#include <c10/core/Allocator.h>
struct A : c10::Allocator {
  c10::DataPtr allocate(size_t) override { return {}; }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
};
]] TORCHDEVICE_ALLOCATE_IS_MUTABLE)
check_cxx_source_compiles([[
#include <c10/core/Allocator.h>
void (c10::Allocator::*copy)(void*, const void*, std::size_t) const = &c10::Allocator::copy_data;
]] TORCHDEVICE_ALLOCATOR_HAS_COPY_DATA)
# c10::DeviceAllocator: one statistics interface for every accelerator's allocator (torch 2.9-ish).
check_cxx_source_compiles([[
#include <c10/core/CachingDeviceAllocator.h>
c10::CachingDeviceAllocator::DeviceStats (c10::DeviceAllocator::*stats)(c10::DeviceIndex) =
    &c10::DeviceAllocator::getDeviceStats;
]] TORCHDEVICE_HAS_DEVICE_ALLOCATOR)
# Process groups with one backend per device type (torch 2.x), each found by the group's name:
# src/staged_backend.cpp adds one for a target gloo cannot take.
check_cxx_source_compiles([[
#include <torch/csrc/distributed/c10d/GroupRegistry.hpp>
void stage(const std::string& name, const c10::intrusive_ptr<c10d::Backend>& backend) {
  auto group = c10d::resolve_process_group(name);
  group->getDeviceTypes();
  group->setBackend(c10::kCPU, c10d::ProcessGroup::BackendType::CUSTOM, backend);
}
]] TORCHDEVICE_HAS_C10D_BACKENDS)
# Autocast's dtype asked per device type (torch 2.4); before it, CUDA's is the GPU dtype.
check_cxx_source_compiles([[
#include <ATen/autocast_mode.h>
at::ScalarType dtype(c10::DeviceType type) { return at::autocast::get_autocast_dtype(type); }
]] TORCHDEVICE_HAS_AUTOCAST_DTYPE_OF_TYPE)
unset(CMAKE_TRY_COMPILE_TARGET_TYPE)
unset(CMAKE_REQUIRED_INCLUDES)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_QUIET)

# The torch-2 code paths use these; torch 1.13 has its own paths and needs none of them.
if(TORCHDEVICE_TORCH_MAJOR_MINOR VERSION_GREATER_EQUAL 2.0)
  set(missing "")
  set(include_dir "")
  foreach(dir IN LISTS TORCH_INCLUDE_DIRS)
    if(EXISTS "${dir}/torch/csrc/utils/pybind.h")
      set(include_dir "${dir}")
    endif()
  endforeach()
  # src/python/cuda_api.cpp re-arms torch's lazy-init flag through it.
  if(NOT EXISTS "${include_dir}/torch/csrc/utils/device_lazy_init.h")
    list(APPEND missing "<torch/csrc/utils/device_lazy_init.h>")
  endif()
  # src/python/amp.cpp wraps it.
  execute_process(
    COMMAND "${Python3_EXECUTABLE}" -c "import torch.amp.grad_scaler as g; g.GradScaler"
    RESULT_VARIABLE has_amp_scaler OUTPUT_QUIET ERROR_QUIET)
  if(NOT has_amp_scaler EQUAL 0)
    list(APPEND missing "torch.amp.grad_scaler.GradScaler")
  endif()
  if(missing)
    list(JOIN missing ", " missing)
    message(FATAL_ERROR
      "torch ${TORCHDEVICE_TORCH_VERSION} is not supported: torchdevice's torch-2 code uses "
      "${missing}, which this torch lacks (torch 2.3 and newer have them). Supported: torch 1.13, "
      "and torch 2.3 or newer. On an Intel Mac, whose last torch is 2.2, use torch 1.13.")
  endif()
endif()

message(STATUS "torchdevice: torch ${TORCHDEVICE_TORCH_VERSION} (${Torch_DIR}), C++${CMAKE_CXX_STANDARD}")
