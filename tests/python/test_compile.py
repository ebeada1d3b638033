"""torch.compile of code written for CUDA: inductor generates code for the target (C++/OpenMP on
the CPU), never CUDA/Triton for a device that is not there, and results match eager. Few and tiny
models: the first compile of anything costs seconds on a small machine."""

import os
import subprocess
import sys

import pytest
import torch

import torchdevice
from conftest import REPO, requires_cuda_redirect

pytestmark = [
    requires_cuda_redirect,
    pytest.mark.skipif(not hasattr(torch, "compile"),
                       reason=f"torch {torch.__version__} has no torch.compile (torch >= 2)"),
]

cpu_target = pytest.mark.skipif(
    torchdevice.target() is None or torchdevice.target().type != "cpu",
    reason="checks inductor's CPU code generation",
)


def _compiled_code(fn, *args):
    from torch._inductor.utils import run_and_get_code

    result, sources = run_and_get_code(fn, *args)
    return result, "\n".join(sources)


def _mlp():
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))


@cpu_target
def test_default_mode_generates_cpu_code_and_matches_eager():
    torch._dynamo.reset()

    def f(x, y):
        return torch.sin(x) * y + torch.cuda.device_count()

    x = torch.randn(64, device="cuda")
    y = torch.randn(64, device="cuda")
    out, code = _compiled_code(torch.compile(f), x, y)
    torch.testing.assert_close(out, f(x, y))
    assert out.device == torchdevice.target()
    assert "triton" not in code.lower()
    assert "cpp_fused" in code or "extern \"C\"" in code


@pytest.mark.parametrize("options", [
    dict(mode="reduce-overhead"),
    dict(mode="max-autotune-no-cudagraphs"),
    dict(fullgraph=True, dynamic=True),
])
def test_modes_match_eager(options):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _mlp().cuda()
    compiled = torch.compile(model, **options)
    for batch in (3, 5):  # a second shape: recompiles, or runs the dynamic graph
        x = torch.randn(batch, 8, device="cuda")
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


# Where the target's autocast has no bfloat16 (MPS before macOS 14) it takes float16, warning once.
@pytest.mark.filterwarnings("ignore:torchdevice. autocast on")
def test_training_loop_with_autocast_and_fused_adamw_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model, reference = _mlp().cuda(), _mlp().cuda()
    reference.load_state_dict(model.state_dict())
    fused = dict(fused=True) if torch.__version__ >= "2.4" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, **fused)
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-2, **fused)
    compiled = torch.compile(model)
    x = torch.randn(6, 8, device="cuda")
    t = torch.randn(6, 4, device="cuda")
    for _ in range(3):
        for m, o in ((compiled, opt), (reference, ref_opt)):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.mse_loss(m(x).float(), t)
            loss.backward()
            o.step()
            o.zero_grad(set_to_none=True)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=2e-2, atol=2e-2)
    assert next(model.parameters()).device == torchdevice.target()


def test_nanogpt_style_script_with_compile_trains_through_torchdevice_run():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(REPO, "python")
    result = subprocess.run(
        [sys.executable, "-m", "torchdevice", "run", os.path.join(REPO, "examples", "train_gpt_compile.py"),
         "--max_iters=40"],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compile=True" in result.stdout
    assert f"on {torchdevice.target().type}" in result.stdout
