"""Pinning for a redirected accelerator: a target with pinned host memory (torch's pinned
allocator for its device) pins; one without (the CPU, MPS before its pinned allocator handed out host memory) gets a same-layout copy,
as torch's pinning makes, and is_pinned() says False. DataLoader(pin_memory=True) works on
either, without a warning per batch."""

import inspect
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = requires_cuda_redirect


def torch_pins():
    """Whether torch itself, without torchdevice, pins host memory here (for its accelerator)."""
    torchdevice.uninstall()
    try:
        return torch.ones(2).pin_memory().is_pinned()
    except (RuntimeError, NotImplementedError):
        return False
    finally:
        torchdevice.install()


def test_pin_memory_keeps_the_layout_and_says_whether_it_pinned():
    pins = torch_pins()
    source = torch.arange(12.0).reshape(3, 4).t()
    pinned = source.pin_memory()
    assert torch.equal(pinned, source)
    assert pinned.stride() == source.stride()
    assert pinned.data_ptr() != source.data_ptr()
    assert pinned.device.type == "cpu"  # pinned memory is host memory, for any target
    assert pinned.is_pinned() == pins
    assert not source.is_pinned()
    pinned.add_(1)  # a copy, as a pinned tensor is: the source is untouched
    assert torch.equal(source, torch.arange(12.0).reshape(3, 4).t())


def test_non_blocking_copies_land_on_the_target(target):
    source = torch.randn(5).pin_memory()
    for moved in (source.to("cuda", non_blocking=True), source.cuda(non_blocking=True)):
        assert moved.device == target
        torch.cuda.synchronize()
        assert torch.equal(moved.cpu(), source)


def warns_of_no_accelerator():
    """Newer torch's DataLoader asks torch.accelerator where to pin, which truthfully has none
    on a CPU-only machine, and warns; older ones (1.13, 2.6) ask torch.cuda, which answers for
    the target."""
    accelerator = getattr(torch, "accelerator", None)
    asks_accelerator = "torch.accelerator" in inspect.getsource(torch.utils.data.dataloader)
    return asks_accelerator and accelerator is not None and not accelerator.is_available()


@pytest.mark.parametrize("workers", [0, 2])
def test_data_loader_with_pin_memory(workers, target):
    pins = torch_pins()
    data = torch.arange(48.0).reshape(24, 2)
    labels = torch.arange(24)
    dataset = TensorDataset(data, labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader = DataLoader(dataset, batch_size=4, pin_memory=True, num_workers=workers)
        batches = list(loader)
    # Python 3.13 warns when a process with threads (torch's own pools) forks a worker.
    messages = [str(w.message) for w in caught if "multi-threaded" not in str(w.message)]
    # At most torch's own warning for the whole loader, never one per batch.
    assert len(messages) == (1 if warns_of_no_accelerator() else 0), messages
    assert len(batches) == 6
    for i, (x, y) in enumerate(batches):
        assert x.device.type == "cpu"
        assert x.is_pinned() == (pins and not warns_of_no_accelerator())
        x = x.to("cuda", non_blocking=True)
        assert x.device == target
        assert torch.equal(x.cpu(), data[4 * i : 4 * i + 4])
        assert torch.equal(y, labels[4 * i : 4 * i + 4])


def test_uninstalled_pinning_is_torchs_own():
    """Without torchdevice torch pins for itself or refuses; the copy never remains."""
    pins = torch_pins()
    torchdevice.uninstall()
    try:
        if pins:
            assert torch.ones(2).pin_memory().is_pinned()
        else:
            with pytest.raises((RuntimeError, NotImplementedError)):
                torch.ones(2).pin_memory()
    finally:
        torchdevice.install()
    assert torch.equal(torch.ones(2).pin_memory(), torch.ones(2))
