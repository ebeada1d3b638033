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
# Where the target has no fused AdamW kernel of its own, both optimizers run it unfused (said once).
@pytest.mark.filterwarnings("ignore:torchdevice. AdamW.fused=True.")
def test_training_loop_with_autocast_and_fused_adamw_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model, reference = _mlp().cuda(), _mlp().cuda()
    reference.load_state_dict(model.state_dict())
    initial = [p.detach().clone() for p in model.parameters()]
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
    # Three Adam steps of lr 1e-2 move a weight by up to 3e-2; compiled and eager bfloat16
    # kernels round differently, and the tolerance is a tenth of one step.
    for p, q, p0 in zip(model.parameters(), reference.parameters(), initial):
        assert (q - p0).abs().max().item() > 2e-2
        torch.testing.assert_close(p.cpu(), q.cpu(), rtol=0, atol=1e-3)
    assert next(model.parameters()).device == torchdevice.target()


def _prepare_nanogpt(tmp_path):
    """A copy of nanoGPT (tests/third_party/nanogpt, unmodified) with a character-level dataset
    written as its data/shakespeare_char/prepare.py writes one (that script downloads its text;
    this machine has no network, so the text is this repository's README)."""
    import pickle
    import shutil

    import numpy as np

    root = tmp_path / "nanogpt"
    shutil.copytree(os.path.join(REPO, "tests", "third_party", "nanogpt"), root)
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = root / "data" / "shakespeare_char"
    data.mkdir(parents=True)
    split = int(len(text) * 0.9)
    for name, part in (("train", text[:split]), ("val", text[split:])):
        np.array([stoi[c] for c in part], dtype=np.uint16).tofile(data / f"{name}.bin")
    with open(data / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
    return root


def _run_nanogpt(root, *overrides):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(REPO, "python")
    # Its own config for this dataset, shrunk to a 2-core machine's minute; device='cuda' and
    # compile=True are train.py's defaults.
    args = ["config/train_shakespeare_char.py", "--batch_size=8", "--block_size=32",
            "--n_layer=2", "--n_head=2", "--n_embd=32", "--dropout=0.0", "--eval_iters=10",
            "--log_interval=20", "--warmup_iters=5", "--out_dir=out", *overrides]
    result = subprocess.run([sys.executable, "-m", "torchdevice", "run", "train.py", *args],
                            cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _val_losses(stdout):
    import re

    return {int(step): float(loss)
            for step, loss in re.findall(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", stdout)}


def test_nanogpt_trains_unchanged_with_compile_and_resumes_from_its_checkpoint(tmp_path):
    """karpathy/nanoGPT's train.py as published (device='cuda', torch.compile, autocast with a
    GradScaler or bfloat16, fused AdamW, pinned non_blocking batches), through `torchdevice run`."""
    root = _prepare_nanogpt(tmp_path)
    assert "torchdevice" not in (root / "train.py").read_text()
    stdout = _run_nanogpt(root, "--max_iters=100", "--lr_decay_iters=100", "--eval_interval=100")
    assert "compiling the model" in stdout
    losses = _val_losses(stdout)
    assert sorted(losses) == [0, 100] and losses[100] < losses[0] - 0.5, stdout
    checkpoint = torch.load(root / "out" / "ckpt.pt", map_location="cpu")
    assert checkpoint["iter_num"] == 100 and checkpoint["best_val_loss"] == pytest.approx(losses[100], abs=1e-4)
    # init_from='resume' loads it with map_location='cuda' and trains on, uncompiled this time.
    stdout = _run_nanogpt(root, "--init_from=resume", "--compile=False", "--max_iters=120",
                          "--lr_decay_iters=120", "--eval_interval=20")
    resumed = _val_losses(stdout)
    assert "Resuming training from out" in stdout and sorted(resumed) == [100, 120], stdout
    # Evaluated on other random batches than before the save: nearer the trained loss than the
    # untrained one is what restoring the weights shows.
    assert abs(resumed[100] - losses[100]) < abs(losses[0] - losses[100]) / 2, (losses, resumed)
    assert resumed[120] < losses[0] - 0.5
