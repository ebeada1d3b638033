"""Pinning for a redirected accelerator: the target reads all of its own memory directly, so
pin_memory() gives a same-layout copy (as torch's pinning does) and is_pinned() stays False."""

import contextlib
import inspect

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = requires_cuda_redirect


def test_pin_memory_copies_with_the_same_layout(target):
    source = torch.arange(12.0).reshape(3, 4).t()
    pinned = source.pin_memory()
    assert torch.equal(pinned, source)
    assert pinned.stride() == source.stride()
    assert pinned.data_ptr() != source.data_ptr()
    assert pinned.device == target
    assert not pinned.is_pinned()
    pinned.add_(1)  # a copy, as a pinned tensor is: the source is untouched
    assert torch.equal(source, torch.arange(12.0).reshape(3, 4).t())


def test_non_blocking_copies_land_on_the_target(target):
    source = torch.randn(5).pin_memory()
    for moved in (source.to("cuda", non_blocking=True), source.cuda(non_blocking=True)):
        assert moved.device == target
        assert torch.equal(moved, source)


def no_accelerator_warning():
    """Newer torch's DataLoader asks torch.accelerator where to pin, which truthfully has none
    here, and warns; older ones (1.13, 2.6) ask torch.cuda, which answers for the target."""
    accelerator = getattr(torch, "accelerator", None)
    asks_accelerator = "torch.accelerator" in inspect.getsource(torch.utils.data.dataloader)
    if asks_accelerator and accelerator is not None and not accelerator.is_available():
        return pytest.warns(UserWarning, match="no accelerator")
    return contextlib.nullcontext()


# Python 3.13 warns when a process with threads (torch's own pools) forks a worker.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@pytest.mark.parametrize("workers", [0, 2])
def test_data_loader_with_pin_memory(workers, target):
    data = torch.arange(24.0).reshape(12, 2)
    labels = torch.arange(12)
    dataset = TensorDataset(data, labels)
    with no_accelerator_warning():
        loader = DataLoader(dataset, batch_size=4, pin_memory=True, num_workers=workers)
        batches = list(loader)
    assert len(batches) == 3
    for i, (x, y) in enumerate(batches):
        x = x.to("cuda", non_blocking=True)
        assert x.device == target
        assert torch.equal(x, data[4 * i : 4 * i + 4])
        assert torch.equal(y, labels[4 * i : 4 * i + 4])


def test_pinning_is_torchs_own_again_after_uninstall():
    torchdevice.uninstall()
    try:
        with pytest.raises((RuntimeError, NotImplementedError)):
            torch.ones(2).pin_memory()
    finally:
        torchdevice.install()
    assert torch.equal(torch.ones(2).pin_memory(), torch.ones(2))
