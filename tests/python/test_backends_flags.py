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


@pytest.mark.parametrize("owner,name", FLAGS, ids=lambda f: f if isinstance(f, str) else "")
def test_flag_round_trips(owner, name):
    if not hasattr(owner, name):
        pytest.skip(f"this torch has no {name}")
    original = getattr(owner, name)
    try:
        setattr(owner, name, not original)
        assert getattr(owner, name) is (not original)
        setattr(owner, name, original)
        assert getattr(owner, name) is original
    finally:
        setattr(owner, name, original)


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
