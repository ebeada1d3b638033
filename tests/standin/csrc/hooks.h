#pragma once

#include <ATen/core/Generator.h>
#include <c10/core/Device.h>

// What torch asks a PrivateUse1 backend through at::PrivateUse1HooksInterface, and its generators.
namespace torchdevice::standin {

// The device's default generator (a CPU generator engine that reports the stand-in's device).
const at::Generator& default_generator(c10::DeviceIndex index);

// Registers the hooks with torch; done once when the Python module loads.
void register_hooks();

} // namespace torchdevice::standin
