"""A model zoo: real models from every family of torch.nn (and torchvision's, where it imports),
each trained a few optimiser steps, to show that torchdevice changes no number.

    python zoo.py --device cpu  OUT.json                  # plain torch (torchdevice never imported)
    python zoo.py --device cpu  --torchdevice OUT.json    # torchdevice installed, model on 'cpu'
    python zoo.py --device cuda --torchdevice OUT.json    # the same models asked for on 'cuda'

Each run writes, per case, the loss of every step (float.hex, so exact) and a SHA-256 of the raw
bytes of every entry of the trained model's state_dict (and of any other tensor the case records),
or why the case was skipped, or the error it raised; with --values, the tensors themselves.
tests/python/test_model_zoo.py runs the three and requires identical files (on an accelerator
target, values equal within float32 rounding, integers exactly). Every random number is drawn on the CPU generator in the same order
in all three runs: models are built on the CPU and then moved, data is made on the CPU and moved
(except in `device_random`, which draws on the device on purpose: redirected, that is the CPU
generator too). One intra-op thread, so that the comparison is about torchdevice, not about how
OpenMP chunks a reduction.
"""

import argparse
import hashlib
import inspect
import json
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

STEPS = 3


class Skip(Exception):
    """The running torch (or torchvision) lacks what the case needs; the message says what."""


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def needs(present, what):
    if not present:
        raise Skip(f"torch {torch.__version__} has no {what}")


def vision():
    try:
        import torchvision
    except ImportError as error:
        raise Skip(f"torchvision does not import: {error}")
    return torchvision


def bits(tensor):
    """The raw bytes of a tensor (sparse ones by their coalesced indices and values)."""
    tensor = tensor.detach()
    if tensor.is_sparse:
        tensor = tensor.coalesce()
        return bits(tensor.indices()) + bits(tensor.values())
    tensor = tensor.cpu().contiguous()
    if tensor.is_complex():
        tensor = torch.view_as_real(tensor)
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.view(torch.int16)  # numpy has no bfloat16
    return tensor.numpy().tobytes()


def fingerprint(tensor):
    tensor = tensor.detach()
    dense = tensor.to_dense() if tensor.is_sparse else tensor
    return {
        "sha256": hashlib.sha256(bits(tensor)).hexdigest(),
        "dtype": str(tensor.dtype), "shape": list(tensor.shape), "device": tensor.device.type,
        # Only to say how far apart two runs are when the hashes differ.
        "sum": float(dense.cpu().double().sum()) if dense.is_floating_point() else None,
    }


class Run:
    """What a case works with: the device to train on, and the record of what it computed."""

    def __init__(self, device):
        self.device = device
        self.losses = []
        self.tensors = {}
        self.devices = set()
        self.steps = 0

    def data(self, tensor):
        """Data made on the CPU, so that every run draws the same numbers, then moved."""
        return tensor.to(self.device)

    def model(self, module):
        """A module built on the CPU (same initial weights everywhere), moved as its user would."""
        return module.cuda() if self.device == "cuda" else module.to(self.device)

    def record(self, name, value):
        """Any other result worth comparing: a tensor, or a tuple/list of them."""
        if isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                self.record(f"{name}.{i}", item)
        else:
            self.tensors[name] = value
            self.devices.add(value.device.type)

    def loss(self, loss):
        self.devices.add(loss.device.type)
        self.losses.append(float(loss.item()).hex())

    def train(self, model, optimizers, loss_fn, steps=STEPS, schedulers=(), closure=False,
              before_step=None):
        """`steps` optimiser steps of `loss_fn(step)`; the final state_dict is recorded."""
        if not isinstance(optimizers, (list, tuple)):
            optimizers = [optimizers]
        for step in range(steps):
            if closure:  # optimisers such as LBFGS evaluate the loss themselves
                def evaluate():
                    optimizers[0].zero_grad()
                    loss = loss_fn(step)
                    loss.backward()
                    return loss
                self.loss(optimizers[0].step(evaluate))
            else:
                for optimizer in optimizers:
                    optimizer.zero_grad()
                loss = loss_fn(step)
                loss.backward()
                if before_step is not None:
                    before_step()
                for optimizer in optimizers:
                    optimizer.step()
                self.loss(loss)
            for scheduler in schedulers:
                scheduler.step()
            self.steps += 1
        self.state(model)

    def state(self, model):
        for name, value in model.state_dict().items():
            self.record(f"state.{name}", value)

    def result(self):
        return {
            "losses": self.losses, "steps": self.steps, "devices": sorted(self.devices),
            "tensors": {name: fingerprint(t) for name, t in sorted(self.tensors.items())},
        }


def mlp(sizes, activation=nn.Tanh):
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------- recurrent


@case
def lstm_language_model(run):
    vocab = 24

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, 8)
            self.lstm = nn.LSTM(8, 16, num_layers=2, dropout=0.25)
            self.head = nn.Linear(16, vocab)

        def forward(self, tokens, state=None):
            out, state = self.lstm(self.embed(tokens), state)
            return self.head(out), state

    model = run.model(LM())
    text = run.data(torch.randint(vocab, (13, 4)))  # (time, batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss(step):
        logits, _ = model(text[:-1])
        return F.cross_entropy(logits.reshape(-1, vocab), text[1:].reshape(-1))

    run.train(model, optimizer, loss)
    model.eval()
    with torch.no_grad():  # generation, feeding the state back
        token, state = text[:1], None
        for _ in range(4):
            logits, state = model(token, state)
            token = logits.argmax(-1)
        run.record("generated", token)
        run.record("state", state)


