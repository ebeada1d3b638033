"""An emulated MPS device for torchdevice's tests: torch on Linux believes it has Apple's MPS.

torch imports this package at `import torch` (entry point group ``torch.backends``) and calls
``_autoload``, which does nothing unless TORCHDEVICE_MPS_EMULATED=1. Loading the extension
registers MPS's hooks in torch's registry (before anything asked for them: torch creates them
once), a device guard and an allocator for DeviceType::MPS, and kernels on the MPS dispatch key
that compute on the CPU. See tests/mps_emulated/README.md.
"""

import os
import sys


def _autoload():
    mode = os.environ.get("TORCHDEVICE_MPS_EMULATED", "")
    if mode in ("", "0"):
        return
    if mode != "1":
        raise ValueError(f"TORCHDEVICE_MPS_EMULATED must be 1 (or unset), got {mode!r}")
    load()


def load():
    """Registers the emulated MPS with torch (idempotent)."""
    if "torchdevice_mps_emulated._C" in sys.modules:
        return
    import torch

    from . import _C  # noqa: F401  (registers hooks, guard, allocator and kernels)

    _storages_on_mps(torch)


def _storages_on_mps(torch):
    """torch.UntypedStorage(..., device='mps'), which torch.load and TypedStorage use: a Linux
    torch's constructor knows no MPS ("Storage device not recognized: mps"; torch/csrc/Storage.cpp
    allocates MPS storages only in macOS builds). The narrowest stand-in: the same storage made on
    the CPU, then copied to the device's memory, as MPS's allocator would hold it."""
    storage = torch.UntypedStorage
    make = storage.__new__

    def __new__(cls, *args, device=None, **kwargs):
        if device is None or torch.device(device).type != "mps":
            return make(cls, *args, **({} if device is None else {"device": device}), **kwargs)
        host = make(cls, *args, **kwargs)
        return torch.empty(0, dtype=torch.uint8).set_(host).to("mps").untyped_storage()

    storage.__new__ = staticmethod(__new__)


def macos_version():
    """The macOS major version the emulation reports (TORCHDEVICE_MPS_MACOS, default 15)."""
    from . import _C

    return _C.macos_version()


def sleep(milliseconds):
    """Keeps MPS's stream busy for `milliseconds` (like torch.cuda._sleep)."""
    from . import _C

    _C.sleep(milliseconds)


def allocations():
    """How many device allocations the emulated MPS has made in this process."""
    from . import _C

    return _C.allocations()
