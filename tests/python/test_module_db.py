"""torch's own module database, every entry: its float32 training samples made on 'cuda' under
torchdevice, run forward and backward, give bit for bit what the same samples made on 'cpu' give
in a process that never imported torchdevice (outputs, input and parameter gradients, buffers).
module_sweep.py does the work in each process; this compares the two files."""
import os
import re
import subprocess
import sys

import pytest
import torch

import torchdevice
from conftest import (REDIRECTS_CUDA, REPO, SUMMARY, environment_without_torchdevice,
                      target_refuses, without_test_devices)
from zoo import bits

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(torchdevice.__file__)))

pytestmark = pytest.mark.skipif(not REDIRECTS_CUDA, reason="CUDA is available, never redirected")

TARGET = torchdevice.target().type
# Bit for bit where 'cuda' lands on the CPU kernels the plain run uses; on an accelerator (the
# stand-in, MPS) its own kernels may round differently, within float32's tolerance.
EXACT = TARGET == "cpu"

# Entries whose samples differ, with the reason; an entry listed here that matches
# fails the test, so the list cannot go stale.
KNOWN = {}

# On a target without float64 (MPS), where torchdevice's float64
# policy narrows what is redirected and torch itself asks for float64 (strict, as KNOWN).
KNOWN_WITHOUT_FLOAT64 = {
    **{f"nn_BatchNorm{n}d": "torch's batch_norm on an empty batch asks the device for float64, "
                            "which it refuses, with or without torchdevice" for n in (1, 2, 3)},
    **{f"nn_FractionalMaxPool{n}d": "the samples draw _random_samples as float64 on 'cuda': "
                                    "narrowed to float32 there, other numbers" for n in (2, 3)},
}
# Not on MPS: torch accumulates MPS's float32 in float32 (at::toAccumulateType), so an empty batch
# asks for no float64 there, and MPS lacks fractional_max_pool (counted below).
if target_refuses(torch.float64) and TARGET != "mps":
    KNOWN = {**KNOWN, **KNOWN_WITHOUT_FLOAT64}

# On an accelerator target: torch's Module._apply keeps a parameter's class only where the
# device's tensors can take its data (torch._has_compatible_shallow_copy_type); for the stand-in's
# PrivateUse1 tensors it wraps the moved tensor in a new Parameter, so a lazy module's weight stays
# empty, as it does without torchdevice. Entries whose name starts so are expected to differ there.
LAZY = "nn_Lazy"


def sweep(tmp_path, name, args):
    env = environment_without_torchdevice()
    if name == "plain":  # the CPU reference: no accelerator loaded
        env = without_test_devices(env)
    env["PYTHONPATH"] = PACKAGE_ROOT
    out = tmp_path / f"{name}.pt"
    return out, subprocess.Popen([sys.executable, os.path.join(HERE, "module_sweep.py"), *args,
                                  str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)


# MPS's own refusal of an op it has no kernel for (torch's MPS fallback; the emulated MPS's list of
# them is generated from torch's native_functions.yaml): torch's limit there, not torchdevice's.
MPS_LACKS = re.compile(r"NotImplementedError: The operator '([\w:.]+)' is not currently "
                       r"implemented for the MPS device")


def mps_lacks(error):
    """The op an error says MPS lacks, on the MPS target; else None."""
    found = MPS_LACKS.match(error or "") if TARGET == "mps" else None
    return found and found.group(1)


def differences(plain, redirected, lacking=None):
    """What parts one entry's two runs, as lines; empty when they agree bit for bit. Samples that
    meet an op MPS lacks are added to `lacking` instead."""
    if "error" not in plain and mps_lacks(redirected.get("error")):
        lacking.add(mps_lacks(redirected["error"]))
        return []
    if "error" in plain or "error" in redirected:
        return [] if plain.get("error") == redirected.get("error") else \
            [f"{plain.get('error')!r} vs {redirected.get('error')!r}"]
    if len(plain["samples"]) != len(redirected["samples"]):
        return [f"{len(plain['samples'])} samples vs {len(redirected['samples'])}"]
    found = []
    for i, (a, b) in enumerate(zip(plain["samples"], redirected["samples"])):
        where = f"sample {i} ({a['desc'] or 'no desc'})"
        if "error" not in a and mps_lacks(b.get("error")):
            lacking.add(mps_lacks(b["error"]))
            continue
        if "error" in a or "error" in b:
            if a.get("error") != b.get("error"):
                found.append(f"{where}: {a.get('error')!r} vs {b.get('error')!r}")
            continue
        if b["devices"] != [TARGET]:
            found.append(f"{where}: redirected tensors on {b['devices']}, not {TARGET}")
        for key in sorted(set(a["tensors"]) | set(b["tensors"])):
            x, y = a["tensors"].get(key), b["tensors"].get(key)
            if x is None or y is None or x.dtype != y.dtype or x.shape != y.shape or \
                    not (bits(x) == bits(y) if EXACT else
                         torch.allclose(x, y, rtol=1e-4, atol=1e-5, equal_nan=True)):
                found.append(f"{where}: {key} differs")
    return found


def test_module_db_on_redirected_cuda_matches_plain_cpu(tmp_path):
    runs = {"plain": sweep(tmp_path, "plain", ["--device", "cpu"]),
            "redirected": sweep(tmp_path, "redirected", ["--device", "cuda", "--torchdevice"])}
    loaded = {}
    for name, (out, process) in runs.items():
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{name}: {stderr}"
        loaded[name] = torch.load(out, weights_only=True)
    plain, redirected = loaded["plain"], loaded["redirected"]
    assert not plain["torchdevice"] and redirected["torchdevice"]
    assert list(plain["modules"]) == list(redirected["modules"])

    broken = {name: entry["error"] for name, entry in plain["modules"].items() if "error" in entry}
    assert not broken, f"the database's own samples fail on plain torch: {broken}"
    lacking = set()
    found = {name: differences(entry, redirected["modules"][name], lacking)
             for name, entry in plain["modules"].items()}
    unexpected = {name: lines[:5] for name, lines in found.items()
                  if lines and name not in KNOWN and (EXACT or not name.startswith(LAZY))}
    fixed = [name for name in KNOWN if not found.get(name)]
    samples = sum(len(entry["samples"]) for entry in plain["modules"].values())
    failing = sum("error" in s for entry in plain["modules"].values() for s in entry["samples"])
    lazy = sum(bool(lines) for name, lines in found.items() if name.startswith(LAZY))
    SUMMARY.append(f"module_db on torch {torch.__version__}: {len(plain['modules'])} modules, "
                   f"{samples} samples ({failing} failing on plain torch too), "
                   f"{len(unexpected)} differing, {len(KNOWN)} known to differ, compared "
                   f"{'bit for bit' if EXACT else 'within float32 tolerance'} on {TARGET}"
                   + ("" if EXACT else f", {lazy} lazy modules differing as without torchdevice")
                   + (f", ops MPS lacks: {', '.join(sorted(lacking))}" if lacking else ""))
    assert not unexpected, unexpected
    assert not fixed, f"listed in KNOWN but now identical: {fixed}"
    assert samples > 100
