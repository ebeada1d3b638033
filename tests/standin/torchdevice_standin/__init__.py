"""A stand-in accelerator for torchdevice's tests: torch's PrivateUse1 backend named 'standin'.

torch imports this package at `import torch` (entry point group ``torch.backends``) and calls
``_autoload``, which does nothing unless TORCHDEVICE_STANDIN=1 (see tests/standin/README.md).
Once loaded, PrivateUse1 stays registered for the life of the process.
"""

import os


def _autoload():
    mode = os.environ.get("TORCHDEVICE_STANDIN", "")
    if mode in ("", "0"):
        return
    if mode != "1":
        raise ValueError(f"TORCHDEVICE_STANDIN must be 1 (or unset), got {mode!r}")
    load()


def load():
    """Registers the 'standin' backend with torch (idempotent)."""
    import torch

    if hasattr(torch, "standin"):
        return
    from . import _C  # noqa: F401  (registers allocator, guard, hooks and kernels)
    from . import device

    torch.utils.rename_privateuse1_backend("standin")
    torch._register_device_module("standin", device)
    torch.utils.generate_methods_for_privateuse1_backend(for_storage=True)