@case
def gru_bidirectional(run):
    gru = nn.GRU(6, 8, num_layers=2, bidirectional=True, batch_first=True, dropout=0.1)
    model = run.model(nn.ModuleDict({"gru": gru, "head": nn.Linear(16, 3)}))
    x = run.data(torch.randn(3, 7, 6))
    h0 = run.data(torch.randn(4, 3, 8))
    y = run.data(torch.randn(3, 7, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)

    def loss(step):
        out, h = model["gru"](x, h0)
        return F.mse_loss(model["head"](out), y) + h.pow(2).mean()

    run.train(model, optimizer, loss)


@case
def rnn_relu_and_tanh(run):
    model = run.model(nn.ModuleDict({
        "relu": nn.RNN(5, 7, num_layers=3, nonlinearity="relu", bidirectional=True, dropout=0.2),
        "tanh": nn.RNN(14, 4, bias=False),
    }))
    x = run.data(torch.randn(6, 2, 5))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)

    def loss(step):
        out, _ = model["relu"](x)
        out, h = model["tanh"](out)
        return out.pow(2).mean() + h.abs().mean()

    run.train(model, optimizer, loss)


@case
def packed_sequences(run):
    from torch.nn.utils.rnn import (pack_padded_sequence, pack_sequence, pad_packed_sequence,
                                    pad_sequence)
    model = run.model(nn.ModuleDict({
        "lstm": nn.LSTM(4, 6, bidirectional=True, proj_size=3, batch_first=True),
        "gru": nn.GRU(4, 5),
    }))
    lengths = torch.tensor([5, 7, 2, 4])  # unsorted: enforce_sorted=False sorts and unsorts
    padded = run.data(torch.randn(4, 7, 4))
    pieces = [run.data(torch.randn(n, 4)) for n in (6, 3, 1)]
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-2)

    def loss(step):
        packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = model["lstm"](packed)
        out, out_lengths = pad_packed_sequence(out, batch_first=True, total_length=7)
        mask = (torch.arange(7)[None, :] < out_lengths[:, None]).to(out.device)
        lstm_loss = (out.pow(2).sum(-1) * mask).sum() / mask.sum() + h.pow(2).mean()
        out2, h2 = model["gru"](pack_sequence(pieces))
        gru_loss = pad_sequence([out2.data]).pow(2).mean() + h2.pow(2).mean()
        return lstm_loss + gru_loss

    run.train(model, optimizer, loss)


@case
def recurrent_cells(run):
    model = run.model(nn.ModuleDict({
        "lstm": nn.LSTMCell(3, 5), "gru": nn.GRUCell(5, 4), "rnn": nn.RNNCell(4, 3, nonlinearity="relu"),
    }))
    xs = run.data(torch.randn(6, 2, 3))
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.1)

    def loss(step):
        h_lstm = c = h_gru = h_rnn = None
        total = 0
        for x in xs:
            h_lstm, c = model["lstm"](x, None if h_lstm is None else (h_lstm, c))
            h_gru = model["gru"](h_lstm, h_gru)
            h_rnn = model["rnn"](h_gru, h_rnn)
            total = total + h_rnn.pow(2).mean()
        return total

    run.train(model, optimizer, loss)


# -------------------------------------------------------------------------------- attention


def causal_mask(n):
    return torch.triu(torch.full((n, n), float("-inf")), diagonal=1)


