#pragma once

namespace torchdevice::python {

// torch.load restores storages whose recorded location names a redirected device ('cuda:0',
// 'cuda:1', also when a map_location string or dict produces one) on the target, bit-exact.
// A deserializer is put first in torch.serialization's registry; saving is untouched (the target's
// tensors are tagged with the target's own location). Callers hold the GIL.
void install_serialization();
void uninstall_serialization();

}  // namespace torchdevice::python
