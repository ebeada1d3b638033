"""Fused optimizers asked for by CUDA code (Adam(fused=True), AdamW, SGD, Adagrad: whichever this
torch gives a `fused` argument) train on any target: with the target's fused kernel where it has
one, else unfused with one warning per class, computing the same update as plain torch."""

import copy
import inspect
import json
import warnings

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect, run_python

FUSABLE = [cls for cls in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD,
                           torch.optim.Adagrad)
           if "fused" in inspect.signature(cls.__init__).parameters]
SETTINGS = {"SGD": dict(lr=0.1, momentum=0.9, weight_decay=1e-2)}


def make(cls, params, **kwargs):
    return cls(params, **SETTINGS.get(cls.__name__, dict(lr=1e-2, weight_decay=1e-2)), **kwargs)


def train(model, optimizer, device, steps=3):
    data = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 4, generator=data).to(device)
        y = torch.randn(8, 3, generator=data).to(device)
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return [p.detach().cpu() for p in model.parameters()]


def plain_cpu(cls, model):
    """What plain torch computes on the CPU: fused where it has a fused kernel for the CPU (2.4+),
    else the same update unfused (torch 1.13's fused Adam is CUDA's alone). Uninstalled: on the
    CPU target, CPU parameters are the target's."""
    torchdevice.uninstall()
    try:
        fused = copy.deepcopy(model)
        return train(fused, make(cls, fused.parameters(), fused=True), "cpu")
    except RuntimeError:
        unfused = copy.deepcopy(model)
        return train(unfused, make(cls, unfused.parameters()), "cpu")
    finally:
        torchdevice.install()


@requires_cuda_redirect
@pytest.mark.parametrize("cls", FUSABLE, ids=lambda cls: cls.__name__)
def test_cuda_code_asking_for_a_fused_optimizer_trains_as_plain_torch(cls, target):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    want = plain_cpu(cls, model)
    on_target = copy.deepcopy(model).cuda()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said once per process: test_said_once_per_class
        optimizer = make(cls, on_target.parameters(), fused=True)
    fused = optimizer.param_groups[0]["fused"]
    got = train(on_target, optimizer, "cuda")
    assert all(p.device == target for p in on_target.parameters())
    for p, q in zip(got, want):
        torch.testing.assert_close(p, q)
    # A state_dict from CUDA's fused optimizer says fused=True: loaded, training goes on as before.
    state = copy.deepcopy(optimizer.state_dict())
    for group in state["param_groups"]:
        group["fused"] = True
    optimizer.load_state_dict(state)
    assert optimizer.param_groups[0]["fused"] is fused
    train(on_target, optimizer, "cuda", steps=1)


@requires_cuda_redirect
def test_said_once_per_class_where_the_update_runs_unfused():
    code = f"""
import json, warnings, torch, torchdevice
found = {{}}
for name in {[cls.__name__ for cls in FUSABLE]!r}:
    cls = getattr(torch.optim, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizers = [cls([torch.nn.Parameter(torch.ones(2, device="cuda"))], lr=0.1, fused=True)
                      for _ in range(2)]
    found[name] = [optimizers[1].param_groups[0]["fused"],
                   [str(w.message) for w in caught if "(fused=True)" in str(w.message)]]
print(json.dumps(found))
"""
    found = json.loads(run_python(code).stdout)
    for name, (fused, said) in found.items():
        if fused:  # the target's own fused kernel
            assert said == [], name
        else:
            assert len(said) == 1, (name, said)
            assert said[0].startswith(f"torchdevice: {name}(fused=True): torch "), said
            target = torchdevice.target().type
            assert f"has no fused {name} for {target}, where torchdevice runs 'cuda' work" in said[0]


@requires_cuda_redirect
def test_a_fused_request_with_torchs_own_error_keeps_it():
    """What CUDA refuses too (fused with differentiable, non-float parameters) is torch's error."""
    cls = FUSABLE[0]
    weight = torch.nn.Parameter(torch.ones(3, device="cuda"))
    with pytest.raises(RuntimeError, match="differentiable"):
        cls([weight], fused=True, differentiable=True)
    integers = torch.ones(3, dtype=torch.int64, device="cuda")
    integers.grad = torch.ones_like(integers)
    with pytest.raises(RuntimeError, match="floating point"):  # at construction, or first step
        cls([integers], fused=True).step()


def test_uninstall_restores_the_constructors():
    def own(cls):
        init = cls.__dict__["__init__"]
        return inspect.isfunction(init) and not hasattr(init, "__wrapped__")
    torchdevice.uninstall()
    try:
        assert all(own(cls) for cls in FUSABLE)
    finally:
        torchdevice.install()
    if "cuda" in torchdevice.redirected():
        assert not any(own(cls) for cls in FUSABLE)