@case
def transformer(run):
    model = run.model(nn.Transformer(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                                     dim_feedforward=32, dropout=0.1, batch_first=True))
    src, tgt = run.data(torch.randn(2, 6, 16)), run.data(torch.randn(2, 5, 16))
    tgt_mask = run.data(causal_mask(5))
    src_padding = run.data(torch.tensor([[False] * 6, [False] * 4 + [True] * 2]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss(step):
        out = model(src, tgt, tgt_mask=tgt_mask, src_key_padding_mask=src_padding,
                    memory_key_padding_mask=src_padding)
        return (out - tgt).pow(2).mean()

    run.train(model, optimizer, loss)


@case
def transformer_encoder_decoder_stacks(run):
    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(12, 3, dim_feedforward=24, dropout=0.1, activation="gelu",
                                   norm_first=True), num_layers=2, norm=nn.LayerNorm(12))
    decoder = nn.TransformerDecoder(
        nn.TransformerDecoderLayer(12, 3, dim_feedforward=24, dropout=0.1, norm_first=True),
        num_layers=2)
    model = run.model(nn.ModuleDict({"encoder": encoder, "decoder": decoder, "head": nn.Linear(12, 7)}))
    src, tgt = run.data(torch.randn(6, 2, 12)), run.data(torch.randn(4, 2, 12))  # (time, batch)
    labels = run.data(torch.randint(7, (4, 2)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss(step):
        memory = model["encoder"](src)
        out = model["decoder"](tgt, memory, tgt_mask=run.data(causal_mask(4)))
        return F.cross_entropy(model["head"](out).reshape(-1, 7), labels.reshape(-1))

    run.train(model, optimizer, loss)


@case
def transformer_encoder_inference_fast_path(run):
    """Evaluation without grad takes torch's fused encoder path (nested tensors for padding)."""
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)
    model = run.model(nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=True))
    src = run.data(torch.randn(3, 5, 16))
    padding = run.data(torch.tensor([[False] * 5, [False] * 3 + [True] * 2, [False] * 4 + [True]]))
    model.eval()
    with torch.no_grad():
        run.record("padded", model(src, src_key_padding_mask=padding))
        run.record("unpadded", model(src))
    run.state(model)


@case
def multihead_attention(run):
    model = run.model(nn.ModuleDict({
        "cross": nn.MultiheadAttention(16, 4, dropout=0.1, kdim=12, vdim=10, add_bias_kv=True,
                                       add_zero_attn=True, batch_first=True),
        "self": nn.MultiheadAttention(16, 2, bias=False),
    }))
    q, k, v = (run.data(torch.randn(2, 5, 16)), run.data(torch.randn(2, 6, 12)),
               run.data(torch.randn(2, 6, 10)))
    padding = run.data(torch.tensor([[False] * 6, [False] * 3 + [True] * 3]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss(step):
        out, weights = model["cross"](q, k, v, key_padding_mask=padding)
        x = out.transpose(0, 1)
        out2, weights2 = model["self"](x, x, x, attn_mask=run.data(causal_mask(5)),
                                       average_attn_weights=False)
        return out2.pow(2).mean() + weights.std() + weights2.std()

    run.train(model, optimizer, loss)
    model.eval()
    with torch.no_grad():  # torch's native (fused) attention path
        run.record("fast_path", model["self"](*[run.data(torch.randn(5, 2, 16))] * 3,
                                              need_weights=False)[0])


@case
def scaled_dot_product_attention(run):
    needs(hasattr(F, "scaled_dot_product_attention"), "F.scaled_dot_product_attention (2.0+)")
    model = run.model(nn.Linear(8, 24))
    x = run.data(torch.randn(2, 5, 8))
    bias = run.data(torch.randn(5, 5))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss(step):
        q, k, v = model(x).view(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)  # (3, batch, heads, time, dim)
        causal = F.scaled_dot_product_attention(q, k, v, dropout_p=0.2, is_causal=True)
        biased = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return causal.pow(2).mean() + biased.pow(2).mean()

    run.train(model, optimizer, loss)


# ------------------------------------------------------------------------------ convolutions


@case
def conv1d(run):
    model = run.model(nn.Sequential(
        nn.Conv1d(3, 8, 5, padding="same", padding_mode="reflect"), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Conv1d(8, 8, 3, groups=4, dilation=2), nn.ReLU(),
        nn.ConvTranspose1d(8, 4, 4, stride=2, output_padding=1), nn.Conv1d(4, 2, 1)))
    x, y = run.data(torch.randn(4, 3, 20)), run.data(torch.randn(4, 2, 35))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5, weight_decay=1e-3)
    run.train(model, optimizer, lambda step: F.mse_loss(model(x), y))


def conv2d_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.ReLU(),  # depthwise
        nn.Conv2d(8, 12, 1), nn.ReLU(),  # pointwise
        nn.Conv2d(12, 12, 3, padding=2, dilation=2, groups=3, bias=False),
        nn.ConvTranspose2d(12, 4, 3, stride=2, padding=1, output_padding=1, groups=2),
        nn.Conv2d(4, 3, 3, padding="same", padding_mode="replicate"))


@case
def conv2d(run):
    model = run.model(conv2d_net())
    x = run.data(torch.randn(2, 3, 12, 12))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    run.train(model, optimizer, lambda step: F.l1_loss(model(x), x))


@case
def conv2d_channels_last(run):
    model = run.model(conv2d_net()).to(memory_format=torch.channels_last)
    x = run.data(torch.randn(2, 3, 12, 12)).contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    run.train(model, optimizer, lambda step: F.l1_loss(model(x), x))
    run.record("output", model(x))


@case
def conv3d(run):
    model = run.model(nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 4, 3, stride=2, groups=2, padding=1),
        nn.ReLU(), nn.ConvTranspose3d(4, 2, 2, stride=2)))
    x = run.data(torch.randn(2, 2, 6, 6, 6))
    optimizer = torch.optim.Adamax(model.parameters(), lr=1e-2)
    run.train(model, optimizer, lambda step: F.smooth_l1_loss(model(x), x))


# ---------------------------------------------------------------------------- normalisation


