"""Activation with no import and no launcher: torch >= 2.5 calls the entry points of the group
`torch.backends` at `import torch`; torchdevice's installs the redirect only when TORCHDEVICE=1 or
TORCHDEVICE_TARGET asks. The entry point is declared here the way an installed distribution
declares it (a dist-info folder on the path), so torch's own loader is what calls it."""

import os
import subprocess
import sys

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect

import _torchdevice_autoload

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(torchdevice.__file__)))
TORCH_LOADS_BACKENDS = hasattr(torch, "_import_device_backends")


@pytest.mark.parametrize("environ, asked", [
    ({}, False),
    ({"TORCHDEVICE": "1"}, True),
    ({"TORCHDEVICE": "true"}, True),
    ({"TORCHDEVICE": "0"}, False),
    ({"TORCHDEVICE": ""}, False),
    ({"TORCHDEVICE_TARGET": "cpu"}, True),
    ({"TORCHDEVICE_TARGET": ""}, False),
    ({"TORCHDEVICE": "1", "TORCHDEVICE_ACTIVATE": "0"}, False),  # a launcher child opted out
    ({"TORCHDEVICE_ACTIVATE": "1"}, False),  # the launcher's own variable activates nothing here
])
def test_only_the_environment_asks(environ, asked):
    assert _torchdevice_autoload.requested(environ) is asked


@pytest.fixture
def entry_point(tmp_path):
    """A folder that declares torchdevice's torch.backends entry point, as pip's install does."""
    info = tmp_path / "torchdevice_autoload_test-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torchdevice-autoload-test\n"
                                   "Version: 0\n")
    (info / "entry_points.txt").write_text(
        "[torch.backends]\ntorchdevice = _torchdevice_autoload:activate\n")
    return tmp_path


PROGRAM = """\
import sys
import torch
try:
    print(torch.zeros(1, device="cuda").device, "torchdevice" in sys.modules)
except (AssertionError, RuntimeError) as error:
    print("refused:", type(error).__name__, "torchdevice" in sys.modules)
"""


def run(entry_point, environ):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(entry_point), PACKAGE_ROOT]))
    for name in ("TORCHDEVICE", "TORCHDEVICE_TARGET", "TORCHDEVICE_ACTIVATE",
                 "TORCHDEVICE_DISABLE", "TORCH_DEVICE_BACKEND_AUTOLOAD"):
        env.pop(name, None)
    env.update(environ)
    result = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@requires_cuda_redirect
@pytest.mark.skipif(not TORCH_LOADS_BACKENDS, reason=f"torch {torch.__version__} loads no "
                    "torch.backends entry points (torch >= 2.5 does): there, TORCHDEVICE=1 needs "
                    "`torchdevice run`")
def test_torchdevice_1_lands_on_the_target_and_being_installed_changes_nothing(entry_point):
    target = str(torchdevice.target())
    assert run(entry_point, {"TORCHDEVICE": "1"}) == f"{target} True"
    assert run(entry_point, {"TORCHDEVICE_TARGET": "cpu"}) == "cpu True"
    plain = run(entry_point, {})
    assert plain.startswith("refused:") and plain.endswith("False")
    assert run(entry_point, {"TORCHDEVICE": "1", "TORCHDEVICE_ACTIVATE": "0"}).endswith("False")
    assert run(entry_point, {"TORCHDEVICE": "1", "TORCH_DEVICE_BACKEND_AUTOLOAD": "0"}).endswith(
        "False")
