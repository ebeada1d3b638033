"""torchdevice's ``torch.backends`` entry point: activation with no import and no launcher.

torch >= 2.5 loads every entry point of the group ``torch.backends`` at the end of ``import
torch`` and calls it. Being installed must never change what a program computes, so this one
installs torchdevice only when the environment asks for it: ``TORCHDEVICE=1`` or
``TORCHDEVICE_TARGET=...``. It lives outside the torchdevice package because importing that
package installs the redirect. ``TORCHDEVICE_ACTIVATE=0`` (a child that ``torchdevice run``
opted out) and ``TORCHDEVICE_DISABLE=1`` win; ``TORCH_DEVICE_BACKEND_AUTOLOAD=0`` is torch's own
switch for all such entry points.
"""

import os

_ON = ("1", "true", "yes", "on")


def requested(environ=os.environ):
    """Whether the environment asks for torchdevice in this process."""
    if environ.get("TORCHDEVICE_ACTIVATE") == "0":
        return False
    return environ.get("TORCHDEVICE", "").lower() in _ON or bool(environ.get("TORCHDEVICE_TARGET"))


def activate():
    if requested():
        import torchdevice  # noqa: F401 - importing it installs the redirect
