#pragma once

namespace torchdevice::python {

// CUDA code asks for fused optimizers (Adam(fused=True), AdamW, SGD, Adagrad: whichever this torch
// gives a `fused` argument). Where the target has no kernel of its own for the fused update (torch
// 1.13's fused Adam is CUDA's alone; the CPU has them from 2.4; MPS has no fused Adagrad), an
// optimizer over parameters on the target is built unfused instead, which computes the same
// update, and says so once per class; a state_dict loaded into it later (a CUDA checkpoint says
// fused=True) stays unfused. Everything else reaches torch's constructor untouched. On the CPU
// target, CPU parameters are the target's: an explicit CPU fused optimizer is unfused there too.
void install_fused_optimizers();
void uninstall_fused_optimizers();

}  // namespace torchdevice::python
