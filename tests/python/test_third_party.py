"""Hugging Face's libraries as CUDA users call them: a transformers model moved with .cuda(), and
accelerate's Accelerator choosing the device itself. Both branch on `device.type` (MPS has its own
paths in each), so the emulated MPS lane runs their MPS code with torchdevice's target. Needs
Debian forky's python3-transformers and python3-accelerate (scripts/chroot.sh installs them)."""

import pytest
import torch

import torchdevice

transformers = pytest.importorskip("transformers", reason="needs transformers (Debian forky)")
accelerate = pytest.importorskip("accelerate", reason="needs accelerate (Debian forky)")

# Dropout off: the target's random stream is not the CPU's, and the comparison is of the math.
CONFIG = dict(n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=64, resid_pdrop=0.0,
              embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)


def gpt2():
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**CONFIG))


def tokens():
    return torch.randint(0, CONFIG["vocab_size"], (2, 16), generator=torch.Generator().manual_seed(1))


@pytest.fixture
def fresh_accelerate():
    """Accelerator's state is a process-wide singleton: each test starts from none."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def test_a_model_moved_with_cuda_computes_as_on_the_cpu():
    reference = gpt2()
    model = gpt2().cuda()
    assert next(model.parameters()).device == torchdevice.target()
    ids = tokens()
    ours = model(ids.cuda(), labels=ids.cuda())
    ours.loss.backward()
    theirs = reference(ids, labels=ids)
    theirs.loss.backward()
    assert ours.logits.device == torchdevice.target()
    torch.testing.assert_close(ours.logits.cpu(), theirs.logits)
    torch.testing.assert_close(ours.loss.cpu(), theirs.loss)
    for (name, ours_p), theirs_p in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(ours_p.grad.cpu(), theirs_p.grad, msg=lambda m: f"{name}: {m}")


def train(model, optimizer, ids, backward, steps=3):
    losses = []
    for _ in range(steps):
        loss = model(ids, labels=ids).loss
        backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_accelerator_trains_on_the_target(fresh_accelerate):
    accelerator = accelerate.Accelerator()
    assert accelerator.device == torchdevice.target()
    model = gpt2()
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-2))
    ids = tokens()
    losses = train(model, optimizer, ids.to(accelerator.device), accelerator.backward)

    reference = gpt2()
    expected = train(reference, torch.optim.AdamW(reference.parameters(), lr=1e-2), ids,
                     lambda loss: loss.backward())
    torch.testing.assert_close(losses, expected, rtol=1e-4, atol=1e-5)
    assert losses[-1] < losses[0]


def test_accelerator_fp16_uses_a_grad_scaler_on_the_target(fresh_accelerate):
    if torchdevice.target().type not in ("mps", "cuda", "xpu", "hpu"):
        pytest.skip(f"accelerate allows fp16 only on its own list of devices, not "
                    f"{torchdevice.target().type!r}: needs MPS (the emulated MPS) or a GPU")
    accelerator = accelerate.Accelerator(mixed_precision="fp16")
    model = gpt2()
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-2))
    assert isinstance(accelerator.scaler, torch.amp.GradScaler)
    before = [p.detach().clone() for p in model.parameters()]
    ids = tokens().to(accelerator.device)
    losses = train(model, optimizer, ids, accelerator.backward)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters()))
    assert accelerator.scaler.get_scale() > 0
