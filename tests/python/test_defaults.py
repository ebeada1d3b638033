"""Default devices set to CUDA land on the target."""

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = requires_cuda_redirect

requires_default_device = pytest.mark.skipif(
    not hasattr(torch, "set_default_device"), reason="torch.set_default_device needs torch >= 2"
)


@requires_default_device
@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda")], ids=str)
def test_set_default_device_cuda_lands_on_the_target(device, target):
    torch.set_default_device(device)
    try:
        assert torch.get_default_device() == target
        assert torch.zeros(2).device == target
        assert torch.nn.Linear(2, 2).weight.device == target
        assert torch.tensor([1.0, 2.0]).device == target
    finally:
        torch.set_default_device(None)
    assert torch.zeros(2).device == torch.device("cpu")


@requires_default_device
def test_default_device_set_while_installed_survives_uninstall_as_the_target(target):
    """The default holds the device torch.device('cuda') resolved to: the target, a real one."""
    torch.set_default_device("cuda")
    try:
        torchdevice.uninstall()
        assert torch.zeros(1).device == target
    finally:
        torch.set_default_device(None)
        torchdevice.install()
