# spdlog for src/log.cpp, compiled into torchdevice itself either way, so the module never
# depends on a shared libspdlog/libfmt that the system may later change or remove:
# - the system's (Debian, Homebrew, conda) when find_package finds it, used header-only, with its
#   external fmt header-only too;
# - else a pinned release fetched at configure time (pip install on a machine without it),
#   built as a static library with its bundled fmt.
# -DCMAKE_DISABLE_FIND_PACKAGE_spdlog=ON forces the fetch; -DFETCHCONTENT_SOURCE_DIR_SPDLOG=DIR
# uses an unpacked copy instead of downloading. Defines the interface target torchdevice_spdlog.
add_library(torchdevice_spdlog INTERFACE)

find_package(spdlog CONFIG QUIET)
if(spdlog_FOUND AND TARGET spdlog::spdlog_header_only)
  get_target_property(spdlog_includes spdlog::spdlog_header_only INTERFACE_INCLUDE_DIRECTORIES)
  get_target_property(spdlog_defines spdlog::spdlog_header_only INTERFACE_COMPILE_DEFINITIONS)
  target_include_directories(torchdevice_spdlog SYSTEM INTERFACE ${spdlog_includes})
  find_package(Threads REQUIRED)
  target_link_libraries(torchdevice_spdlog INTERFACE Threads::Threads)
  # Not the header-only target itself: it links the shared fmt::fmt.
  if("SPDLOG_FMT_EXTERNAL" IN_LIST spdlog_defines)
    find_package(fmt CONFIG REQUIRED)
    target_link_libraries(torchdevice_spdlog INTERFACE fmt::fmt-header-only)
    target_compile_definitions(torchdevice_spdlog INTERFACE SPDLOG_FMT_EXTERNAL)
    set(spdlog_fmt "its external fmt ${fmt_VERSION}, header-only too")
  else()
    set(spdlog_fmt "its bundled fmt")
  endif()
  message(STATUS "torchdevice: spdlog ${spdlog_VERSION} from the system (${spdlog_DIR}), "
                 "used header-only with ${spdlog_fmt}: compiled into the module")
else()
  include(FetchContent)
  FetchContent_Declare(spdlog
    URL https://github.com/gabime/spdlog/archive/v1.15.0.tar.gz
    URL_HASH SHA256=9962648c9b4f1a7bbc76fd8d9172555bad1871fdb14ff4f842ef87949682caa5)
  set(SPDLOG_BUILD_PIC ON CACHE BOOL "" FORCE)        # linked into a Python extension module
  set(SPDLOG_BUILD_SHARED OFF CACHE BOOL "" FORCE)
  set(SPDLOG_FMT_EXTERNAL OFF CACHE BOOL "" FORCE)
  set(SPDLOG_INSTALL OFF CACHE BOOL "" FORCE)         # nothing of it goes into the wheel
  message(STATUS "torchdevice: no system spdlog found; fetching spdlog 1.15.0 "
                 "(pinned, SHA-256 checked), built statically into the module")
  FetchContent_MakeAvailable(spdlog)
  target_link_libraries(torchdevice_spdlog INTERFACE spdlog::spdlog)
endif()
