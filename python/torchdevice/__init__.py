"""torchdevice: run PyTorch code written for CUDA on whatever device this machine has.

``import torchdevice`` installs the redirect (unless ``TORCHDEVICE_DISABLE=1``). Requests for an
accelerator this machine lacks land on the best available device (MPS, then CUDA, then CPU, or
``TORCHDEVICE_TARGET``); everything else is untouched. All interception lives in the C++
extension ``torchdevice._C``; this module only loads it and calls ``install``.
"""

import os

import torch  # must precede the extension, which links against torch's libraries

__version__ = "0.1.0"

try:
    from torchdevice import _C
except ImportError as error:  # pragma: no cover - exercised only with a broken build
    raise ImportError(
        f"torchdevice's C++ extension could not be loaded ({error}). It must be built against the "
        f"torch that is running ({torch.__version__} at {os.path.dirname(torch.__file__)}). "
        "Rebuild it with `bash scripts/build.sh`, or `pip install --no-build-isolation .`."
    ) from error

if _C.compiled_torch_version != torch.__version__:
    raise ImportError(
        f"torchdevice was compiled against torch {_C.compiled_torch_version} but torch "
        f"{torch.__version__} is running. Rebuild it against the running torch with "
        "`bash scripts/build.sh`, or `pip install --no-build-isolation .`."
    )


def install(target=None):
    """Install the redirect, or retarget it; idempotent and thread-safe.

    ``target`` ('cpu', 'mps', 'cuda', a torch.device, or None for the best available device,
    or ``TORCHDEVICE_TARGET`` when set) must be available. Returns the target torch.device.
    """
    if target is not None and not isinstance(target, str):
        target = str(target)
    return _C.install(target)


def uninstall():
    """Remove every hook ``install`` added; torch behaves exactly as before."""
    _C.uninstall()


def is_installed():
    """Whether the redirect is installed."""
    return _C.is_installed()


def target():
    """The torch.device that redirected requests land on, or None when not installed."""
    return _C.target()


def redirected():
    """The device types whose requests are being redirected, e.g. ['cuda', 'mps']."""
    return _C.redirected()


__all__ = ["install", "uninstall", "is_installed", "target", "redirected", "__version__"]

if os.environ.get("TORCHDEVICE_DISABLE", "").lower() not in ("1", "true", "yes", "on"):
    install()
