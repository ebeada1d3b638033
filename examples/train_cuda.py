"""Train a small MLP to separate two interleaved spirals, written for CUDA the usual way.

Nothing here knows about torchdevice. On a CUDA machine it runs on the GPU; elsewhere, run it
with torchdevice loaded first and every CUDA request lands on the best available device:

    PYTHONPATH=python python3 -c "import torchdevice, runpy, sys; \
sys.argv=['examples/train_cuda.py']; runpy.run_path('examples/train_cuda.py', run_name='__main__')"

Exits non-zero when the final accuracy is below --min-accuracy, so a zero status means the
model really trained.
"""

import argparse
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_spirals(n_per_class, device, noise=0.03):
    """Two interleaved spirals in 2-D, labels 0 and 1, generated directly on `device`."""
    t = torch.rand(n_per_class, device=device).sqrt()  # sqrt spreads points evenly along the arm
    angle = 4 * math.pi * t  # two full turns: not linearly separable, the MLP has to work
    arm = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1)
    x = torch.cat([arm, -arm])  # the second spiral is the first rotated by 180 degrees
    x = x + noise * torch.randn_like(x)
    y = torch.cat([torch.zeros(n_per_class, dtype=torch.long, device=device),
                   torch.ones(n_per_class, dtype=torch.long, device=device)])
    return x, y


class MLP(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, x):
        return self.net(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--min-accuracy", type=float, default=0.9)
    args = parser.parse_args()

    assert torch.cuda.is_available(), "this script needs CUDA"
    device = "cuda"
    torch.manual_seed(0)
    torch.cuda.manual_seed(0)

    x_train, y_train = make_spirals(500, device)
    x_test, y_test = make_spirals(200, device)
    model = MLP().cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    print(f"GPU: {torch.cuda.get_device_name()}")
    print(f"data on {x_train.device}, model on {next(model.parameters()).device}")

    for step in range(1, args.steps + 1):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x_train), y_train)
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.4f}")

    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    print(f"test accuracy {accuracy:.3f}")
    if accuracy < args.min_accuracy:
        print(f"FAIL: accuracy below {args.min_accuracy}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
