#pragma once

#include <c10/core/DeviceType.h>

#include "torchdevice/target.h"

#include <string>

namespace torchdevice {

// Gives the process group registered as `group_name` a backend for `device_type` where none of
// its backends takes those tensors (it has none for the type, or gloo, which takes only CPU and
// CUDA tensors): one that runs each collective through the group's CPU backend on CPU copies of
// the tensors and copies the results back, so collectives and DDP's reducer, which call the group
// directly, work on an accelerator gloo cannot take. Returns whether it added one. torch 1.x has
// no per-device backends: nothing is added there.
bool stage_through_cpu(const std::string& group_name, c10::DeviceType device_type);

// c10d's collective ops have kernels for CPU, CUDA and PrivateUse1 tensors only: an MPS (or XPU,
// HPU) tensor meets no kernel of a group at all. For such a target, each c10d op gets a kernel on
// the target's key that runs the op on CPU copies (the group's CPU backend), waits for it, copies
// what it wrote back and returns a completed Work holding the device tensors. Idempotent;
// re-registers after a retarget. Nothing on torch 1.x.
void register_staged_ops(const Redirect& redirect);
void deregister_staged_ops();

}  // namespace torchdevice
