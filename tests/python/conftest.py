import os
import subprocess
import sys

import pytest
import torch

import torchdevice

# What this machine redirects decides which tests apply: on a CUDA machine CUDA must stay untouched
# and 'mps' lands on CUDA; elsewhere CUDA (and MPS, off Apple) land on the target.
REDIRECTS_CUDA = "cuda" in torchdevice.redirected()
REDIRECTS_MPS = "mps" in torchdevice.redirected()



def _bare_index_resolves():
    """torch >= 2 reads a bare index (device=0, .to(0)) as "the current accelerator"; with no
    accelerator at all its own argument parser rejects it before any hook can see the call."""
    try:
        torch.empty(0, device=0)
    except RuntimeError as error:
        if "accelerator" not in str(error):
            raise
        return False
    return True


INDEX_MEANS_CUDA = _bare_index_resolves()


def redirected_dtype(dtype):
    """The dtype a redirected request for `dtype` gets under the float64 policy in force
    (test_float64.py)."""
    if dtype == torch.float64 and "float64 -> float32" in torchdevice._C.float64_policy()[1]:
        return torch.float32
    return dtype


def target_refuses(dtype):
    """Whether the target has no `dtype` (float64 and complex128 on MPS, bfloat16 there before
    macOS 14): it refuses to make a tensor of it, or to compute with one (MPS makes complex128 tensors and refuses every op on them)."""
    try:
        torch.empty(1, dtype=dtype, device=torchdevice.target()).zero_()
        return False
    except (RuntimeError, TypeError):
        return True

requires_cuda_redirect = pytest.mark.skipif(
    not REDIRECTS_CUDA, reason="CUDA is available on this machine, so it is never redirected"
)
requires_real_cuda = pytest.mark.skipif(REDIRECTS_CUDA, reason="needs a machine with CUDA")
requires_cpu_only_torch = pytest.mark.skipif(
    torch.backends.cuda.is_built(), reason="needs a torch built without CUDA"
)

# Lines tests add for the end of the run: how much of something they covered on this torch.
SUMMARY = []


def pytest_terminal_summary(terminalreporter):
    for line in SUMMARY:
        terminalreporter.write_line(line)


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# The test devices' switches: they say what the machine has (the stand-in accelerator, the
# emulated MPS), not what torchdevice does.
TEST_DEVICE_SWITCHES = ("TORCHDEVICE_STANDIN", "TORCHDEVICE_MPS_EMULATED", "TORCHDEVICE_MPS_MACOS",
                        "TORCHDEVICE_MPS_GUARD")

# The emulated MPS (tests/mps_emulated): DeviceType::MPS itself, on Linux.
EMULATED_MPS = (os.environ.get("TORCHDEVICE_MPS_EMULATED") == "1"
                and torch.backends.mps.is_available())
requires_emulated_mps = pytest.mark.skipif(
    not EMULATED_MPS, reason="needs the emulated MPS (bash scripts/mps-emulated.sh)")

# Targets whose host-to-device non_blocking copies read their source only when their stream gets
# there, as MPS's do (pytorch#139550): the emulated MPS.
DEFERS_COPIES = EMULATED_MPS or (hasattr(torch, "standin")
                                 and os.environ.get("TORCHDEVICE_STANDIN") == "mps")


def keep_target_busy(milliseconds):
    """Queues that much work on the target's stream first (as torch.cuda._sleep does)."""
    if EMULATED_MPS:
        import torchdevice_mps_emulated

        torchdevice_mps_emulated.sleep(milliseconds)
    else:
        torch.standin._sleep(milliseconds)


def without_test_devices(env):
    """`env` for a CPU reference run: no test device loaded in it."""
    return {k: v for k, v in env.items() if not k.startswith(TEST_DEVICE_SWITCHES)}


def environment_without_torchdevice():
    """os.environ for a child that decides about torchdevice itself: none of its switches, except
    the test devices' (TEST_DEVICE_SWITCHES), which say what the machine has."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("TORCHDEVICE_") or k.startswith(TEST_DEVICE_SWITCHES)}


@pytest.fixture(autouse=True)
def installed():
    """Every test starts and ends with the default redirect installed, whatever it did."""
    os.environ.pop("TORCHDEVICE_TARGET", None)
    torchdevice.install()
    yield torchdevice.target()
    torchdevice.install()


@pytest.fixture
def target():
    return torchdevice.target()


def run_python(code, env=None, check=True):
    """Runs `code` in a fresh interpreter that imports this torchdevice; returns the process."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result