class Norms(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(6)
        self.group = nn.GroupNorm(3, 6)
        self.instance2 = nn.InstanceNorm2d(6, affine=True, track_running_stats=True)
        self.lrn = nn.LocalResponseNorm(3)
        self.layer = nn.LayerNorm([6, 5, 5])
        self.bn1 = nn.BatchNorm1d(6, momentum=None)  # cumulative average
        self.instance1 = nn.InstanceNorm1d(6)
        self.bn3 = nn.BatchNorm3d(2)
        self.instance3 = nn.InstanceNorm3d(2, affine=True)
        self.layer_no_affine = nn.LayerNorm(6, elementwise_affine=False)

    def forward(self, x):
        x = self.layer(self.lrn(self.instance2(self.group(self.bn2(self.conv(x))))))
        flat = self.bn1(x.mean((2, 3)))
        seq = self.instance1(x.flatten(2))
        vol = self.instance3(self.bn3(x.view(x.shape[0], 2, 3, 5, 5)))
        return flat.pow(2).mean() + seq.pow(3).mean() + vol.pow(3).mean() + \
            self.layer_no_affine(x.mean((2, 3))).pow(3).mean()


@case
def normalization(run):
    model = run.model(Norms())
    x = run.data(torch.randn(4, 3, 5, 5))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run.train(model, optimizer, lambda step: model(x))
    model.eval()  # the running statistics now
    with torch.no_grad():
        run.record("eval", model(x))


@case
def rms_norm(run):
    needs(hasattr(nn, "RMSNorm"), "nn.RMSNorm (2.4+)")
    model = run.model(nn.Sequential(nn.Linear(6, 8), nn.RMSNorm(8), nn.Linear(8, 8),
                                    nn.RMSNorm([8], eps=1e-3, elementwise_affine=False)))
    x = run.data(torch.randn(5, 6))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    run.train(model, optimizer, lambda step: model(x).pow(3).mean())


# -------------------------------------------------------------------------------- dropout


@case
def dropout(run):
    layers = {"dropout": nn.Dropout(0.3), "dropout2d": nn.Dropout2d(0.3),
              "dropout3d": nn.Dropout3d(0.3), "alpha": nn.AlphaDropout(0.3),
              "feature_alpha": nn.FeatureAlphaDropout(0.3)}
    if hasattr(nn, "Dropout1d"):
        layers["dropout1d"] = nn.Dropout1d(0.3)
    model = run.model(nn.ModuleDict({"conv": nn.Conv2d(2, 4, 3), **layers}))
    x = run.data(torch.randn(3, 2, 6, 6))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss(step):
        h = model["conv"](x)  # (3, 4, 4, 4)
        total = model["dropout"](h).mean() + model["dropout2d"](h).pow(2).mean()
        total = total + model["dropout3d"](h.unsqueeze(1)).pow(2).mean()
        total = total + model["alpha"](h).pow(2).mean() + model["feature_alpha"](h).pow(2).mean()
        if "dropout1d" in layers:
            total = total + model["dropout1d"](h.flatten(2)).pow(2).mean()
        return total + F.dropout(h, 0.5, training=True).pow(2).mean()

    run.train(model, optimizer, loss)


# ------------------------------------------------------------------------------ embeddings


@case
def embeddings(run):
    model = run.model(nn.ModuleDict({
        "sparse_adam": nn.Embedding(30, 6, sparse=True, padding_idx=0),
        "sparse_sgd": nn.Embedding(30, 6, sparse=True),
        "dense": nn.Embedding(30, 6, max_norm=1.0),
        "bag_sum": nn.EmbeddingBag(30, 6, mode="sum", sparse=True),
        "bag_max": nn.EmbeddingBag(30, 6, mode="max"),
        "bag_mean": nn.EmbeddingBag(30, 6, mode="mean", padding_idx=2),
    }))
    tokens = run.data(torch.randint(30, (4, 5)))
    flat = tokens.flatten()
    offsets = run.data(torch.tensor([0, 3, 3, 11]))
    weights = run.data(torch.rand(20))
    sparse = [model["sparse_adam"].weight]
    optimizers = [torch.optim.SparseAdam(sparse, lr=0.1),
                  torch.optim.SGD([model["sparse_sgd"].weight, model["bag_sum"].weight], lr=0.5),
                  torch.optim.Adam([model[name].weight for name in ("dense", "bag_max", "bag_mean")],
                                   lr=0.1)]

    def loss(step):
        total = model["sparse_adam"](tokens).pow(2).sum() + model["sparse_sgd"](tokens).sum()
        total = total + model["dense"](tokens).pow(2).sum()
        total = total + model["bag_sum"](flat, offsets, per_sample_weights=weights).pow(2).sum()
        total = total + model["bag_max"](tokens).pow(2).sum() + model["bag_mean"](flat, offsets).sum()
        return total

    run.train(model, optimizers, loss)


# --------------------------------------------------------------------------------- losses


@case
def losses(run):
    model = run.model(mlp([6, 16, 10]))
    x = run.data(torch.randn(8, 6))
    classes = run.data(torch.randint(5, (8,)))
    classes[0] = -100
    probabilities = run.data(torch.softmax(torch.randn(8, 5), -1))
    binary = run.data(torch.randint(2, (8, 10)).float())
    signs = run.data(torch.randint(2, (8,)).float() * 2 - 1)
    target = run.data(torch.randn(8, 10))
    class_weight = run.data(torch.rand(5) + 0.5)
    multilabel = run.data(torch.tensor([[3, 0, -1, 1, 1, 1, 1, 1, 1, 1]] * 8))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def loss(step):
        out = model(x)
        logits, a, b = out[:, :5], out[:, :5], out[:, 5:]
        terms = [
            F.cross_entropy(logits, classes, label_smoothing=0.1),
            F.cross_entropy(logits, probabilities),
            F.cross_entropy(logits, classes, weight=class_weight, ignore_index=-100),
            F.nll_loss(F.log_softmax(logits, -1), classes, weight=class_weight, reduction="sum"),
            F.binary_cross_entropy(torch.sigmoid(out), binary),
            F.binary_cross_entropy_with_logits(out, binary, pos_weight=run.data(torch.full((10,), 2.0))),
            F.kl_div(F.log_softmax(a, -1), F.log_softmax(b, -1), reduction="batchmean", log_target=True),
            F.mse_loss(out, target), F.l1_loss(out, target), F.smooth_l1_loss(out, target, beta=0.5),
            F.huber_loss(out, target, delta=0.7),
            F.poisson_nll_loss(out, target.abs()), F.gaussian_nll_loss(a, b, out[:, :5].exp()),
            F.margin_ranking_loss(a[:, 0], b[:, 0], signs, margin=0.1),
            F.hinge_embedding_loss(out, binary * 2 - 1), F.soft_margin_loss(out, binary * 2 - 1),
            F.multilabel_margin_loss(out, multilabel), F.multilabel_soft_margin_loss(out, binary),
            F.cosine_embedding_loss(a, b, signs), F.multi_margin_loss(logits, classes.clamp(min=0)),
            F.multi_margin_loss(logits, classes.clamp(min=0), p=2, margin=0.5, weight=class_weight),
            F.triplet_margin_loss(a, b, out[:, 2:7], swap=True),
            F.triplet_margin_with_distance_loss(a, b, out[:, 2:7], distance_function=F.pairwise_distance),
        ]
        return sum(terms)

    run.train(model, optimizer, loss)


@case
def ctc(run):
    model = run.model(nn.ModuleDict({"lstm": nn.LSTM(5, 8), "head": nn.Linear(8, 6)}))
    frames = run.data(torch.randn(12, 3, 5))  # (time, batch, features)
    input_lengths = torch.tensor([12, 10, 7])
    target_lengths = torch.tensor([4, 3, 2])
    targets = run.data(torch.randint(1, 6, (3, 4)))
    concatenated = torch.cat([targets[i, :n] for i, n in enumerate(target_lengths.tolist())])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss(step):
        log_probs = F.log_softmax(model["head"](model["lstm"](frames)[0]), -1)
        padded = F.ctc_loss(log_probs, targets, input_lengths, target_lengths)
        flat = F.ctc_loss(log_probs, concatenated, input_lengths, target_lengths,
                          reduction="sum", zero_infinity=True)
        return padded + flat / 10

    run.train(model, optimizer, loss)


# ---------------------------------------------------------------------- pooling and resampling


@case
def pooling(run):
    model = run.model(nn.ModuleDict({
        "conv1": nn.Conv1d(2, 3, 3), "conv2": nn.Conv2d(2, 3, 3), "conv3": nn.Conv3d(2, 3, 3),
        "frac2": nn.FractionalMaxPool2d(2, output_ratio=0.6),
        "frac3": nn.FractionalMaxPool3d(2, output_size=3),
    }))
    x1, x2, x3 = (run.data(torch.randn(2, 2, 18)), run.data(torch.randn(2, 2, 14, 14)),
                  run.data(torch.randn(2, 2, 8, 8, 8)))
    lp3 = getattr(F, "lp_pool3d", None)  # 2.2+
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss(step):
        a, b, c = model["conv1"](x1), model["conv2"](x2), model["conv3"](x3)
        pooled, indices = F.max_pool2d(b, 2, return_indices=True)
        outs = [
            F.max_pool1d(a, 3, stride=2), F.avg_pool1d(a, 4, ceil_mode=True),
            F.adaptive_avg_pool1d(a, 5), F.adaptive_max_pool1d(a, 3), F.lp_pool1d(a, 2, 3),
            F.max_unpool2d(pooled, indices, 2, output_size=b.shape[-2:]),
            F.avg_pool2d(b, 3, stride=2, ceil_mode=True, count_include_pad=False),
            F.avg_pool2d(b, 3, padding=1, divisor_override=4), F.adaptive_avg_pool2d(b, (5, 3)),
            F.adaptive_max_pool2d(b, 4), F.lp_pool2d(b, 3, 2), model["frac2"](b),
            F.max_pool2d(b, 3, stride=2, dilation=2, padding=1),
            F.max_pool3d(c, 2), F.avg_pool3d(c, 3, stride=1), F.adaptive_avg_pool3d(c, 2),
            F.adaptive_max_pool3d(c, (1, 2, 3)), model["frac3"](c),
        ]
        if lp3 is not None:
            outs.append(lp3(c.abs() + 0.1, 2, 2))
        return sum(o.pow(2).mean() for o in outs)

    run.train(model, optimizer, loss)


@case
def interpolation(run):
    model = run.model(nn.ModuleDict({
        "conv1": nn.Conv1d(1, 2, 3), "conv2": nn.Conv2d(1, 4, 3), "conv3": nn.Conv3d(1, 2, 3),
        "upsample": nn.Upsample(scale_factor=1.5, mode="bilinear"),
        "shuffle": nn.PixelShuffle(2), "unshuffle": nn.PixelUnshuffle(2),
    }))
    x1, x2, x3 = (run.data(torch.randn(2, 1, 9)), run.data(torch.randn(2, 1, 10, 10)),
                  run.data(torch.randn(1, 1, 6, 6, 6)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss(step):
        a, b, c = model["conv1"](x1), model["conv2"](x2), model["conv3"](x3)
        outs = [
            F.interpolate(a, scale_factor=2.5, mode="linear", align_corners=False),
            F.interpolate(a, size=4, mode="nearest"), F.interpolate(a, size=11, mode="nearest-exact"),
            F.interpolate(b, scale_factor=2, mode="nearest"),
            F.interpolate(b, size=(13, 7), mode="nearest-exact"),
            F.interpolate(b, size=(11, 5), mode="bilinear", align_corners=True),
            F.interpolate(b, scale_factor=1.7, mode="bilinear", align_corners=False),
            F.interpolate(b, size=(12, 9), mode="bicubic", align_corners=False),
            F.interpolate(b, size=(3, 4), mode="bilinear", antialias=True),
            F.interpolate(b, size=(5, 3), mode="bicubic", antialias=True),
            F.interpolate(b, size=(3, 5), mode="area"),
            F.interpolate(c, scale_factor=1.5, mode="trilinear", align_corners=True),
            F.interpolate(c, size=(3, 5, 7), mode="nearest"),
            model["upsample"](b), model["unshuffle"](model["shuffle"](b)),
        ]
        return sum(o.pow(2).mean() for o in outs)

    run.train(model, optimizer, loss)


@case
def spatial_transformer(run):
    """affine_grid + grid_sample: every mode and padding mode, 2-D and 3-D."""
    model = run.model(nn.ModuleDict({"theta2": nn.Linear(16, 6), "theta3": nn.Linear(16, 12)}))
    with torch.no_grad():  # start near the identity transform
        model["theta2"].weight.mul_(0.01)
        model["theta2"].bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]))
        model["theta3"].weight.mul_(0.01)
        model["theta3"].bias.copy_(torch.eye(3, 4).flatten())
    image, volume = run.data(torch.randn(2, 3, 8, 8)), run.data(torch.randn(2, 1, 4, 5, 6))
    code = run.data(torch.randn(2, 16))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss(step):
        theta = model["theta2"](code).view(2, 2, 3)
        total = 0
        for align in (False, True):
            grid = F.affine_grid(theta, (2, 3, 6, 7), align_corners=align)
            for mode in ("bilinear", "nearest", "bicubic"):
                for padding in ("zeros", "border", "reflection"):
                    out = F.grid_sample(image, grid, mode=mode, padding_mode=padding,
                                        align_corners=align)
                    total = total + (out - image[:, :, :6, :7]).pow(2).mean()
        grid3 = F.affine_grid(model["theta3"](code).view(2, 3, 4), (2, 1, 3, 4, 5), align_corners=False)
        for mode in ("bilinear", "nearest"):
            total = total + F.grid_sample(volume, grid3, mode=mode, align_corners=False).pow(2).mean()
        return total

    run.train(model, optimizer, loss)


