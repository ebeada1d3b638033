"""model.cuda() keeps each Parameter object, as on CUDA: an optimizer built before the move trains
the model, and parameters the model shares (tied input and output embeddings) stay one. torch
keeps them only where it moves a parameter's data in place (CPU, CUDA, MPS, XPU, HPU); a move
onto a PrivateUse1 device (the stand-in) makes new ones, and CUDA code would then silently train
nothing, or another model."""

import weakref

import pytest
import torch

import torchdevice


class TiedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(50, 16)
        self.body = torch.nn.Linear(16, 16)
        self.head = torch.nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(torch.tanh(self.body(self.embed(ids))))


def loss_and_grad(model, ids):
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
    loss.backward()
    return loss.detach().cpu(), model.embed.weight.grad.cpu()


@pytest.mark.parametrize("move", ["cuda()", "to('cuda')", "to(torch.device('cuda'))"])
def test_shared_parameters_stay_shared(move):
    model = eval(f"TiedLM().{move}")
    assert model.embed.weight.device == torchdevice.target()
    assert model.head.weight is model.embed.weight
    back = model.cpu()
    assert back.head.weight is back.embed.weight


def test_a_tied_model_trains_on_the_target_as_on_the_cpu():
    ids = torch.randint(0, 50, (4, 8), generator=torch.Generator().manual_seed(1))
    ours = loss_and_grad(TiedLM().cuda(), ids.cuda())
    theirs = loss_and_grad(TiedLM(), ids)
    torch.testing.assert_close(ours, theirs)


def test_an_optimizer_built_before_the_move_trains_the_model():
    ids = torch.randint(0, 50, (4, 8), generator=torch.Generator().manual_seed(1))

    def trained(device):
        model = TiedLM()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        model.to(device)
        for _ in range(3):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(ids.to(device)).flatten(0, 1),
                                              ids.to(device).flatten()).backward()
            optimizer.step()
        return [p.detach().cpu() for p in model.parameters()]

    moved, reference = trained("cuda"), trained("cpu")
    assert not torch.equal(reference[0], TiedLM().embed.weight)  # it did train
    torch.testing.assert_close(moved, reference)


def test_gradients_move_with_their_parameters():
    model = TiedLM()
    model(torch.tensor([[1, 2]])).sum().backward()
    grad = model.embed.weight.grad.clone()
    model.cuda()
    assert model.embed.weight.grad.device == torchdevice.target()
    assert model.head.weight.grad is model.embed.weight.grad
    torch.testing.assert_close(model.embed.weight.grad.cpu(), grad)


def test_a_parameter_that_cannot_be_swapped_keeps_its_ties():
    if torch._has_compatible_shallow_copy_type(torch.ones(1), torch.ones(1, device="cuda")):
        pytest.skip("torch moves parameters onto this target in place, keeping them: needs a "
                    "PrivateUse1 target (the stand-in)")
    model = TiedLM()
    watched = weakref.ref(model.embed.weight)  # torch.utils.swap_tensors refuses such a tensor
    model.cuda()
    assert model.embed.weight.device == torchdevice.target()
    assert model.head.weight is model.embed.weight
    assert watched() is not model.embed.weight
