"""The model zoo (zoo.py) trained three ways gives the same numbers: plain torch on the CPU
(torchdevice never imported), torchdevice installed with the models on 'cpu', and the same models
asked for on 'cuda', redirected to the target. Bit for bit where the target is the CPU: every
step's loss and a hash of the raw bytes of every trained parameter and buffer must be identical.
On an accelerator target (the stand-in, MPS) the redirected run trains on the device's own
kernels, which may round differently: its losses and parameter sums must agree within float32's
tolerance, and every tensor must have lived on the target. The runs are separate processes, so
nothing one leaves behind can reach another."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import torchdevice
import zoo
from conftest import (REDIRECTS_CUDA, REPO, SUMMARY, environment_without_torchdevice,
                      target_refuses, without_test_devices)

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(torchdevice.__file__)))

TARGET = torchdevice.target().type
# Bit-exact only where 'cuda' lands on the same CPU kernels the plain run uses.
REDIRECTS_TO_CPU = REDIRECTS_CUDA and TARGET == "cpu"
RTOL, ATOL = 1e-3, 1e-5
# The optimiser state torch keeps on the CPU for a model on CUDA too (unless capturable/fused).
CPU_SCALARS = (".step", ".mu_product")

RUNS = {
    "plain": ["--device", "cpu"],
    "installed": ["--device", "cpu", "--torchdevice"],
    "redirected": ["--device", "cuda", "--torchdevice"],
}

# Known differences, each a torchdevice bug with its reason (strict: fixing it turns these red).
KNOWN = {}

# Cases whose run on an accelerator target (the stand-in) parts from the CPU's by more than
# float32 tolerance, each with the cause found; strict, so a change turns them red. The causes
# are the device's own generator, kernels the stand-in lacks and gradients that are rounding
# noise; normalization and mobilenet were checked by moving the model to the stand-in by hand,
# without torchdevice.
_RNG = ("draws random numbers on the target, whose generator is its own (as CUDA's differs from "
        "the CPU's): equal values are not expected")
_NOISE = ("parts only where a gradient is zero up to rounding, which any other kernel order changes")
KNOWN_ON_ACCELERATOR = {
    "dropout": _RNG, "device_random": _RNG, "cuda_rng_api": _RNG,
    "activations": _RNG + " (nn.RReLU draws its slopes in training)",
    "vision_mobilenet_v3_small": _RNG + " (its classifier's Dropout; equal with dropout=0.0)",
    "embeddings": ("sparse gradients (nn.Embedding(sparse=True), EmbeddingBag) need sparse kernels "
                   "for the device, which the stand-in does not have: torch's own error"),
    "transformer_encoder_inference_fast_path": (
        "the fast path makes nested tensors, which need nested-tensor kernels for the device; the "
        "stand-in has none: torch's own error"),
    **{name: _NOISE + (": only in_proj_bias differs, whose key third has no gradient (softmax "
                       "ignores a shift) and which Adam scales to full steps")
       for name in ("transformer", "transformer_encoder_decoder_stacks")},
    "normalization": _NOISE + (": torch itself, without torchdevice, gives the stand-in other "
                               "gradients (GroupNorm and InstanceNorm take device-generic paths "
                               "there; BatchNorm's affine parameters ahead of GroupNorm have "
                               "gradients near zero), and SGD with cubed losses carries them on"),
}


# Cases whose run on MPS (the emulated MPS) parts from the CPU's for a cause of torch's MPS, each
# checked on the emulated MPS without torchdevice; strict, so a change turns them red.
_MPS_RNG = _RNG + (" (torch's dropout draws with bernoulli_ on MPS, from MPS's generator: "
                   "its fused native_dropout serves CUDA, XPU and PrivateUse1 only)")
_MPS_LACKS = "MPS has no kernel for {} at this torch: torch's own NotImplementedError"
KNOWN_ON_MPS = {
    **{name: _MPS_RNG for name in (
        "lstm_language_model", "gru_bidirectional", "rnn_relu_and_tanh", "multihead_attention",
        "scaled_dot_product_attention", "activation_checkpointing", "vision_squeezenet")},
    "losses": _MPS_LACKS.format("aten::multilabel_margin_loss_forward"),
    "pooling": _MPS_LACKS.format("aten::fractional_max_pool2d"),
    "assorted_layers": _MPS_LACKS.format("aten::channel_shuffle"),
    **{name: ("torch's RNN input check asks torch._C._is_any_autocast_enabled(), which does not "
              "count MPS's autocast: an LSTM fed the region's 16-bit input raises torch's own "
              "ValueError on MPS") for name in ("autocast_bfloat16", "autocast_cuda_default_dtype")},
    "vision_ops": ("torchvision's ops have MPS kernels only in its macOS builds: on the emulated "
                   "MPS they meet MPS's fallback (NotImplementedError)"),
}


# On a target without bfloat16 (MPS before macOS 14) autocast takes
# float16 instead, warning once (README, "On a Mac"): other numbers, by design.
KNOWN_WITHOUT_BFLOAT16 = {
    "autocast_bfloat16": "the target has no bfloat16: its autocast region runs in float16",
}


def environment(name):
    """The plain and installed runs are the CPU reference: no accelerator is loaded there (with
    one, torch itself would treat some calls differently, DataParallel's default device for one);
    the redirected run gets the machine as it is."""
    env = environment_without_torchdevice()
    if name != "redirected":
        env = without_test_devices(env)
    disable = name == "plain"
    env["PYTHONPATH"] = PACKAGE_ROOT
    if disable:  # belt and braces: the plain run never imports it anyway
        env["TORCHDEVICE_DISABLE"] = "1"
    return env


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Runs the three processes side by side; {run: {case: result}}."""
    folder = tmp_path_factory.mktemp("zoo")
    names = [name for name in RUNS if name != "redirected" or REDIRECTS_CUDA]
    # An accelerator's run is compared value by value with plain torch's.
    values = {name: folder / f"{name}.pt" for name in ("plain", "redirected")
              if REDIRECTS_CUDA and not REDIRECTS_TO_CPU}
    processes = {
        name: subprocess.Popen([sys.executable, os.path.join(HERE, "zoo.py"), *RUNS[name],
                                str(folder / f"{name}.json"),
                                *(["--values", str(values[name])] if name in values else [])],
                               cwd=REPO, env=environment(name),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in names}
    found = {}
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{name}: {stderr}"
        found[name] = json.loads((folder / f"{name}.json").read_text())
    for name, path in values.items():
        found[name]["_values"] = torch.load(path, weights_only=False)
    return found


def describe(expected, got):
    """Where two results of one case part: the first step whose loss differs, the tensors."""
    lines = []
    for step, (a, b) in enumerate(zip(expected.get("losses", []), got.get("losses", []))):
        if a != b:
            lines.append(f"step {step}: loss {float.fromhex(a)!r} vs {float.fromhex(b)!r}")
            break
    tensors_a, tensors_b = expected.get("tensors", {}), got.get("tensors", {})
    for name in sorted(set(tensors_a) | set(tensors_b)):
        if tensors_a.get(name) != tensors_b.get(name):
            lines.append(f"{name}: {tensors_a.get(name)} vs {tensors_b.get(name)}")
    for key in ("error", "skipped", "devices", "steps"):
        if expected.get(key) != got.get(key):
            lines.append(f"{key}: {expected.get(key)!r} vs {got.get(key)!r}")
    return "\n".join(lines[:12])


def close(a, b):
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= ATOL + RTOL * abs(b)


# Cases whose float32 results pass through bfloat16 on purpose: the target's autocast casts CUDA's
# op list, plain torch's the CPU's, so the two round in other places. bfloat16's own rtol
# (torch.testing's), and an atol for weights near zero.
BFLOAT16_ROUNDING = {"autocast_bfloat16": dict(rtol=1.6e-2, atol=1e-4)}


def value_difference(want, have, tolerance=None):
    """Why two recorded tensors differ by more than rounding, or None: floating point within
    RTOL/ATOL (torch.testing's own tolerances for 16-bit types), everything else exactly."""
    if want.dtype != have.dtype or want.shape != have.shape:
        return f"{want.dtype}{list(want.shape)} vs {have.dtype}{list(have.shape)}"
    if not (want.is_floating_point() or want.is_complex()):
        return None if torch.equal(want, have) else "differs (compared exactly)"
    if tolerance is None:
        tolerance = ({} if want.dtype in (torch.float16, torch.bfloat16)
                     else dict(rtol=RTOL, atol=ATOL))
    try:
        torch.testing.assert_close(have, want, equal_nan=True, **tolerance)
    except AssertionError as error:
        return " ".join(str(error).split())
    return None


def accelerator_differences(plain, got, plain_values, got_values, tolerance=None):
    """Where a run on an accelerator target parts from plain torch on the CPU by more than
    rounding; a list of lines, empty when they agree."""
    if "skipped" in plain or "error" in plain or "skipped" in got or "error" in got:
        keys = ("skipped", "error")
        return [] if all(plain.get(k) == got.get(k) for k in keys) else [describe(plain, got)]
    found = []
    if TARGET not in got["devices"]:
        found.append(f"tensors on {got['devices']}, none on {TARGET}")
    stray = [name for name, t in got["tensors"].items()
             if t["device"] != TARGET and not name.endswith(CPU_SCALARS)]
    if stray:
        found.append(f"not on {TARGET}: {stray[:6]}")
    if got["steps"] != plain["steps"] or len(got["losses"]) != len(plain["losses"]):
        found.append(f"{got['steps']} steps vs {plain['steps']}")
    for step, (a, b) in enumerate(zip(plain["losses"], got["losses"])):
        if not close(float.fromhex(b), float.fromhex(a)):
            found.append(f"step {step}: loss {float.fromhex(a)!r} vs {float.fromhex(b)!r}")
            break
    if set(plain["tensors"]) != set(got["tensors"]):
        found.append(f"tensors {sorted(set(plain['tensors']) ^ set(got['tensors']))}")
    for name in sorted(set(plain["tensors"]) & set(got["tensors"])):
        difference = value_difference(plain_values[name], got_values[name], tolerance)
        if difference is not None:
            found.append(f"{name}: {difference}")
    return found[:12]


def params():
    for name in zoo.CASES:
        if name in KNOWN and REDIRECTS_TO_CPU:
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN[name])]
        elif name in KNOWN_ON_MPS and REDIRECTS_CUDA and TARGET == "mps":
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_ON_MPS[name])]
        elif name in KNOWN_ON_ACCELERATOR and REDIRECTS_CUDA and not REDIRECTS_TO_CPU:
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_ON_ACCELERATOR[name])]
        elif name in KNOWN_WITHOUT_BFLOAT16 and REDIRECTS_CUDA and target_refuses(torch.bfloat16):
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_WITHOUT_BFLOAT16[name])]
        else:
            marks = []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(params()))