# ------------------------------------------------------------------ activations and other layers


@case
def activations(run):
    activations = [nn.ReLU(), nn.ReLU6(), nn.LeakyReLU(0.1), nn.PReLU(4), nn.RReLU(), nn.ELU(),
                   nn.SELU(), nn.CELU(0.5), nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(),
                   nn.Mish(), nn.Hardswish(), nn.Hardsigmoid(), nn.Hardtanh(-0.5, 0.5),
                   nn.Hardshrink(0.1), nn.Softshrink(0.1), nn.Tanhshrink(), nn.Softplus(beta=2),
                   nn.Softsign(), nn.LogSigmoid(), nn.Sigmoid(), nn.Tanh(), nn.Threshold(0.1, -1.0),
                   nn.Softmax(-1), nn.LogSoftmax(-1), nn.Softmin(-1)]
    model = run.model(nn.ModuleList([nn.Sequential(nn.Linear(4, 4), act) for act in activations]
                                    + [nn.Linear(4, 8), nn.GLU(), nn.Softmax2d()]))
    x = run.data(torch.randn(3, 4))
    optimizer = torch.optim.NAdam(model.parameters(), lr=1e-2)

    def loss(step):
        h, total = x, 0
        for layer in model[:len(activations)]:
            h = layer(h)
            total = total + h.pow(2).mean()
        glu = model[-2](model[-3](h))
        return total + glu.pow(2).mean() + model[-1](glu.view(1, 3, 2, 2)).pow(2).mean()

    run.train(model, optimizer, loss)


