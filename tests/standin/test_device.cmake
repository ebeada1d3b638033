# What the two test devices built from the stand-in's sources (tests/standin, tests/mps_emulated)
# share: found against the torch the interpreter imports, which must host backend autoload.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module)
find_package(Torch REQUIRED)
if(Torch_VERSION VERSION_LESS 2.6)
  message(FATAL_ERROR "${PROJECT_NAME} needs torch >= 2.6 (backend autoload, device hooks); "
                      "torch ${Torch_VERSION} cannot host it")
endif()
find_package(pybind11 CONFIG REQUIRED)

# torch 2.10's headers need C++20.
if(Torch_VERSION VERSION_GREATER_EQUAL 2.10)
  set(CMAKE_CXX_STANDARD 20)
else()
  set(CMAKE_CXX_STANDARD 17)
endif()
set(CMAKE_CXX_STANDARD_REQUIRED ON)
string(APPEND CMAKE_CXX_FLAGS " ${TORCH_CXX_FLAGS}")

# The ops CUDA does not check for one device (native_functions.yaml's `device_check: NoCheck`),
# from the yaml torchgen ships with this torch, for the fallback's strict device check.
execute_process(
  COMMAND ${Python3_EXECUTABLE} -c
          "import os, torchgen; print(os.path.join(os.path.dirname(torchgen.__file__), 'packaged', 'ATen', 'native', 'native_functions.yaml'))"
  OUTPUT_VARIABLE native_functions OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
set(TORCHDEVICE_NATIVE_FUNCTIONS ${native_functions})
file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/generated)
execute_process(
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/gen_device_checks.py ${native_functions}
          ${CMAKE_CURRENT_BINARY_DIR}/generated/device_unchecked.inc
  COMMAND_ERROR_IS_FATAL ANY)
include_directories(${CMAKE_CURRENT_BINARY_DIR}/generated)
