"""Factories and copies reach the target through the dispatcher fallback, whoever calls them."""

import pytest
import torch

import torchdevice
from conftest import INDEX_MEANS_CUDA, REDIRECTS_CUDA, REDIRECTS_MPS, requires_cuda_redirect, run_python

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")

REDIRECTED_SPECS = (["cuda", "cuda:0", "cuda:3"] if REDIRECTS_CUDA else []) + (
    [0] if REDIRECTS_CUDA and INDEX_MEANS_CUDA else []
) + (
    ["mps"] if REDIRECTS_MPS else []
)

FACTORIES = {
    "zeros": lambda d: torch.zeros(2, 3, device=d),
    "ones": lambda d: torch.ones(2, device=d),
    "empty": lambda d: torch.empty(2, device=d),
    "full": lambda d: torch.full((2,), 7.0, device=d),
    "rand": lambda d: torch.rand(2, device=d),
    "randn": lambda d: torch.randn(2, device=d),
    "randint": lambda d: torch.randint(0, 5, (4,), device=d),
    "randperm": lambda d: torch.randperm(6, device=d),
    "arange": lambda d: torch.arange(5, device=d),
    "linspace": lambda d: torch.linspace(0, 1, 5, device=d),
    "logspace": lambda d: torch.logspace(0, 1, 3, device=d),
    "eye": lambda d: torch.eye(3, device=d),
    "empty_strided": lambda d: torch.empty_strided((2, 2), (2, 1), device=d),
    "tensor": lambda d: torch.tensor([1.0, 2.0], device=d),
    "as_tensor": lambda d: torch.as_tensor([1, 2], device=d),
    "zeros_like": lambda d: torch.zeros_like(torch.ones(2), device=d),
    "ones_like": lambda d: torch.ones_like(torch.ones(2), device=d),
    "rand_like": lambda d: torch.rand_like(torch.ones(2), device=d),
    "full_like": lambda d: torch.full_like(torch.ones(2), 3.0, device=d),
    "new_zeros": lambda d: torch.ones(2).new_zeros(3, device=d),
    "new_ones": lambda d: torch.ones(2).new_ones(3, device=d),
    "new_empty": lambda d: torch.ones(2).new_empty(3, device=d),
    "new_full": lambda d: torch.ones(2).new_full((3,), 2.0, device=d),
    "new_tensor": lambda d: torch.ones(2).new_tensor([5.0], device=d),
    "tril_indices": lambda d: torch.tril_indices(3, 3, device=d),
    "scalar_tensor": lambda d: torch.scalar_tensor(4.0, device=d),
    "sparse_coo_tensor": lambda d: torch.sparse_coo_tensor(
        torch.tensor([[0, 1]]), torch.tensor([1.0, 2.0]), (3,), device=d
    ),
}


@pytest.mark.parametrize("spec", REDIRECTED_SPECS)
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factory_lands_on_target(name, spec, target):
    try:
        expected = FACTORIES[name](target)
    except NotImplementedError as error:
        # The target itself lacks the kernel (the stand-in has no sparse ones): the redirected
        # request reaches it and gets torch's own error, naming the target's backend.
        with pytest.raises(NotImplementedError) as raised:
            FACTORIES[name](spec)
        assert str(raised.value).splitlines()[0] == str(error).splitlines()[0]
        return
    result = FACTORIES[name](spec)
    assert result.device == target
    assert result.shape == expected.shape and result.dtype == expected.dtype


@requires_cuda_redirect
def test_factory_values_are_the_requested_ones():
    assert torch.full((3,), 7.0, device="cuda").tolist() == [7.0, 7.0, 7.0]
    assert torch.arange(4, device="cuda").tolist() == [0, 1, 2, 3]
    assert torch.tensor([[1, 2]], device="cuda").tolist() == [[1, 2]]
    assert sorted(torch.randperm(5, device="cuda").tolist()) == [0, 1, 2, 3, 4]


@requires_cuda_redirect
@pytest.mark.filterwarnings("ignore:Named tensors:UserWarning")
def test_names_that_look_like_devices_are_not_devices(target):
    try:
        torch.zeros(1, names=("a",))
    except TypeError:
        pytest.skip("this torch's factories take no names")
    named = torch.zeros(2, names=("cuda",), device="cuda")
    assert named.device == target
    assert named.names == ("cuda",)