@case
def assorted_layers(run):
    """Bilinear, Fold/Unfold, padding layers, distances, Flatten/Unflatten, ChannelShuffle."""
    model = run.model(nn.ModuleDict({
        "bilinear": nn.Bilinear(4, 5, 3), "conv": nn.Conv2d(4, 4, 3, padding=1),
        "unfold": nn.Unfold(2, stride=2), "fold": nn.Fold((6, 6), 2, stride=2),
        "reflect": nn.ReflectionPad2d((1, 2, 0, 1)), "replicate": nn.ReplicationPad2d(1),
        "zero": nn.ZeroPad2d(2), "constant": nn.ConstantPad1d((2, 1), 0.5),
        "flatten": nn.Flatten(), "unflatten": nn.Unflatten(1, (4, 36)),
        "cosine": nn.CosineSimilarity(), "pairwise": nn.PairwiseDistance(p=1.5),
    }))
    x, y = run.data(torch.randn(3, 4)), run.data(torch.randn(3, 5))
    image = run.data(torch.randn(2, 4, 6, 6))
    shuffle = getattr(nn, "ChannelShuffle", None)
    optimizer = torch.optim.RAdam(model.parameters(), lr=1e-2)

    def loss(step):
        b = model["bilinear"](x, y)
        c = model["conv"](image)
        total = model["fold"](model["unfold"](c)).pow(2).mean() + b.pow(2).mean()
        for pad in ("reflect", "replicate", "zero"):
            total = total + model[pad](c).pow(3).mean()
        total = total + model["constant"](b).sum()
        total = total + model["unflatten"](model["flatten"](c)).pow(2).mean()
        total = total + model["cosine"](b, x[:, :3]).sum() + model["pairwise"](b, x[:, 1:]).sum()
        total = total + F.pad(c, (1, 1, 2, 0), mode="circular").pow(2).mean()
        if shuffle is not None:
            total = total + (shuffle(2)(image) * c).mean()  # no derivative in 1.x
        return total

    run.train(model, optimizer, loss)


@case
def parametrizations(run):
    from torch.nn.utils import parametrizations, parametrize
    linear = nn.Linear(5, 5)
    parametrizations.orthogonal(linear)
    spectral = parametrizations.spectral_norm(nn.Linear(5, 4))  # power iteration from a random u
    if hasattr(parametrizations, "weight_norm"):
        normed = parametrizations.weight_norm(nn.Linear(4, 3))
    else:
        normed = nn.utils.weight_norm(nn.Linear(4, 3))

    class Symmetric(nn.Module):
        def forward(self, weight):
            return weight.triu() + weight.triu(1).transpose(0, 1)

    symmetric = nn.Linear(3, 3)
    parametrize.register_parametrization(symmetric, "weight", Symmetric())
    model = run.model(nn.Sequential(linear, nn.Tanh(), spectral, nn.Tanh(), normed, symmetric))
    x = run.data(torch.randn(6, 5))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    run.train(model, optimizer, lambda step: model(x).pow(2).mean())


@case
def activation_checkpointing(run):
    """torch.utils.checkpoint reruns dropout in backward: it must replay the same RNG state."""
    from torch.utils.checkpoint import checkpoint
    model = run.model(nn.ModuleList([
        nn.Sequential(nn.Linear(6, 12), nn.Dropout(0.3), nn.GELU()),
        nn.Sequential(nn.Linear(12, 12), nn.Dropout(0.3), nn.Tanh()), nn.Linear(12, 2)]))
    x = run.data(torch.randn(5, 6))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss(step):
        h = checkpoint(model[0], x, use_reentrant=False)
        h = checkpoint(model[1], h.requires_grad_(), use_reentrant=True)
        return model[2](h).pow(2).mean()

    run.train(model, optimizer, loss)


