#pragma once

// Kernels torch needs from a backend of its own (allocation, copies, views) and the boxed
// fallback that computes everything else with torch's CPU kernels.
namespace torchdevice::standin {

// Lets torch.autocast('standin') run: a fallthrough for every op, casts for the ops CUDA casts.
// Registered at runtime, and only where torch has no AutocastPrivateUse1 fallback of its own.
void register_autocast();

} // namespace torchdevice::standin