def test_explicit_cpu_is_untouched():
    cpu_tensor = torch.zeros(2, device="cpu")
    assert cpu_tensor.device.type == "cpu"
    assert cpu_tensor.to("cpu") is cpu_tensor  # torch's own no-op, not a redirected copy
    assert torch.ones(2).cpu().device.type == "cpu"


@requires_cuda_redirect
def test_functions_bound_before_import_and_private_entry_points():
    result = run_python(
        "import torch\n"
        "from torch import zeros\n"
        "import torchdevice\n"
        "print(zeros(1, device='cuda').device, torch._C._VariableFunctions.ones(1, device='cuda').device,"
        " torch.ops.aten.empty.memory_format([1], device=torch.device('cuda')).device)"
    )
    target = str(torchdevice.target())
    assert result.stdout.split() == [target] * 3


@requires_cuda_redirect
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is not supported:FutureWarning")
def test_torchscript_callers_are_redirected(target):
    @torch.jit.script
    def make(n: int, device: torch.device):
        return torch.ones(n, device=device) * 2

    assert make(3, torch.device("cuda")).device == target

    # The device string is parsed by TorchScript itself, never by Python's torch.device.
    @torch.jit.script
    def make_cuda():
        return torch.zeros(2, device="cuda")

    assert make_cuda().device == target


@requires_cuda_redirect
@pytest.mark.parametrize(
    "copy",
    {
        "cuda()": lambda t: t.cuda(),
        "cuda(1)": lambda t: t.cuda(1),
        "cuda(device=2)": lambda t: t.cuda(device=2),
        "to('cuda')": lambda t: t.to("cuda"),
        "to('cuda:1')": lambda t: t.to("cuda:1"),
        **({"to(0)": lambda t: t.to(0)} if INDEX_MEANS_CUDA else {}),
        "to(device=, dtype=)": lambda t: t.to(device="cuda", dtype=torch.float64),
        "non_blocking": lambda t: t.to("cuda", non_blocking=True),
    }.items(),
    ids=lambda item: item[0],
)
def test_redirected_copy_is_a_new_tensor_on_target(copy, target):
    source = torch.arange(4, dtype=torch.float32)
    result = copy[1](source)
    assert result.device == target
    assert torch.equal(result.cpu().to(source.dtype), source)
    if result.dtype == source.dtype:
        result.add_(100)  # mutating "the GPU copy" must not corrupt the original
    assert source.tolist() == [0.0, 1.0, 2.0, 3.0]


@requires_cuda_redirect
@pytest.mark.skipif(INDEX_MEANS_CUDA, reason="bare indices resolve to an accelerator here")
def test_bare_index_in_factories_is_torchs_own_error_without_any_accelerator():
    # Documented limit: torch's parser rejects it before the dispatcher; 'cuda:N' works.
    with pytest.raises(RuntimeError, match="Cannot access accelerator device"):
        torch.zeros(1, device=0)
    assert torch.zeros(1, device="cuda:0").device == torch.device("cuda:0")


@requires_cuda_redirect
def test_module_cuda_and_to(target):
    for move in (lambda m: m.cuda(), lambda m: m.to("cuda"), lambda m: m.cuda(0),
                 lambda m: m.cuda(device=1)):
        model = move(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)))
        assert {p.device for p in model.parameters()} == {target}
        assert {b.device for b in model.buffers()} == {target}


@requires_cuda_redirect
def test_autograd_through_redirected_copies(target):
    leaf = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (leaf.cuda() * 2).sum().backward()
    assert leaf.grad.tolist() == [2.0, 2.0, 2.0]
    leaf.grad = None
    (leaf.to("cuda") ** 2).sum().backward()
    assert leaf.grad.tolist() == [2.0, 4.0, 6.0]


@requires_cuda_redirect
def test_a_training_step_on_redirected_tensors_learns(target):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1).cuda()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs = torch.randn(64, 2, device="cuda")
    labels = inputs @ torch.tensor([[2.0], [-1.0]], device="cuda")
    losses = []
    for _ in range(50):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), labels)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 100
    assert model.weight.device == target


@requires_cuda_redirect
def test_malformed_device_arguments_are_torch_errors():
    for bad in ("cuda:-1", "cuda:x", "gpu", "cuda:0:0"):
        with pytest.raises(RuntimeError, match="device"):
            torch.zeros(1, device=bad)
    with pytest.raises(RuntimeError):
        torch.ones(1).to("cuda:-2")
    with pytest.raises(RuntimeError, match="negative"):
        torch.ones(1).cuda(-1)
