"""torchdevice's ``torch.backends`` entry point: activation with no import and no launcher.

torch >= 2.5 loads every entry point of the group ``torch.backends`` at the end of ``import
torch`` and calls it. Being installed must never change what a program computes, so this one
installs torchdevice only when the environment asks for it: ``TORCHDEVICE=1`` or
``TORCHDEVICE_TARGET=...``. It lives outside the torchdevice package because importing that
package installs the redirect. ``TORCHDEVICE_ACTIVATE=0`` (a child that ``torchdevice run``
opted out) and ``TORCHDEVICE_DISABLE=1`` win; ``TORCH_DEVICE_BACKEND_AUTOLOAD=0`` is torch's own
switch for all such entry points.
"""

import importlib
import os

_ON = ("1", "true", "yes", "on")
_OURS = "_torchdevice_autoload:activate"


def requested(environ=os.environ):
    """Whether the environment asks for torchdevice in this process."""
    if environ.get("TORCHDEVICE_ACTIVATE") == "0":
        return False
    return environ.get("TORCHDEVICE", "").lower() in _ON or bool(environ.get("TORCHDEVICE_TARGET"))


def _install():
    import torchdevice  # noqa: F401 - importing it installs the redirect


def _after_the_other_backends(then):
    """Arranges for `then` to run once torch has called every torch.backends entry point listed
    after this one (torch calls them in this order): the target is chosen among the accelerators
    those backends register (an NPU, the test suite's stand-in), so it must wait for them. The
    last one's function is wrapped, for its one call, in its own module. False when there is
    nothing to wait for or no way to wait."""
    from importlib.metadata import entry_points

    group = list(entry_points(group="torch.backends"))
    values = [entry.value for entry in group]
    if _OURS not in values or values.index(_OURS) == len(values) - 1:
        return False
    last = group[-1]
    if not last.attr or "." in last.attr:
        return False
    module = importlib.import_module(last.module)
    original = getattr(module, last.attr)

    def then_install(*args, **kwargs):
        setattr(module, last.attr, original)
        result = original(*args, **kwargs)
        then()
        return result

    setattr(module, last.attr, then_install)
    return True


def activate():
    if requested() and not _after_the_other_backends(_install):
        _install()
