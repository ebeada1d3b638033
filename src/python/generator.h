#pragma once

namespace torchdevice::python {

// torch.Generator(device='cuda') makes a generator of the target, and torch.cuda.default_generators
// holds the target's default generator, the one torch.cuda.manual_seed seeds.
void install_generator_hook();
void uninstall_generator_hook();

}  // namespace torchdevice::python
