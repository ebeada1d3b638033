"""AMP written for CUDA runs on the target: autocast casts there, GradScaler scales, detects
overflow, skips steps and grows/backs off its scale with the target's own tensors."""

import contextlib
import inspect
import warnings

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = requires_cuda_redirect

TORCH2 = int(torch.__version__.split(".")[0]) >= 2


def target_autocasts(dtype, target):
    """Whether torch itself autocasts to `dtype` on the target's device type (no torchdevice)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.autocast(target.type, dtype=dtype)
    return not any("not supported" in str(w.message) for w in caught)


@pytest.fixture
def fresh():
    """A new install: the dtype substitution warning is given once per install."""
    torchdevice.uninstall()
    torchdevice.install()


def autocasts():
    yield "torch.autocast", lambda **kw: torch.autocast("cuda", **kw)
    yield "torch.amp.autocast", lambda **kw: torch.amp.autocast(device_type="cuda", **kw)
    yield "torch.cuda.amp.autocast", lambda **kw: torch.cuda.amp.autocast(**kw)


def entering(name, make, **kwargs):
    """torch >= 2 deprecates torch.cuda.amp.autocast with a FutureWarning of its own."""
    if name == "torch.cuda.amp.autocast" and TORCH2:
        with pytest.warns(FutureWarning, match="deprecated"):
            return make(**kwargs)
    return make(**kwargs)


@pytest.mark.parametrize("name,make", list(autocasts()), ids=[n for n, _ in autocasts()])
def test_float16_autocast_runs_on_the_target(name, make, fresh, target):
    layer = torch.nn.Linear(4, 3).cuda()
    x = torch.randn(2, 4, device="cuda")
    supported = target_autocasts(torch.float16, target)
    expected = torch.float16 if supported else torch.bfloat16
    warns = contextlib.nullcontext() if supported else pytest.warns(UserWarning, match="closest")
    with warns:
        region = entering(name, make, dtype=torch.float16)
    with region:
        out = layer(x)
        assert out.dtype == expected
        assert out.device == target
    assert layer(x).dtype == torch.float32
    # The values are the target's own autocast result, computed in `expected`.
    with torch.autocast(target.type, dtype=expected):
        assert torch.equal(out, layer(x))


def test_the_substitution_is_warned_once_per_install(fresh, target):
    if target_autocasts(torch.float16, target):
        pytest.skip("the target autocasts float16 itself: nothing is substituted")
    with pytest.warns(UserWarning, match="torch.float16.*torch.bfloat16"):
        torch.autocast("cuda", dtype=torch.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.autocast("cuda", dtype=torch.float16)
        torch.autocast("cuda", dtype=torch.float16, enabled=False)


def test_the_default_dtype_is_cudas(fresh, target):
    """autocast('cuda') means float16, even where the target's own default is bfloat16."""
    expected = torch.float16 if target_autocasts(torch.float16, target) else torch.bfloat16
    warns = contextlib.nullcontext() if expected == torch.float16 else pytest.warns(UserWarning)
    a = torch.ones(2, 2, device="cuda")
    with warns:
        region = torch.autocast("cuda")
    with region:
        assert torch.mm(a, a).dtype == expected


OTHER = {torch.float16: torch.bfloat16, torch.bfloat16: torch.float16}


