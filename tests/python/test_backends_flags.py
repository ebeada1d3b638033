"""torch.backends.cuda / cudnn flags stay settable and readable with torchdevice installed."""

import pytest
import torch

FLAGS = [
    (torch.backends.cuda.matmul, "allow_tf32"),
    (torch.backends.cuda.matmul, "allow_fp16_reduced_precision_reduction"),
    (torch.backends.cudnn, "benchmark"),
    (torch.backends.cudnn, "deterministic"),
    (torch.backends.cudnn, "enabled"),
    (torch.backends.cudnn, "allow_tf32"),
]


def compute():
    """A matmul and a convolution on 'cuda': what the flags are about on CUDA."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 64, generator=g), torch.randn(64, 64, generator=g)
    x, w = torch.randn(1, 3, 16, 16, generator=g), torch.randn(4, 3, 3, 3, generator=g)
    return [(a.cuda() @ b.cuda()).cpu(),
            torch.nn.functional.conv2d(x.cuda(), w.cuda()).cpu()]


@pytest.mark.parametrize("owner,name", FLAGS, ids=lambda f: f if isinstance(f, str) else "")
def test_flag_is_settable_and_changes_nothing_the_target_computes(owner, name):
    """CUDA code sets these (TF32, cuDNN benchmark): they read back as set, and the target, which
    has neither TF32 nor cuDNN, computes exactly what it computes without them."""
    if not hasattr(owner, name):
        pytest.skip(f"this torch has no {name}")
    baseline = compute()
    original = getattr(owner, name)
    try:
        setattr(owner, name, not original)
        assert getattr(owner, name) is (not original)
        for got, want in zip(compute(), baseline):
            assert torch.equal(got, want), name
    finally:
        setattr(owner, name, original)
    assert getattr(owner, name) is original


def test_cudnn_flags_context_and_queries():
    with torch.backends.cudnn.flags(enabled=False, benchmark=True, deterministic=True):
        assert torch.backends.cudnn.enabled is False
        assert torch.backends.cudnn.benchmark is True
        assert torch.backends.cudnn.deterministic is True
        x = torch.nn.functional.conv2d(
            torch.ones(1, 1, 4, 4, device="cuda"), torch.ones(1, 1, 3, 3, device="cuda")
        )
        assert torch.equal(x.cpu(), torch.full((1, 1, 2, 2), 9.0))
    # The truth for a target without cuDNN.
    assert torch.backends.cudnn.is_available() is False
    assert torch.backends.cuda.is_built() == (torch.version.cuda is not None)
