"""Seeded fuzzing of device specs through the factory inventory.

Each case is a (spec, factory) pair drawn with a fixed seed. A request torch reads as one for a
redirected type (any index) must land on the target, or fail exactly as the factory fails on the
target itself. Every other request must behave exactly as torch behaves with torchdevice
uninstalled (same device, or the same exception type and message, whatever torch raises: 2.x
raises AssertionError for a backend it was not compiled with).
"""

import functools
import random
import subprocess
import sys

import pytest
import torch

import torchdevice
from conftest import INDEX_MEANS_CUDA
from test_dispatch import FACTORIES

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")

SEED = 20240505
CASES = 3000

CANDIDATE_BACKENDS = ["xpu", "hip", "xla", "vulkan", "ipu", "hpu", "ort", "ve", "fpga", "lazy",
                      "privateuseone", "mtia", "maia", "mkldnn", "opengl", "opencl", "ideep",
                      "meta", "gpu", "tpu", "npu"]


@functools.cache
def other_backend_specs():
    return specs_torch_survives([name + index for name in CANDIDATE_BACKENDS
                                 for index in ("", ":0", ":3")])


def specs_torch_survives(specs):
    """The specs that torch alone (no torchdevice) can be asked to allocate on without crashing.

    Some torch builds kill the process for a backend they were compiled with but whose runtime is
    missing (Debian's torch 2.14 segfaults on any 'vulkan' allocation without a Vulkan device).
    No in-process oracle exists for a crash, so each spec is tried in a child process first.
    """
    probe = ("import sys, torch\n"
             "for name in sys.argv[1:]:\n"
             "    try:\n"
             "        torch.empty(1, device=name)\n"
             "    except Exception:\n"
             "        pass\n"
             "    print(name, flush=True)\n")
    survived, left = [], list(specs)
    while left:
        run = subprocess.run([sys.executable, "-c", probe, *left], capture_output=True, text=True)
        done = run.stdout.split()
        survived += done
        left = left[len(done) + (run.returncode != 0):]  # a crash skips the name that caused it
    return survived



def draw_spec(rng):
    kind = rng.randrange(9)
    if kind == 0:  # valid spellings of the accelerators code is written for, and of the CPU
        return rng.choice(["cuda", "mps", "cpu"]) + rng.choice(["", ":0", ":1", f":{rng.randrange(128)}"])
    if kind == 1:  # malformed
        return rng.choice(["cuda:", "cuda:x", ":0", "cuda:0:1", " cuda", "cuda ", "CUDA", "cuda:01",
                           "cuda:+1", "cuda:-1", "cuda::0", "cuda:0x1", "", ":", "cuda:1.0"])
    if kind == 2:  # indices past every index type
        return f"{rng.choice(['cuda', 'mps', 'cpu'])}:{rng.choice([128, 255, 256, 300, 2**31, 2**63, 10**30])}"
    if kind == 3:  # unicode look-alikes and noise
        return rng.choice(["cüda", "cuda:١", "cuda:𝟘", "💥", "ｃｕｄａ", "cuda\x00", "cu\u200bda",
                           "cuda:²"])
    if kind == 4:  # integers, small, negative and huge
        return rng.choice([0, 1, 3, 127, 128, 300, -1, -(2**63), 2**63 - 1, 2**63, 2**70, -(2**70)])
    if kind == 5:
        return None
    if kind == 6:  # torch.device objects
        return rng.choice([torch.device("cpu"), torch.device("meta"), torch.device("cpu", 0)])
    if kind == 7:  # other backends, with and without an index
        return rng.choice(other_backend_specs())
    # random printable garbage around a device name
    alphabet = "cudamps:0123456789-+ x"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 10)))


def outcome(factory, spec):
    try:
        return ("ok", factory(spec).device)
    except Exception as error:  # the oracle below judges every exception
        message = str(error).splitlines()[0] if str(error) else ""
        # The dispatcher lists the backends an op has kernels for: installed, that list includes
        # the redirected ones, which is the only intended difference.
        return ("error", type(error), message.split(" is only available for these backends")[0])


def redirected_request(spec, redirected, accelerator):
    """Whether torch itself (torchdevice uninstalled) reads `spec` as a request for a type in
    `redirected`."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        # Where the machine has an accelerator (the target), torch itself reads an index as that
        # accelerator's (wrapping it into its 8-bit index type): then nothing is ours to judge.
        return "cuda" in redirected and INDEX_MEANS_CUDA and not accelerator and 0 <= spec < 2**63
    if isinstance(spec, (str, torch.device)):
        try:
            return torch.device(spec).type in redirected
        except Exception:  # torch rejects it: not a request for anything
            return False
    return False


def test_device_spec_fuzz(target, record_property):
    rng = random.Random(SEED)
    names = sorted(FACTORIES)
    cases = [(draw_spec(rng), rng.choice(names)) for _ in range(CASES)]
    types = torchdevice.redirected()

    torchdevice.uninstall()
    try:
        accelerator = hasattr(torch, "accelerator") and torch.accelerator.is_available()
        redirected = [redirected_request(spec, types, accelerator) for spec, _ in cases]
        baseline = [outcome(FACTORIES[name], spec) for spec, name in cases]
    finally:
        torchdevice.install()
    results = [outcome(FACTORIES[name], spec) for spec, name in cases]
    # A factory the target itself cannot run (the stand-in has no sparse kernels) fails there with
    # torch's own error, whatever the request said: that is the redirect working.
    known = {}

    def on_target(name):
        if name not in known:
            known[name] = outcome(FACTORIES[name], target)
        return known[name]

    counts = {"redirected": 0, "same as torch": 0, "errors": 0}
    for i, ((spec, name), got, before) in enumerate(zip(cases, results, baseline)):
        where = f"case {i}: {name}(device={spec!r})"
        if got[0] == "error":
            counts["errors"] += 1
        if redirected[i]:
            counts["redirected"] += 1
            # torch reads the spec as a request for a redirected type: it lands on the target
            # (any index of it), or fails as the factory fails on the target itself.
            if got[0] == "error":
                assert got == on_target(name), f"{where} raised {got[1].__name__}: {got[2]}"
            else:
                assert got[1] == target, f"{where} landed on {got[1]}"
        else:
            counts["same as torch"] += 1
            assert got == before, f"{where}: {got} with torchdevice, {before} without"
    record_property("fuzz_cases", counts)
    print(f"device-spec fuzz: {CASES} cases, {counts}")
    # The draw covers both sides of the oracle on a machine that redirects anything.
    if torchdevice.redirected():
        assert counts["redirected"] > 100 and counts["same as torch"] > 100
