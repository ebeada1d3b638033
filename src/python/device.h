#pragma once

namespace torchdevice::python {

// Hooks the constructor of the real torch.device type, so torch.device('cuda') yields the target
// while isinstance(d, torch.device) and type(d) is torch.device keep holding.
void install_device_hook();
void uninstall_device_hook();

}  // namespace torchdevice::python
