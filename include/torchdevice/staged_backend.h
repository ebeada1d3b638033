#pragma once

#include <c10/core/DeviceType.h>

#include <string>

namespace torchdevice {

// Gives the process group registered as `group_name` a backend for `device_type` where it has
// none: one that runs each collective through the group's CPU backend (gloo) on CPU copies of the
// tensors and copies the results back, so collectives and DDP's reducer, which call the group
// directly, work on an accelerator gloo cannot take. Returns whether it added one. Groups with a
// backend for the type already (CPU, CUDA with gloo or NCCL) are left as they are. torch 1.x has
// no per-device backends: nothing is added there.
bool stage_through_cpu(const std::string& group_name, c10::DeviceType device_type);

}  // namespace torchdevice
