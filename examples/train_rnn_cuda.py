"""Train a character-level LSTM language model on a small generated text, written for CUDA the
usual way (cuDNN flags, .cuda(), CUDA events and memory statistics).

Nothing here knows about torchdevice. On a CUDA machine it runs on the GPU (cuDNN's LSTM);
elsewhere, run it through torchdevice and every CUDA request lands on the best available device:

    PYTHONPATH=python python3 -m torchdevice run examples/train_rnn_cuda.py

Exits non-zero unless the final loss is below --max-loss-ratio times the first one, so a zero
status means the model really learned the text.
"""

import argparse
import random
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

SUBJECTS = ["the cat", "a dog", "my friend", "the old man", "she", "he", "the bird"]
VERBS = ["sees", "likes", "finds", "follows", "paints", "hears"]
OBJECTS = ["the moon", "a red ball", "the river", "some bread", "the small house", "a song"]


def make_text(n_sentences, seed=0):
    """Sentences from a tiny grammar: enough structure for an LSTM to learn in a few seconds."""
    rng = random.Random(seed)
    return " ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
                    for _ in range(n_sentences))


class CharLSTM(nn.Module):
    def __init__(self, vocab, embed=16, hidden=64, layers=2, dropout=0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, dropout=dropout, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens, state=None):
        out, state = self.lstm(self.embed(tokens), state)
        return self.head(out), state


@torch.no_grad()
def sample(model, stoi, itos, prompt, length):
    model.eval()
    tokens = torch.tensor([[stoi[c] for c in prompt]], device="cuda")
    logits, state = model(tokens)
    out = list(prompt)
    for _ in range(length):
        next_token = logits[:, -1].argmax(-1, keepdim=True)
        out.append(itos[next_token.item()])
        logits, state = model(next_token, state)
    model.train()
    return "".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-loss-ratio", type=float, default=0.6)
    args = parser.parse_args()

    assert torch.cuda.is_available(), "this script needs CUDA"
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.enabled = True
    device = torch.device("cuda")
    torch.manual_seed(0)
    torch.cuda.manual_seed_all(0)

    text = make_text(2000)
    itos = sorted(set(text))
    stoi = {c: i for i, c in enumerate(itos)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long).cuda()
    model = CharLSTM(len(itos)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    print(f"GPU: {torch.cuda.get_device_name(0)}, cuDNN enabled: {torch.backends.cudnn.enabled}")
    print(f"text: {len(text)} characters, vocabulary {len(itos)}")
    print(f"data on {data.device}, model on {next(model.parameters()).device}")

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.reset_peak_memory_stats()
    start.record()
    first_loss = None
    for step in range(1, args.steps + 1):
        offsets = torch.randint(len(data) - args.seq_len - 1, (args.batch,), device=device)
        window = offsets[:, None] + torch.arange(args.seq_len + 1, device=device)
        batch = data[window]
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, len(itos)), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if first_loss is None:
            first_loss = loss.item()
            print(f"first loss {first_loss:.4f}")
        if step % 50 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    end.record()
    torch.cuda.synchronize()

    final_loss = loss.item()
    print(f"final loss {final_loss:.4f}")
    print(f"trained in {start.elapsed_time(end) / 1000:.2f} s, "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")
    print(f"sample: {sample(model, stoi, itos, 'the cat', 40)!r}")
    if final_loss > args.max_loss_ratio * first_loss:
        print(f"FAIL: loss fell only from {first_loss:.4f} to {final_loss:.4f}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
