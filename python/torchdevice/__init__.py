"""torchdevice: run PyTorch code written for CUDA on whatever device this machine has.

``import torchdevice`` installs the redirect (unless ``TORCHDEVICE_DISABLE=1``). Requests for an
accelerator this machine lacks land on the best available device (MPS, then CUDA, then CPU, or
``TORCHDEVICE_TARGET``); everything else is untouched. All interception lives in the C++
extension ``torchdevice._C``; this module only loads it and calls ``install``.
"""

import atexit
import json
import os
import sys
import warnings


def _mps_fallback_switch():
    """``TORCHDEVICE_MPS_FALLBACK=1``: ops MPS lacks run on the CPU instead of raising. That is
    torch's own switch, ``PYTORCH_ENABLE_MPS_FALLBACK``, which torch reads once, as it loads."""
    if os.environ.get("TORCHDEVICE_MPS_FALLBACK", "").lower() not in ("1", "true", "yes", "on"):
        return
    if "torch" in sys.modules and "PYTORCH_ENABLE_MPS_FALLBACK" not in os.environ:
        warnings.warn(
            "TORCHDEVICE_MPS_FALLBACK=1 has no effect: torch was imported before torchdevice and "
            "reads PYTORCH_ENABLE_MPS_FALLBACK only as it loads. Import torchdevice first, or run "
            "the program with `torchdevice run`.", RuntimeWarning, stacklevel=3)
        return
    os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")


_mps_fallback_switch()

import torch  # noqa: E402 - must precede the extension, which links against torch's libraries

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


def install(target=None, float64=None):
    """Install the redirect, or retarget it; idempotent and thread-safe.

    ``target`` ('cpu', 'mps', 'cuda', a torch.device, or None for the best available device,
    or ``TORCHDEVICE_TARGET`` when set) must be available. ``float64`` is the float64 policy for
    redirected requests (None: ``TORCHDEVICE_FLOAT64``, else 'auto'): 'auto' narrows float64 to
    float32 (complex128 to complex64) only where the target lacks it, 'float32' always, 'error'
    never. Returns the target torch.device.
    """
    if target is not None and not isinstance(target, str):
        target = str(target)
    return _C.install(target, float64)


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


def report(path=None, enable=None):
    """The redirect report: one dict per call site of the program that asked for a redirected
    device (file, line, function, what asked, requested, target, count).

    ``enable`` turns collecting on or off (it is on when ``TORCHDEVICE_REPORT`` is set or the log
    level is info or finer; when off it costs nothing). With ``path``, also writes the report
    there as JSON (the schema in docs/launcher.md). Returns the report as a dict.
    """
    if enable is not None:
        _C._report_enable(bool(enable))
    document = {
        "torchdevice": __version__,
        "torch": torch.__version__,
        "pid": os.getpid(),
        "rank": _rank(),
        "argv": list(getattr(sys, "argv", [])),
        "target": str(target()) if is_installed() else None,
        "sites": _C._report_entries(),
    }
    if path is not None:
        with open(path, "w") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
    return document


def _rank():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    rank = os.environ.get("RANK")
    return int(rank) if rank is not None and rank.isdigit() else None


def _report_path():
    """TORCHDEVICE_REPORT names the first process's file; every other process of the tree
    writes its own beside it, tagged with its rank (or its pid when it has none)."""
    path = os.environ.get("TORCHDEVICE_REPORT")
    if not path:
        return None
    if os.environ.get("TORCHDEVICE_REPORT_PID") == str(os.getpid()):
        return path
    rank = _rank()
    root, extension = os.path.splitext(path)
    return f"{root}.{'rank%d' % rank if rank is not None else 'pid%d' % os.getpid()}{extension}"


def _report_at_exit():
    if not _C._report_enabled():
        return
    _C._report_log_summary()
    path = _report_path()
    if path is not None:
        report(path)


def _configure_report():
    """Turns the report on when asked for by the environment; called at import and again by the
    launcher once its options are in the environment."""
    asked = bool(os.environ.get("TORCHDEVICE_REPORT")) or os.environ.get(
        "TORCHDEVICE_LOG_LEVEL", "").lower() in ("trace", "debug", "info")
    if not asked:
        return
    if os.environ.get("TORCHDEVICE_REPORT"):
        os.environ.setdefault("TORCHDEVICE_REPORT_PID", str(os.getpid()))
    _C._report_enable(True)
    # Registered again on each call: exit handlers run last-registered first, so this one then
    # runs before those registered earlier (the launcher's, which may end the process).
    atexit.unregister(_report_at_exit)
    atexit.register(_report_at_exit)


__all__ = ["install", "uninstall", "is_installed", "target", "redirected", "report",
           "__version__"]

if os.environ.get("TORCHDEVICE_DISABLE", "").lower() not in ("1", "true", "yes", "on"):
    install()
    _configure_report()
