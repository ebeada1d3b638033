"""non_blocking=True copies from unpinned host memory must not corrupt: on a target that may read
the source after the copy returned (MPS: pytorch#139550), a redirected host-to-target copy is
completed before returning. Tested with the emulated MPS, whose non_blocking copies read their
source only when its stream gets there."""
import sys

import pytest
import torch

import torchdevice
from conftest import DEFERS_COPIES, REDIRECTS_CUDA, keep_target_busy

requires_deferred_copies = pytest.mark.skipif(
    not DEFERS_COPIES,
    reason="needs a target with deferred copies (the emulated MPS)")
pytestmark = pytest.mark.skipif(not REDIRECTS_CUDA, reason="CUDA is not redirected here")

N = 1 << 16


def source():
    return torch.arange(N, dtype=torch.float32)


def busy_stream():
    """Queues 50 ms of work first, so a copy queued behind it reads its source late."""
    keep_target_busy(50)


@requires_deferred_copies
def test_the_hazard_is_real_for_a_copy_torchdevice_does_not_redirect():
    """copy_ into a tensor already on the target is the target's own work: left to torch, it
    shows what an uncompleted copy does (and that these tests can fail). torch.cuda.synchronize()
    must return while the device's worker drops its reference to `dst` (a tensor with a Python
    object, which needs the GIL): waiting with the GIL held deadlocked here."""
    src = source()
    dst = torch.empty(N, device=torchdevice.target())
    busy_stream()
    dst.copy_(src, non_blocking=True)
    src.fill_(-1.0)
    torch.cuda.synchronize()
    assert torch.equal(dst.cpu(), torch.full((N,), -1.0))


COPIES = {
    ".to('cuda', non_blocking=True)": lambda t: t.to("cuda", non_blocking=True),
    ".to('cuda', None, True)": lambda t: t.to("cuda", None, True),
    ".to(device=, dtype=, non_blocking=)": lambda t: t.to(device="cuda", dtype=torch.float32,
                                                          non_blocking=True),
    ".cuda(non_blocking=True)": lambda t: t.cuda(non_blocking=True),
    ".cuda(0, True)": lambda t: t.cuda(0, True),
}


@requires_deferred_copies
@pytest.mark.parametrize("copy", COPIES.values(), ids=COPIES.keys())
def test_a_source_changed_right_after_the_copy_does_not_show(copy, target):
    src = source()
    busy_stream()
    dst = copy(src)
    src.fill_(-1.0)
    assert dst.device == target
    assert torch.equal(dst.cpu(), source())


@requires_deferred_copies
@pytest.mark.parametrize("copy", COPIES.values(), ids=COPIES.keys())
def test_a_source_freed_right_after_the_copy_does_not_show(copy, target):
    busy_stream()
    dst = copy(source())  # the only reference to the source is gone when this returns
    for _ in range(8):
        torch.full((N,), 7.0)  # reuse what the allocator freed
    assert not torch.isnan(dst.cpu()).any()
    assert torch.equal(dst.cpu(), source())


@requires_deferred_copies
def test_module_to_cuda_non_blocking(target):
    model = torch.nn.Linear(256, 256)
    expected = {name: p.detach().clone() for name, p in model.named_parameters()}
    busy_stream()
    model.to("cuda", non_blocking=True)
    for name, p in model.named_parameters():
        assert p.device == target
        assert torch.equal(p.detach().cpu(), expected[name]), name


@requires_deferred_copies
@pytest.mark.parametrize("wait", ["event", "stream"])
def test_waiting_on_an_event_or_stream_lets_the_device_finish(wait):
    src = source()
    dst = torch.empty(N, device=torchdevice.target())
    busy_stream()
    dst.copy_(src, non_blocking=True)
    if wait == "event":
        done = torch.cuda.Event()
        done.record()
        done.synchronize()
        assert done.query()
    else:
        torch.cuda.current_stream().synchronize()
    assert torch.equal(dst.cpu(), source())


@requires_deferred_copies
def test_uninitialized_parameters_still_accept_the_wrapped_methods(target):
    """Lazy modules' parameters refuse Tensor methods not on torch's allowed list; the wrapped
    .to/.cuda join it and give what torch's own blocking move to the target gives (on a
    PrivateUse1 device torch itself returns a plain tensor there: test_module_db.py)."""
    own = type(torch.nn.parameter.UninitializedParameter().to(target))
    for move in (lambda p: p.to("cuda", non_blocking=True), lambda p: p.cuda(non_blocking=True)):
        assert type(move(torch.nn.parameter.UninitializedParameter())) is own


@requires_deferred_copies
def test_float64_sources_narrowed_on_the_way_are_completed_too(target):
    torchdevice.install(float64="auto")
    src = torch.arange(N, dtype=torch.float64)
    busy_stream()
    dst = src.to("cuda", non_blocking=True)
    src.fill_(-1.0)
    assert dst.dtype == torch.float32
    assert torch.equal(dst.cpu(), torch.arange(N, dtype=torch.float32))


@pytest.mark.skipif(hasattr(torch, "standin") or "mps" in str(torchdevice.target()),
                    reason="the rule applies on this target (tested above)")
def test_targets_that_never_defer_leave_tensor_to_as_torch_has_it():
    """The CPU (and CUDA) complete such copies themselves: nothing is wrapped, nothing costs."""
    assert "to" not in vars(torch.Tensor)


@requires_deferred_copies
def test_uninstall_gives_torch_its_own_to_back():
    assert "to" in vars(torch.Tensor)
    torchdevice.uninstall()
    try:
        assert "to" not in vars(torch.Tensor)
        assert torch.Tensor.to is torch._C.TensorBase.to
    finally:
        torchdevice.install()
