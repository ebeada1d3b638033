"""Legacy CUDA tensor types and storages land on the target."""

import pytest
import torch

import torchdevice
from conftest import redirected_dtype, requires_cuda_redirect, run_python, target_refuses

pytestmark = requires_cuda_redirect

LEGACY = [
    ("FloatTensor", torch.float32),
    ("DoubleTensor", torch.float64),
    ("HalfTensor", torch.float16),
    ("BFloat16Tensor", torch.bfloat16),
    ("LongTensor", torch.int64),
    ("IntTensor", torch.int32),
    ("ShortTensor", torch.int16),
    ("CharTensor", torch.int8),
    ("ByteTensor", torch.uint8),
    ("BoolTensor", torch.bool),
]


@pytest.mark.parametrize("name,dtype", LEGACY)
def test_legacy_constructors(name, dtype, target):
    cls = getattr(torch.cuda, name)
    if target_refuses(dtype) and dtype != torch.float64:
        with pytest.raises((RuntimeError, TypeError), match="BFloat16"):
            cls(2, 3)
        return
    dtype = redirected_dtype(dtype)
    empty = cls(2, 3)
    assert empty.shape == (2, 3) and empty.dtype == dtype and empty.device == target
    data = cls([1, 0, 1])
    assert data.dtype == dtype and data.device == target
    assert data.tolist() == torch.tensor([1, 0, 1], dtype=dtype).tolist()


def test_type_conversion_by_name_and_by_class(target):
    x = torch.arange(4, dtype=torch.int64)
    y = x.type("torch.cuda.FloatTensor")
    assert y.dtype == torch.float32 and y.device == target
    assert torch.equal(y.cpu(), torch.tensor([0.0, 1.0, 2.0, 3.0]))
    z = x.type(torch.cuda.DoubleTensor)
    assert z.dtype == redirected_dtype(torch.float64) and z.device == target
    k = x.type(dtype="torch.cuda.HalfTensor")
    assert k.dtype == torch.float16
    # Everything else is torch's own method, unchanged.
    assert x.type() == "torch.LongTensor"
    assert x.type(torch.float32).dtype == torch.float32
    assert x.type("torch.DoubleTensor").dtype == torch.float64
    with pytest.raises((RuntimeError, ValueError)):
        x.type("torch.cuda.NoSuchTensor")


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated:UserWarning")
def test_storages_land_on_the_target(target):
    s = torch.cuda.FloatStorage(3)
    assert s.device == target and s.size() == 3
    moved = torch.ones(2).storage().cuda()
    assert moved.device == target and list(moved) == [1.0, 1.0]


def test_uninstall_restores_torch_errors():
    result = run_python(
        "import torch, torchdevice\n"
        "torchdevice.uninstall()\n"
        "try:\n"
        "    torch.cuda.FloatTensor(2)\n"
        "except TypeError as e:\n"
        "    print('TypeError', e)\n"
        "assert torch.ones(2).type('torch.DoubleTensor').dtype == torch.float64\n"
        "assert 'type' not in torch.Tensor.__dict__\n"
    )
    assert "not available" in result.stdout


@pytest.mark.filterwarnings("ignore:torch.set_default_tensor_type\\(\\) is deprecated")
@pytest.mark.parametrize("spelling", ["type", "name"])
def test_default_tensor_type_cuda_lands_on_the_target(spelling, target):
    cuda_type = torch.cuda.DoubleTensor if spelling == "type" else "torch.cuda.DoubleTensor"
    if target.type != "cpu":
        with pytest.raises(TypeError, match="set_default_device"):
            torch.set_default_tensor_type(cuda_type)
        return
    try:
        torch.set_default_tensor_type(cuda_type)
        made = torch.zeros(2)
        assert made.dtype == torch.float64 and made.device == target
    finally:
        torch.set_default_tensor_type(torch.FloatTensor)
    assert torch.zeros(2).dtype == torch.float32
