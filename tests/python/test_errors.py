"""Errors user code written for CUDA catches."""

import os
import subprocess
import sys

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect

OutOfMemoryError = getattr(torch.cuda, "OutOfMemoryError", RuntimeError)
HUGE = 2**50  # elements: petabytes, past any address space


@requires_cuda_redirect
@pytest.mark.parametrize("call", [
    lambda: torch.empty(HUGE, device="cuda"),
    lambda: torch.zeros(HUGE, dtype=torch.uint8, device="cuda:1"),
    lambda: torch.empty_strided((HUGE,), (1,), device="cuda"),
    lambda: torch.ones(1).new_empty(HUGE, device="cuda"),
])
def test_out_of_memory_on_the_target_is_cudas_out_of_memory_error(call, target):
    with pytest.raises(OutOfMemoryError) as raised:
        call()
    assert isinstance(raised.value, RuntimeError)
    message = str(raised.value)
    assert f"Out of memory on {target}" in message and "cuda" in message


def test_out_of_memory_that_is_not_redirected_is_unchanged():
    with pytest.raises(RuntimeError) as raised:
        torch.empty(HUGE)
    assert type(raised.value) is RuntimeError


@requires_cuda_redirect
@pytest.mark.parametrize("call", [
    lambda: torch.batch_norm_stats(torch.ones(2, 3, device="cuda"), 1e-5),
    lambda: torch._fused_dropout(torch.ones(4, device="cuda"), 0.5),
], ids=["batch_norm_stats", "_fused_dropout"])
def test_cuda_only_op_names_itself_the_target_and_what_to_use(call, target):
    with pytest.raises(NotImplementedError) as info:
        call()
    message = str(info.value)
    assert "exists only for CUDA" in message and f"-> {target.type}" in message
    assert "use the portable equivalent" in message


@requires_cuda_redirect
def test_cuda_only_op_error_goes_with_uninstall():
    torchdevice.uninstall()
    try:
        with pytest.raises((NotImplementedError, RuntimeError)) as info:
            torch.batch_norm_stats(torch.ones(2, 3), 1e-5)
        assert "exists only for CUDA" not in str(info.value)
    finally:
        torchdevice.install()


ASK_TORCH = "import os, torchdevice; print(os.environ.get('PYTORCH_ENABLE_MPS_FALLBACK'))"


def mps_fallback_in_child(code, **env):
    """Runs `code` with only the given MPS fallback variables set; returns the process."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("TORCHDEVICE_MPS_FALLBACK", "PYTORCH_ENABLE_MPS_FALLBACK")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=True)


def test_mps_fallback_switch_reaches_torch_before_it_loads():
    assert mps_fallback_in_child(ASK_TORCH, TORCHDEVICE_MPS_FALLBACK="1").stdout.split() == ["1"]
    assert mps_fallback_in_child(ASK_TORCH).stdout.split() == ["None"]  # off unless asked
    # torch's own variable, when the user set it, wins.
    ran = mps_fallback_in_child(ASK_TORCH, TORCHDEVICE_MPS_FALLBACK="1",
                                PYTORCH_ENABLE_MPS_FALLBACK="0")
    assert ran.stdout.split() == ["0"]


def test_mps_fallback_switch_after_torch_says_it_comes_too_late():
    ran = mps_fallback_in_child("import warnings; warnings.simplefilter('error')\n"
                                "import torch\n"
                                "try:\n"
                                "    import torchdevice\n"
                                "except RuntimeWarning as warning:\n"
                                "    print('warned:', warning)\n",
                                TORCHDEVICE_MPS_FALLBACK="1")
    assert "warned: TORCHDEVICE_MPS_FALLBACK=1 has no effect" in ran.stdout