@pytest.mark.parametrize("asked", [torch.float16, torch.bfloat16], ids=str)
def test_a_16_bit_float_is_the_targets_answer(asked, fresh, target):
    """The target's own autocast decides: torch's answer for its device type (the backend's
    get_amp_supported_dtype for a PrivateUse1 one) keeps the dtype or substitutes the other."""
    supported = target_autocasts(asked, target)
    if not supported and not target_autocasts(OTHER[asked], target):
        pytest.skip("the target autocasts neither 16-bit float")
    expected = asked if supported else OTHER[asked]
    a = torch.ones(2, 2, device="cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        region = torch.autocast("cuda", dtype=asked)
    messages = [str(w.message) for w in caught if "torchdevice" in str(w.message)]
    assert len(messages) == (0 if supported else 1), messages
    with region:
        assert torch.mm(a, a).dtype == expected
        with torch.autocast("cuda", enabled=False):
            assert torch.mm(a, a).dtype == torch.float32
        assert torch.mm(a, a).dtype == expected
    assert torch.mm(a, a).dtype == torch.float32


def test_float32_autocast_runs_uncast_as_on_cuda(fresh, target):
    """float32 autocast casts nothing down: where the target cannot take it, the region runs
    uncast (torch 1.x would otherwise reject the dtype even in a disabled region)."""
    if target_autocasts(torch.float32, target):
        pytest.skip("the target autocasts to float32 itself")
    a = torch.ones(2, 2, device="cuda")
    with pytest.warns(UserWarning, match="runs uncast"):
        region = torch.autocast("cuda", dtype=torch.float32)
    with region:
        assert torch.mm(a, a).dtype == torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.autocast("cuda", dtype=torch.float32):  # warned once
            assert torch.mm(a, a).dtype == torch.float32


def test_bad_device_types_are_torchs_own_errors():
    with pytest.raises(RuntimeError, match="device"):
        torch.autocast("tpu-that-does-not-exist")


def test_uninstall_gives_torch_its_classes_back():
    # torchdevice's methods carry torch's names and signatures (functools.wraps), and __wrapped__.
    autocast = torch.amp.autocast_mode.autocast
    assert hasattr(autocast.__init__, "__wrapped__")
    assert "device_type" in inspect.signature(autocast).parameters
    torchdevice.uninstall()
    try:
        assert not hasattr(autocast.__init__, "__wrapped__")
        if TORCH2:
            assert not hasattr(torch.amp.GradScaler.__init__, "__wrapped__")
        else:
            module = torch.cuda.amp.grad_scaler
            assert not hasattr(module.GradScaler.scale, "__wrapped__")
            assert module._MultiDeviceReplicator.__module__ == module.__name__
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            # Torch's own answer again: CUDA autocast does nothing to CPU tensors.
            with torch.autocast("cuda", dtype=torch.float16):
                assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32
    finally:
        torchdevice.install()


def scalers():
    yield "torch.cuda.amp.GradScaler", lambda **kw: torch.cuda.amp.GradScaler(**kw)
    if TORCH2:
        yield "torch.amp.GradScaler('cuda')", lambda **kw: torch.amp.GradScaler("cuda", **kw)
        yield "torch.amp.GradScaler()", lambda **kw: torch.amp.GradScaler(**kw)


def make_scaler(name, make, **kwargs):
    if name == "torch.cuda.amp.GradScaler" and TORCH2:
        with pytest.warns(FutureWarning, match="deprecated"):
            return make(**kwargs)
    return make(**kwargs)


SCALERS = pytest.mark.parametrize("name,make", list(scalers()), ids=[n for n, _ in scalers()])


def one_step(scaler, weight, x, lr=1.0):
    """loss = sum(weight * x), so d loss / d weight = x exactly."""
    optimizer = torch.optim.SGD([weight], lr=lr)
    optimizer.zero_grad()
    loss = (weight * x).sum()
    scaled = scaler.scale(loss)
    scaled.backward()
    scaled_grad = weight.grad.clone()
    scaler.unscale_(optimizer)
    unscaled_grad = weight.grad.clone()
    scaler.step(optimizer)
    scaler.update()
    return scaled, loss, scaled_grad, unscaled_grad


@SCALERS
def test_grad_scaler_scales_unscales_steps_and_grows(name, make, target):
    scaler = make_scaler(name, make, init_scale=8.0, growth_factor=2.0, backoff_factor=0.5,
                         growth_interval=2)
    weight = torch.tensor([1.0, 2.0, 3.0], device="cuda", requires_grad=True)
    x = torch.tensor([0.5, -1.0, 2.0], device="cuda")

    scaled, loss, scaled_grad, unscaled_grad = one_step(scaler, weight, x)
    assert scaled.device == target
    assert scaled.item() == 8.0 * loss.item()
    assert torch.equal(scaled_grad, 8.0 * x)
    assert torch.equal(unscaled_grad, x)
    assert torch.equal(weight.detach().cpu(), torch.tensor([0.5, 3.0, 1.0]))
    assert scaler.get_scale() == 8.0  # one good step of an interval of two

    one_step(scaler, weight, x)
    assert torch.equal(weight.detach().cpu(), torch.tensor([0.0, 4.0, -1.0]))
    assert scaler.get_scale() == 16.0  # two good steps: grown by 2


@SCALERS
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_grad_scaler_skips_the_step_and_backs_off_on_overflow(name, make, bad):
    scaler = make_scaler(name, make, init_scale=8.0, backoff_factor=0.25, growth_interval=1)
    weight = torch.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    x = torch.tensor([1.0, bad], device="cuda")
    one_step(scaler, weight, x)
    assert torch.equal(weight.detach().cpu(), torch.tensor([1.0, 2.0]))  # step skipped
    assert scaler.get_scale() == 2.0
    one_step(scaler, weight, torch.tensor([1.0, 1.0], device="cuda"))
    assert torch.equal(weight.detach().cpu(), torch.tensor([0.0, 1.0]))
    assert scaler.get_scale() == 4.0  # growth_interval=1: grows after each good step


@SCALERS
def test_grad_scaler_scales_nested_outputs(name, make, target):
    scaler = make_scaler(name, make, init_scale=4.0)
    a = torch.ones(2, device="cuda")
    b = torch.full((3,), 2.0, device="cuda")
    scaled = scaler.scale([a, (b, a)])
    assert isinstance(scaled, list) and isinstance(scaled[1], tuple)
    assert torch.equal(scaled[0], 4.0 * a) and scaled[0].device == target
    assert torch.equal(scaled[1][0], 4.0 * b)
    with pytest.raises(ValueError, match="iterable of Tensors"):
        scaler.scale(3.0)


@SCALERS
def test_disabled_scaler_is_the_identity(name, make):
    scaler = make_scaler(name, make, enabled=False)
    loss = torch.ones(1, device="cuda")
    assert scaler.scale(loss) is loss


@SCALERS
def test_grad_scaler_takes_a_new_scale_as_cuda_code_writes_it(name, make, target):
    scaler = make_scaler(name, make, init_scale=8.0)
    weight = torch.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    one_step(scaler, weight, torch.ones(2, device="cuda"))
    # 1.13's docs ask for a torch.cuda.FloatTensor of one element; torch 2 copies the new scale
    # into its 0-dim scale, which only a 0-dim tensor fits (on CUDA as well).
    scaler.update(new_scale=torch.tensor(3.0, device="cuda") if TORCH2
                  else torch.cuda.FloatTensor([3.0]))
    assert scaler.get_scale() == 3.0
    scaler.update(new_scale=0.5)
    assert scaler.get_scale() == 0.5
    # torch's own conditions on a tensor scale still hold: one element, no grad.
    with pytest.raises(AssertionError, match="new_scale should be"):
        scaler.update(new_scale=torch.tensor([1.0, 2.0], device="cuda"))
    with pytest.raises(AssertionError, match="new_scale should be"):
        scaler.update(new_scale=torch.ones(1, device="cuda", requires_grad=True))