@case
def device_random(run):
    """Random data drawn directly on the device: redirected, that is the target's generator."""
    d = run.device
    x = torch.randn(16, 3, device=d)
    noise = torch.empty(16, 3, device=d).uniform_(-0.1, 0.1)
    mask = torch.empty(16, 1, device=d).bernoulli_(0.8)
    labels = torch.randint(0, 4, (16,), device=d)
    order = torch.randperm(16, device=d)
    draws = torch.multinomial(torch.rand(4, device=d), 8, replacement=True)
    normal = torch.normal(torch.zeros(3, device=d), torch.ones(3, device=d))
    generator = torch.Generator(device=d).manual_seed(7)
    own = torch.randn(4, device=d, generator=generator)
    run.record("drawn", [x, noise, mask, labels, order, draws, normal, own,
                         torch.rand(2, device=d, dtype=torch.float64),
                         torch.empty(3, device=d).exponential_(), torch.rand_like(x)])
    model = run.model(mlp([3, 8, 4]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run.train(model, optimizer,
              lambda step: F.cross_entropy(model((x + noise)[order] * mask[order]), labels[order]))


@case
def cuda_rng_api(run):
    """Seeding and replaying RNG state the way CUDA code does (torch.cuda.*), against the same
    through torch.* on the CPU: torch.cuda's RNG is the target's generator."""
    rng = torch.cuda if run.device == "cuda" else torch
    model = run.model(nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1)))
    x = run.data(torch.randn(6, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    rng.manual_seed(1234)
    seed_all = getattr(rng, "manual_seed_all", rng.manual_seed)
    seed_all(99)

    def loss(step):
        state = rng.get_rng_state()
        first = model(x)
        rng.set_rng_state(state)  # replay: the same dropout mask again
        return (first - model(x)).pow(2).mean() + first.pow(2).mean()

    run.train(model, optimizer, loss)
    run.record("rng_state", rng.get_rng_state())


@case
def dataloader_pinned(run):
    """A shuffling DataLoader with pin_memory=True, batches moved with non_blocking=True."""
    from torch.utils.data import DataLoader, TensorDataset
    dataset = TensorDataset(torch.randn(20, 3), torch.randint(2, (20,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns where it has nothing to pin for
        batches = [(x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True))
                   for x, y in DataLoader(dataset, batch_size=6, shuffle=True, pin_memory=True)]
    model = run.model(mlp([3, 6, 2]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run.train(model, optimizer, lambda step: F.cross_entropy(model(batches[step][0]), batches[step][1]),
              steps=len(batches))


@case
def data_parallel(run):
    """nn.DataParallel as a one-GPU CUDA script uses it (on a machine without CUDA, torch makes
    it a plain wrapper)."""
    model = run.model(nn.DataParallel(mlp([4, 8, 2])))
    x = run.data(torch.randn(6, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run.train(model, optimizer, lambda step: model(x).pow(2).mean())


@case
def torchscript(run):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = nn.GRUCell(3, 6)
            self.head = nn.Linear(6, 2)

        def forward(self, xs):
            h = torch.zeros(xs.shape[1], 6, device=xs.device, dtype=xs.dtype)
            for x in xs:
                h = self.cell(x, h)
            return self.head(h)

    model = run.model(torch.jit.script(Net()))
    xs = run.data(torch.randn(4, 5, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    run.train(model, optimizer, lambda step: model(xs).pow(2).mean())


# ----------------------------------------------------------------------------- optimisers


def optimiser_case(name, make):
    def train(run):
        model = run.model(mlp([5, 12, 12, 3]))
        x, y = run.data(torch.randn(10, 5)), run.data(torch.randint(3, (10,)))
        optimizer = make(model.parameters())
        run.train(model, optimizer, lambda step: F.cross_entropy(model(x), y),
                  closure=isinstance(optimizer, torch.optim.LBFGS))
        for index, state in optimizer.state_dict()["state"].items():
            for key, value in state.items():
                if torch.is_tensor(value):  # "step" is the counter torch keeps on the CPU
                    run.record(f"optimizer_state.{index}.{key}", value)

    train.__name__ = name
    return case(train)


def variant(cls, flag, **kwargs):
    """cls with flag=True where its constructor has it (else a Skip: a torch limit). On the CPU
    without torchdevice, where torch has no kernel for it (1.13's fused Adam is CUDA's alone), the
    same update unfused is the reference, as CUDA code asking for it gets through torchdevice;
    with torchdevice, a refusal is recorded as the case's error, never a skip."""
    def make(params):
        needs(flag in inspect.signature(cls.__init__).parameters, f"{flag}= for {cls.__name__}")
        params = list(params)
        try:
            return cls(params, **kwargs, **{flag: True})
        except RuntimeError:
            if "torchdevice" in sys.modules:
                raise
            return cls(params, **kwargs)
    return make


OPTIMISERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2),
    "adam_amsgrad": lambda p: torch.optim.Adam(p, lr=1e-2, amsgrad=True, weight_decay=1e-2),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2),
    "adadelta": lambda p: torch.optim.Adadelta(p),
    "adamax": lambda p: torch.optim.Adamax(p, lr=1e-2),
    "asgd": lambda p: torch.optim.ASGD(p, lr=1e-2, t0=1),
    "rmsprop_centered": lambda p: torch.optim.RMSprop(p, lr=1e-2, centered=True, momentum=0.5),
    "rprop": lambda p: torch.optim.Rprop(p, lr=1e-2),
    "lbfgs": lambda p: torch.optim.LBFGS(p, lr=0.5, max_iter=4, line_search_fn="strong_wolfe"),
}
for _cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad,
             torch.optim.RMSprop, torch.optim.NAdam, torch.optim.RAdam):
    OPTIMISERS[f"{_cls.__name__.lower()}_foreach"] = variant(_cls, "foreach", lr=1e-2)
for _cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad):
    OPTIMISERS[f"{_cls.__name__.lower()}_fused"] = variant(_cls, "fused", lr=1e-2)
for _name, _make in OPTIMISERS.items():
    optimiser_case(f"optim_{_name}", _make)


@case
def lr_schedulers(run):
    model = run.model(mlp([4, 8, 2]))
    x = run.data(torch.randn(6, 4))
    adam = torch.optim.Adam(model[0].parameters(), lr=1e-2)
    sgd = torch.optim.SGD(model[2].parameters(), lr=0.1, momentum=0.9)
    schedulers = [torch.optim.lr_scheduler.OneCycleLR(adam, max_lr=0.1, total_steps=5),
                  torch.optim.lr_scheduler.CosineAnnealingLR(sgd, T_max=3)]

    def clip():
        nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        nn.utils.clip_grad_value_(model.parameters(), 0.05)

    run.train(model, [adam, sgd], lambda step: model(x).pow(2).mean(), schedulers=schedulers,
              before_step=clip)


# -------------------------------------------------------------------------------- autocast


def autocast_model():
    return nn.ModuleDict({"conv": nn.Conv2d(3, 4, 3), "lstm": nn.LSTM(4, 6, batch_first=True),
                          "head": nn.Linear(6, 3)})


def autocast_train(run, region):
    model = run.model(autocast_model())
    x, y = run.data(torch.randn(2, 3, 6, 6)), run.data(torch.randint(3, (2, 4)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss(step):
        with region():
            h = model["conv"](x).mean(-1).transpose(1, 2)  # (batch, time=4, 4)
            out, _ = model["lstm"](h)
            logits = model["head"](out)
            probe = torch.mm(h[0], h[0].t())
        run.tensors["autocast_probe"] = probe  # its dtype says what the region cast to
        return F.cross_entropy(logits.float().reshape(-1, 3), y.reshape(-1))

    run.train(model, optimizer, loss)


@case
def autocast_bfloat16(run):
    """torch.autocast(<device>, dtype=torch.bfloat16): 'cuda' when redirected, else 'cpu'."""
    run_type = "cuda" if run.device == "cuda" else torch.device(run.device).type
    autocast_train(run, lambda: torch.autocast(run_type, dtype=torch.bfloat16))


def cpu_autocasts_float16():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # some versions warn and disable the region instead
            with torch.autocast("cpu", dtype=torch.float16):
                return torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float16
    except RuntimeError:  # 1.13: "AutocastCPU only support Bfloat16"
        return False


@case
def autocast_cuda_default_dtype(run):
    """torch.autocast('cuda') with CUDA's default dtype (float16) where redirected, compared with
    torch.autocast('cpu', dtype=D) where D is what the CPU autocasts that to: float16 where this
    torch's CPU autocast supports it, bfloat16 where not (torch 1.x; torchdevice warns so once)."""
    if run.device == "cuda":
        def region():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.autocast("cuda")
    else:
        dtype = torch.float16 if cpu_autocasts_float16() else torch.bfloat16

        def region():
            return torch.autocast(torch.device(run.device).type, dtype=dtype)
    autocast_train(run, region)


# ------------------------------------------------------------------------------ torchvision


def vision_classifier(run, build, size, lr=0.01):
    torchvision = vision()
    model = run.model(build(torchvision.models))
    x, y = run.data(torch.randn(2, 3, size, size)), run.data(torch.randint(10, (2,)))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    run.train(model, optimizer, lambda step: F.cross_entropy(model(x), y), steps=2)
    model.eval()
    with torch.no_grad():
        run.record("eval", model(x))


@case
def vision_resnet18(run):
    vision_classifier(run, lambda models: models.resnet18(num_classes=10), 32)


@case
def vision_mobilenet_v3_small(run):
    vision_classifier(run, lambda models: models.mobilenet_v3_small(num_classes=10), 32)


@case
def vision_squeezenet(run):
    vision_classifier(run, lambda models: models.squeezenet1_1(num_classes=10), 48)


@case
def vision_ops(run):
    torchvision = vision()
    from torchvision import ops
    model = run.model(nn.ModuleDict({
        "backbone": nn.Conv2d(3, 8, 3, padding=1), "offsets": nn.Conv2d(8, 18, 3, padding=1),
        "deform": ops.DeformConv2d(8, 4, 3, padding=1), "head": nn.Linear(8 * 9, 4)}))
    image = run.data(torch.randn(2, 3, 16, 16))
    boxes = run.data(torch.tensor([[0, 1.0, 1.0, 9.0, 7.0], [0, 4.0, 2.0, 15.0, 14.0],
                                   [1, 0.5, 0.5, 6.0, 12.0], [1, 3.0, 3.0, 8.0, 8.0]]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss(step):
        features = model["backbone"](image)
        deformed = model["deform"](features, model["offsets"](features))
        aligned = ops.roi_align(features, boxes, 3, spatial_scale=1.0, sampling_ratio=2, aligned=True)
        pooled = ops.roi_pool(features, boxes, 3)
        ps = ops.ps_roi_align(deformed.repeat(1, 9, 1, 1), boxes, 3)
        scores = model["head"](aligned.flatten(1))
        return scores.pow(2).mean() + pooled.pow(2).mean() + ps.pow(2).mean()

    run.train(model, optimizer, loss)
    with torch.no_grad():  # detection post-processing on what the model now predicts
        features = ops.roi_align(model["backbone"](image), boxes, 3).flatten(1)
        scores = model["head"](features).sigmoid()
        candidates = boxes[:, 1:].repeat(4, 1) + run.data(torch.arange(16.0)).view(-1, 1) / 4
        flat_scores = scores.t().reshape(-1)
        run.record("nms", ops.nms(candidates, flat_scores, 0.5))
        run.record("batched_nms", ops.batched_nms(candidates, flat_scores,
                                                  run.data(torch.arange(16) % 3), 0.3))
        run.record("box_iou", ops.box_iou(candidates, candidates))
        run.record("giou", ops.generalized_box_iou(candidates, candidates))
    del torchvision


# ---------------------------------------------------------------------------------- runner


def run_case(name, device):
    """The case's result, and the values of the tensors it recorded (dense, on the CPU)."""
    run = Run(device)
    torch.manual_seed(0)
    try:
        CASES[name](run)
    except Skip as skip:
        return {"skipped": str(skip)}, {}
    except Exception as error:  # recorded, so that one case cannot hide the others
        return {"error": f"{type(error).__name__}: {error}"}, {}
    values = {}
    for key, tensor in run.tensors.items():
        tensor = tensor.detach()
        values[key] = (tensor.to_dense() if tensor.is_sparse else tensor).cpu()
    return run.result(), values


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--torchdevice", action="store_true", help="import torchdevice first")
    parser.add_argument("out")
    parser.add_argument("--values", help="also save every recorded tensor here (torch.save)")
    parser.add_argument("cases", nargs="*", help="run only these")
    args = parser.parse_args()
    if args.torchdevice:
        import torchdevice  # noqa: F401
    torch.set_num_threads(1)
    results, values = {}, {}
    for name in args.cases or CASES:
        results[name], values[name] = run_case(name, args.device)
    if args.values:
        torch.save(values, args.values)
    results["_process"] = {"torch": torch.__version__, "torchdevice": "torchdevice" in sys.modules}
    with open(args.out, "w") as out:
        json.dump(results, out, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
