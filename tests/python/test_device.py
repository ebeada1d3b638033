"""torch.device: the real type's constructor answers with the target for redirected types."""

import copy
import pickle

import pytest
import torch

from conftest import REDIRECTS_CUDA, REDIRECTS_MPS, requires_cuda_redirect, requires_real_cuda

SPELLINGS = (
    [("cuda",), ("cuda:0",), ("cuda:1",), ("cuda", 1), ("cuda", 0)] if REDIRECTS_CUDA else []
) + ([("mps",), ("mps:0",)] if REDIRECTS_MPS else [])


@pytest.mark.parametrize("args", SPELLINGS, ids=str)
def test_redirected_spellings_give_the_target(args, target):
    device = torch.device(*args)
    assert device == target
    assert type(device) is torch.device
    assert isinstance(device, torch.device)


@requires_cuda_redirect
def test_keyword_spelling(target):
    assert torch.device(type="cuda", index=2) == target


@requires_cuda_redirect
def test_bare_index_is_a_cuda_device(target):
    assert torch.device(0) == target
    assert torch.device(3) == target
    with pytest.raises(RuntimeError, match="negative"):
        torch.device(-1)


def test_cpu_and_meta_are_untouched():
    assert torch.device("cpu").type == "cpu"
    assert torch.device("cpu", 0) == torch.device("cpu:0")
    assert torch.device("meta").type == "meta"


@requires_cuda_redirect
def test_consistent_with_tensor_devices_pickling_and_hashing(target):
    device = torch.device("cuda")
    tensor = torch.zeros(1, device="cuda")
    assert tensor.device == device
    assert {device: "x"}[tensor.device] == "x"
    assert pickle.loads(pickle.dumps(device)) == device
    assert copy.deepcopy(device) == device
    assert repr(device) == repr(target)


@requires_cuda_redirect
@pytest.mark.parametrize("bad", ["cuda:-1", "cuda:x", "gpu", "cuda:", "cuda:0:1", ""])
def test_malformed_strings_are_torch_errors_naming_the_value(bad):
    with pytest.raises(RuntimeError) as raised:
        torch.device(bad)
    if bad:
        assert bad in str(raised.value)


@requires_cuda_redirect
def test_negative_index_is_an_error():
    with pytest.raises(RuntimeError, match="negative"):
        torch.device("cuda", -1)


@requires_real_cuda
def test_cuda_machine_keeps_cuda_and_sends_mps_to_cuda():
    assert torch.device("cuda").type == "cuda"
    assert torch.zeros(1, device="cuda").device.type == "cuda"
    assert torch.device("mps") == torch.device("cuda", 0)
    assert torch.zeros(1, device="mps").device == torch.device("cuda", 0)
