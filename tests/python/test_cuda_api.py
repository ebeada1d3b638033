"""torch.cuda queries answer for the target while installed, and are torch's own again after."""

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect, run_python

pytestmark = requires_cuda_redirect


def processor_name():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    pytest.skip("no processor name in /proc/cpuinfo")


def test_queries_describe_the_target(target):
    assert torch.cuda.is_available() is True
    assert torch.cuda.device_count() == 1
    assert torch.cuda.current_device() == 0
    assert torch.cuda.is_initialized() is True
    torch.cuda.init()
    if target.type == "cpu":
        assert torch.cuda.get_device_name() == processor_name()
        assert torch.cuda.get_device_name(0) == torch.cuda.get_device_name("cuda:0")
    assert torch.cuda.get_device_capability() == (0, 0)


@pytest.mark.parametrize("device", [0, 1, "cuda", "cuda:1", torch.device("cuda")], ids=repr)
def test_set_device_and_context_accept_every_cuda_spelling(device, target):
    torch.cuda.set_device(device)
    with torch.cuda.device(device):
        assert torch.zeros(1, device="cuda").device == target
    torch.cuda.synchronize(device)
    assert torch.cuda.current_device() == 0


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (-1, RuntimeError, "must not be negative"),
        ("cuda:x", RuntimeError, "'cuda:x'"),
        ("meta", ValueError, "Expected a cuda device, but got: meta"),
        (1.5, TypeError, "float"),
        (None, ValueError, "None"),
    ],
)
def test_set_device_rejects_bad_input_clearly(bad, error, message):
    with pytest.raises(error, match=message):
        torch.cuda.set_device(bad)


def test_device_context_allows_no_device():
    before = torch.cuda.current_device()
    for no_device in (-1, None):  # CUDA's "no device": the context changes nothing
        with torch.cuda.device(no_device):
            assert torch.cuda.current_device() == before
            assert torch.zeros(1, device="cuda").device == torchdevice.target()
        assert torch.cuda.current_device() == before
    x = torch.zeros(1, device="cuda")
    with torch.cuda.device_of(x):
        assert torch.zeros(1, device="cuda").device == x.device
    assert torch.cuda.current_device() == before


def test_seeding_for_cuda_is_reproducible_on_the_target():
    torch.cuda.manual_seed(1234)
    first = torch.randn(5, device="cuda")
    torch.cuda.manual_seed_all(1234)
    second = torch.randn(5, device="cuda")
    assert torch.equal(first, second)
    assert torch.cuda.initial_seed() == 1234
    torch.manual_seed(99)  # torch.manual_seed also seeds every CUDA device: must not fail
    assert torch.cuda.initial_seed() == 99
    torch.cuda.manual_seed(-1)
    assert torch.cuda.initial_seed() == 2**64 - 1


@pytest.mark.parametrize("make", [
    lambda: torch.Generator(device="cuda"),
    lambda: torch.Generator("cuda:1"),
    lambda: torch.Generator(device=torch.device("cuda", 0)),
    lambda: torch.Generator(device=0),
], ids=["keyword", "positional-index", "torch.device", "bare-index"])
def test_cuda_generators_draw_on_the_target(make, target):
    generator = make()
    assert generator.device == target
    generator.manual_seed(5)
    first = torch.randn(4, device="cuda", generator=generator)
    generator.manual_seed(5)
    assert torch.equal(first, torch.randn(4, device="cuda", generator=generator))
    assert first.device == target


def test_generator_keeps_torchs_own_answers_for_the_rest():
    assert torch.Generator().device == torch.device("cpu")
    assert torch.Generator(device="cpu").device == torch.device("cpu")
    with pytest.raises(RuntimeError, match="cuda:x"):  # torch's own message for a bad spelling
        torch.Generator(device="cuda:x")


def test_default_generators_hold_the_one_cuda_seeding_seeds(target):
    (generator,) = torch.cuda.default_generators
    assert generator.device == target
    torch.cuda.manual_seed(11)
    assert generator.initial_seed() == 11
    assert torch.cuda.seed() is None and generator.initial_seed() == torch.cuda.initial_seed()


def test_rng_state_round_trips():
    torch.cuda.manual_seed(7)
    state = torch.cuda.get_rng_state()
    first = torch.rand(4, device="cuda")
    torch.cuda.set_rng_state(state)
    assert torch.equal(torch.rand(4, device="cuda"), first)
    states = torch.cuda.get_rng_state_all()
    assert len(states) == torch.cuda.device_count()
    torch.cuda.set_rng_state_all(states)
    torch.cuda.seed()
    torch.cuda.seed_all()


def test_uninstall_puts_every_original_back():
    torchdevice.uninstall()
    names = [n for n in dir(torch.cuda) if not n.startswith("__")]
    originals = {name: getattr(torch.cuda, name) for name in names}
    device_new, generator_new = torch.device.__new__, torch.Generator.__new__
    torchdevice.install()
    assert torch.cuda.is_available is not originals["is_available"]
    torchdevice.uninstall()
    assert [n for n in dir(torch.cuda) if not n.startswith("__")] == names
    for name in names:
        assert getattr(torch.cuda, name) is originals[name], name
    assert torch.device.__new__ == device_new
    assert torch.Generator.__new__ == generator_new
    assert torch.device("cuda").type == "cuda"
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.Generator(device="cuda")


@pytest.mark.skipif(torch.backends.cuda.is_built(), reason="needs a torch built without CUDA")
def test_uninstall_brings_back_torchs_own_error():
    torch.zeros(1, device="cuda")  # arms torch's lazy-init flag while installed
    torch.ones(1).cuda()
    torchdevice.uninstall()
    assert torch.cuda.is_available() is False
    with pytest.raises(AssertionError, match="Torch not compiled with CUDA enabled"):
        torch.zeros(1, device="cuda")
    with pytest.raises(AssertionError, match="Torch not compiled with CUDA enabled"):
        torch.ones(1).cuda()


def test_mps_availability_stays_truthful():
    truth = run_python(
        "import torch; print(torch.backends.mps.is_available())", {"TORCHDEVICE_DISABLE": "1"}
    ).stdout
    assert str(torch.backends.mps.is_available()) == truth.strip()