def test_case_trains_identically(results, name):
    plain = results["plain"][name]
    assert "error" not in plain, f"the zoo case itself fails on plain torch: {plain['error']}"
    if "skipped" in plain:
        for run in results.values():  # every run skips for the same reason
            assert run[name] == plain, describe(plain, run[name])
        pytest.skip(plain["skipped"])
    assert plain["devices"] == ["cpu"] and len(plain["losses"]) == plain["steps"], plain
    for run_name, run in results.items():
        if run_name == "redirected" and not REDIRECTS_TO_CPU:
            found = accelerator_differences(plain, run[name], results["plain"]["_values"][name],
                                            run["_values"][name], BFLOAT16_ROUNDING.get(name))
            assert not found, f"on {TARGET}, differs from plain:\n" + "\n".join(found)
        else:
            assert run[name] == plain, f"{run_name} differs from plain:\n{describe(plain, run[name])}"


@pytest.mark.skipif(not REDIRECTS_CUDA, reason="CUDA is available here, so it is never redirected")
def test_redirected_run_really_ran_on_the_target(results):
    """The 'cuda' run asked for CUDA everywhere and its tensors all lived on the target."""
    redirected = results["redirected"]
    assert redirected["_process"]["torchdevice"] and not results["plain"]["_process"]["torchdevice"]
    ran = [name for name in zoo.CASES
           if "devices" in redirected[name] and name not in KNOWN_ON_ACCELERATOR]
    assert ran and all(TARGET in redirected[name]["devices"] for name in ran)
    assert all(t["device"] == TARGET for name in ran
               for key, t in redirected[name]["tensors"].items() if not key.endswith(CPU_SCALARS))


def test_zoo_summary(results):
    """How much the zoo covers on this torch, printed at the end of the pytest run."""
    plain = results["plain"]
    trained = [name for name in zoo.CASES if plain[name].get("steps")]
    summary = (f"model zoo on torch {torch.__version__}: {len(zoo.CASES)} cases, "
               f"{len(trained)} trained, {sum(plain[n]['steps'] for n in trained)} optimiser steps, "
               f"{sum(len(plain[n].get('tensors', {})) for n in zoo.CASES)} tensors compared per "
               f"run, {sum('skipped' in plain[n] for n in zoo.CASES)} skipped, "
               f"runs compared: {', '.join(results)}")
    if "redirected" in results and not REDIRECTS_TO_CPU:
        exact = sum((results["redirected"][n].get("losses"), results["redirected"][n].get("tensors"))
                    == (plain[n]["losses"], plain[n]["tensors"]) for n in trained)
        summary += f"; on {TARGET}: {exact} of {len(trained)} trained cases bit for bit"
    SUMMARY.append(summary)
    assert len(trained) >= 30
