#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/Optional.h>
#include <pybind11/pybind11.h>

#include "torchdevice/memory.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

// The target backend's own Python module (torch.mps, torch.xpu, torch.<PrivateUse1 name>), asked
// only where the running torch has no device-generic route (src/target_device.cpp): the one place
// where torchdevice calls a backend through its module.
namespace torchdevice::python {

// The first of `names` that the target's module has (backends spell some functions differently:
// torch.mps.current_allocated_memory is torch.xpu.memory_allocated), or an error naming `call`.
pybind11::object device_module_function(std::initializer_list<const char*> names,
                                        const std::string& call);
// Whether the target's module has `name`.
bool device_module_has(const char* name);

// The target module's memory_stats() (torch.xpu's, and a PrivateUse1 module's written after
// torch.cuda), where it has one with torch.cuda's flat keys for every figure MemoryStats holds:
// the statistics, peaks included, of a torch whose allocator interface keeps none (before 2.9).
c10::optional<MemoryStats> device_module_memory_stats();
// Calls the module's `name`(device index) where it has one (reset_peak_memory_stats, ...);
// false where it has none.
bool device_module_call(const char* name);

// The most memory the target may use: its module's own figure where it has one (MPS's
// recommended working set, another backend's device properties), else the host's.
int64_t target_total_memory();

// The dtypes autocast on the target takes (none: it has no autocast in this torch): torch's own
// list where it fixes one, else the backend's answer (its module's get_amp_supported_dtype).
std::vector<c10::ScalarType> target_autocast_dtypes();

// Blocks until the target has finished all queued work: through its device guard, else its module.
void synchronize_target();

// Whether torch's inductor has a working code generator for the target's device type (torch >= 2;
// asked of its backend registry once per type, on first use, as importing inductor takes
// seconds; for MPS also torch's shader compiler, and torch >= 2.9).
bool target_has_inductor();

// torch's own storage copies (`storage.cuda()`, `torch.load` with a callable map_location) enter
// `torch.<target>.device(...)` (torch/_utils.py, _to): MPS's module has no such context, so they
// fail on a Mac with or without torchdevice. For a one-device target whose module lacks it,
// installs one that switches nothing (there is nothing to switch); put back on uninstall.
void install_device_context();

// The error for a torch.cuda function the target cannot answer, naming the call and the target.
[[noreturn]] void unsupported(const std::string& call, const std::string& why);

}  // namespace torchdevice::python
