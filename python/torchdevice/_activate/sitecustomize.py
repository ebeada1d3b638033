"""Carries ``torchdevice run`` into every Python process of the launched tree.

The launcher puts this folder first on ``PYTHONPATH`` and sets ``TORCHDEVICE_ACTIVATE=1``, so
each Python started below it (the program, multiprocessing spawn/forkserver children, subprocess
and torchrun workers) imports this module at start-up, before any user code. It then:

- takes this folder back off ``sys.path``, so the program sees the ``sys.path`` plain python gives;
- runs the ``sitecustomize`` this one hides, if any (a distribution's, a virtualenv's);
- arranges for ``import torchdevice`` right after torch itself is first imported. Processes that
  never import torch pay nothing beyond this file; forked children inherit the install.

Nothing is installed globally: the activation lives only in the environment of the launched tree.
"""

import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# python/torchdevice/_activate -> python/ : where the torchdevice package lives.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(_HERE))


def _same(a, b):
    return os.path.normcase(os.path.abspath(a or os.curdir)) == os.path.normcase(b)


def _chain_sitecustomize():
    """Loads the sitecustomize that would have run without us, and leaves it in sys.modules."""
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    if spec is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


class _AfterTorch:
    """A one-shot import hook: lets torch load normally, then imports torchdevice."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch":
            return None
        sys.meta_path.remove(self)  # the import system is exactly as before from here on
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _InstallAfter(spec.loader)
        return spec


class _InstallAfter:
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _import_torchdevice()


def _import_torchdevice():
    if any(_same(entry, _PACKAGE_ROOT) for entry in sys.path):
        import torchdevice  # noqa: F401
        return
    # Installed neither in site-packages nor on PYTHONPATH (an in-tree launcher): import it from
    # where this file lives without leaving that folder on the program's sys.path.
    sys.path.insert(0, _PACKAGE_ROOT)
    try:
        import torchdevice  # noqa: F401
    finally:
        sys.path.remove(_PACKAGE_ROOT)


sys.path[:] = [entry for entry in sys.path if not _same(entry, _HERE)]
_chain_sitecustomize()
if os.environ.get("TORCHDEVICE_ACTIVATE") == "1":
    if "torch" in sys.modules:  # a chained sitecustomize imported it already
        _import_torchdevice()
    else:
        sys.meta_path.insert(0, _AfterTorch())
