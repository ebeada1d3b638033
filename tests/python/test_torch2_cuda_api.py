"""The rest of torch 2's torch.cuda surface that CUDA scripts touch: attention-kernel selection,
the torch.cuda.amp and torch.amp spellings, and torch.accelerator staying truthful."""

import warnings

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = requires_cuda_redirect

needs_sdpa = pytest.mark.skipif(
    not hasattr(torch.nn.functional, "scaled_dot_product_attention"),
    reason=f"torch {torch.__version__} has no scaled_dot_product_attention",
)


def _qkv():
    torch.manual_seed(0)
    return [torch.randn(2, 2, 5, 8, device="cuda") for _ in range(3)]


@needs_sdpa
def test_sdp_kernel_flags_select_and_attention_runs_on_the_target():
    q, k, v = _qkv()
    expected = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1) @ v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sdp_kernel is deprecated in newer torch
        with torch.backends.cuda.sdp_kernel(enable_flash=False, enable_mem_efficient=False,
                                            enable_math=True):
            assert torch.backends.cuda.flash_sdp_enabled() is False
            assert torch.backends.cuda.math_sdp_enabled() is True
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.backends.cuda.flash_sdp_enabled() is True
    torch.testing.assert_close(out, expected)
    assert out.device == torchdevice.target()
    torch.backends.cuda.enable_mem_efficient_sdp(False)
    try:
        assert torch.backends.cuda.mem_efficient_sdp_enabled() is False
    finally:
        torch.backends.cuda.enable_mem_efficient_sdp(True)


@needs_sdpa
@pytest.mark.skipif(not hasattr(torch.nn, "attention"), reason="torch.nn.attention is torch >= 2.2")
def test_sdpa_kernel_context_runs_on_the_target():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = _qkv()
    with sdpa_kernel(SDPBackend.MATH):
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]):
        again = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, again)
    assert out.device == torchdevice.target()


def test_amp_spellings_agree():
    torchdevice.uninstall()  # a new install: the substitution warning is given once per install
    torchdevice.install()
    x = torch.randn(4, 4, device="cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.cuda.amp.autocast(dtype=torch.bfloat16):
            old = x @ x
    # A target without bfloat16 autocast (MPS before macOS 14) takes float16 and says so.
    substituted = any("using torch.float16" in str(w.message) for w in caught)
    if hasattr(torch, "amp") and hasattr(torch.amp, "autocast"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.amp.autocast("cuda", dtype=torch.bfloat16):
                new = x @ x
        assert new.dtype == old.dtype == (torch.float16 if substituted else torch.bfloat16)
        torch.testing.assert_close(new, old)
    assert old.device == torchdevice.target()


@pytest.mark.skipif(not hasattr(torch, "accelerator"), reason="torch.accelerator is torch >= 2.6")
def test_accelerator_stays_truthful_while_cuda_lands_on_the_target():
    # The machine's real accelerator (the stand-in, MPS) or none: what torch says without us.
    torchdevice.uninstall()
    try:
        has_real = torch.accelerator.is_available()
        real = torch.accelerator.current_accelerator() if has_real else None
    finally:
        torchdevice.install()
    assert torch.accelerator.is_available() == has_real
    if has_real:
        assert torch.accelerator.current_accelerator() == real
        assert real.type == torchdevice.target().type != "cuda"
    assert torch.cuda.is_available() is True
    assert torch.zeros(1, device="cuda").device == torchdevice.target()
