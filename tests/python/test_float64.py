"""The float64 policy (TORCHDEVICE_FLOAT64, install(float64=...)): what a redirected request for
float64 or complex128 gets. 'float32' narrows on any target, so these tests run on the CPU target
too; 'auto' narrows only where the target refuses float64 (MPS: the emulated MPS)."""
import io
import os

import pytest
import torch

import torchdevice
from conftest import REDIRECTS_CUDA, run_python, target_refuses

pytestmark = pytest.mark.skipif(not REDIRECTS_CUDA, reason="CUDA is not redirected here")

NARROWED = ["float64 -> float32", "complex128 -> complex64"]


TARGET_LACKS_FLOAT64 = target_refuses(torch.float64)
requires_no_float64 = pytest.mark.skipif(
    not TARGET_LACKS_FLOAT64, reason="needs a target without float64 (MPS: the emulated MPS)")
requires_float64 = pytest.mark.skipif(
    TARGET_LACKS_FLOAT64, reason="needs a target with float64 (the CPU, the plain stand-in)")


@pytest.fixture
def float32_policy():
    torchdevice.install(float64="float32")
    yield torchdevice.target()


@pytest.fixture
def default_dtype():
    before = torch.get_default_dtype()
    yield
    torch.set_default_dtype(before)


VALUES = [0.1, 1.0 / 3.0, -2.5e-3, 12345.678901234]


def expect_narrowed(tensor, values, target, dtype=torch.float32):
    assert tensor.device == target
    assert tensor.dtype == dtype
    wide = torch.complex128 if dtype.is_complex else torch.float64
    assert torch.equal(tensor.cpu(), torch.tensor(values, dtype=wide).to(dtype))


def test_the_policy_in_force_is_reported():
    torchdevice.install(float64="float32")
    assert torchdevice._C.float64_policy() == ("float32", NARROWED)
    torchdevice.install(float64="error")
    assert torchdevice._C.float64_policy() == ("error", [])
    torchdevice.install(float64="auto")
    assert torchdevice._C.float64_policy() == (
        "auto", [name for name, dtype in zip(NARROWED, (torch.float64, torch.complex128))
                 if target_refuses(dtype)])


def test_a_bad_policy_is_refused_and_changes_nothing():
    torchdevice.install(float64="float32")
    with pytest.raises(RuntimeError, match="unknown float64 policy 'float16'.*'auto'.*'float32'"):
        torchdevice.install(float64="float16")
    assert torchdevice.is_installed()
    assert torchdevice._C.float64_policy()[0] == "float32"


def test_the_environment_sets_the_policy_and_a_bad_value_fails_import():
    code = "import torch, torchdevice; print(torchdevice._C.float64_policy()[0])"
    assert run_python(code, env={"TORCHDEVICE_FLOAT64": "float32"}).stdout.strip() == "float32"
    failed = run_python(code, env={"TORCHDEVICE_FLOAT64": "double"}, check=False)
    assert failed.returncode != 0
    assert "unknown float64 policy 'double'" in failed.stderr


ASKS = {
    "torch.tensor(device=)": lambda v: torch.tensor(v, dtype=torch.float64, device="cuda"),
    ".cuda()": lambda v: torch.tensor(v, dtype=torch.float64).cuda(),
    ".to('cuda')": lambda v: torch.tensor(v, dtype=torch.float64).to("cuda"),
    ".to(device=, dtype=)": lambda v: torch.tensor(v, dtype=torch.float32).to(
        device="cuda", dtype=torch.float64),
    ".to('cuda', float64)": lambda v: torch.tensor(v).to("cuda", torch.float64),
    "torch.cuda.DoubleTensor": lambda v: torch.cuda.DoubleTensor(v),
    ".type('torch.cuda.DoubleTensor')": lambda v: torch.tensor(v, dtype=torch.float64).type(
        "torch.cuda.DoubleTensor"),
}


@pytest.mark.parametrize("ask", ASKS.values(), ids=ASKS.keys())
def test_each_way_of_asking_for_float64_lands_float32(ask, float32_policy):
    expect_narrowed(ask(VALUES), VALUES, float32_policy)


def test_numpy_float64_lands_float32(float32_policy):
    numpy = pytest.importorskip("numpy")
    array = numpy.array(VALUES)
    expect_narrowed(torch.from_numpy(array).cuda(), VALUES, float32_policy)
    expect_narrowed(torch.tensor(array, device="cuda"), VALUES, float32_policy)
    expect_narrowed(torch.as_tensor(array, device="cuda"), VALUES, float32_policy)


@pytest.mark.parametrize("factory", [
    lambda: torch.zeros(2, 3, dtype=torch.float64, device="cuda"),
    lambda: torch.ones(4, dtype=torch.float64, device="cuda:0"),
    lambda: torch.full((2,), 0.1, dtype=torch.float64, device="cuda"),
    lambda: torch.arange(0, 1, 0.25, dtype=torch.float64, device="cuda"),
    lambda: torch.randn(3, dtype=torch.float64, device="cuda"),
    lambda: torch.empty(5, dtype=torch.float64, device="cuda:1"),
    lambda: torch.eye(3, dtype=torch.float64, device="cuda"),
    lambda: torch.linspace(0, 1, 5, dtype=torch.float64, device="cuda"),
    lambda: torch.zeros_like(torch.zeros(2, dtype=torch.float64), device="cuda"),
    lambda: torch.zeros(2).new_zeros(3, dtype=torch.float64, device="cuda"),
], ids=["zeros", "ones", "full", "arange", "randn", "empty", "eye", "linspace", "zeros_like",
        "new_zeros"])
def test_factories_asked_for_float64_make_float32(factory, float32_policy):
    made = factory()
    assert made.device == float32_policy
    assert made.dtype == torch.float32


def test_complex128_lands_complex64(float32_policy):
    values = [1 + 2j, 0.1 - 1j / 3]
    made = torch.tensor(values, dtype=torch.complex128).cuda()
    expect_narrowed(made, values, float32_policy, torch.complex64)
    assert torch.zeros(2, dtype=torch.complex128, device="cuda").dtype == torch.complex64


def test_default_dtype_float64_then_a_cuda_factory(float32_policy, default_dtype):
    torch.set_default_dtype(torch.float64)
    assert torch.zeros(3, device="cuda").dtype == torch.float32
    assert torch.randn(2, device="cuda").dtype == torch.float32
    assert torch.arange(0.0, 1.0, 0.5, device="cuda").dtype == torch.float32
    expect_narrowed(torch.tensor(VALUES, device="cuda"), VALUES, float32_policy)
    # Integers are no concern of the policy.
    assert torch.arange(3, device="cuda").dtype == torch.int64
    # The CPU keeps the default dtype.
    assert torch.zeros(3).dtype == torch.float64


def test_explicit_cpu_and_non_redirected_work_keep_float64(float32_policy):
    assert torch.zeros(2, dtype=torch.float64).dtype == torch.float64
    assert torch.zeros(2, dtype=torch.float64, device="cpu").dtype == torch.float64
    on_target = torch.tensor(VALUES, dtype=torch.float64).cuda()
    assert on_target.to("cpu", torch.float64).dtype == torch.float64
    assert on_target.cpu().double().dtype == torch.float64
    assert torch.tensor(VALUES, dtype=torch.float64).to("cpu").dtype == torch.float64


@requires_float64
def test_explicit_target_requests_are_not_redirected_and_keep_float64(float32_policy):
    if float32_policy.type == "cpu":
        pytest.skip("on the CPU target an explicit request is 'cpu', tested above")
    made = torch.zeros(2, dtype=torch.float64, device=float32_policy.type)
    assert made.dtype == torch.float64


def test_autograd_through_a_narrowed_copy_gives_a_float64_grad(float32_policy):
    x = torch.tensor(VALUES, dtype=torch.float64, requires_grad=True)
    y = x.cuda()
    assert y.dtype == torch.float32
    (y * 2).sum().backward()
    assert x.grad.dtype == torch.float64
    assert torch.equal(x.grad, torch.full((4,), 2.0, dtype=torch.float64))


def test_a_float64_module_moved_to_cuda_trains(float32_policy):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 1)).double().cuda()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.device for p in model.parameters()} == {float32_policy}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = torch.randn(32, 4, dtype=torch.float64).cuda()
    target = data.sum(dim=1, keepdim=True)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = (model(data) - target).pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_grad_scaler_and_optimizer_state_on_the_target(float32_policy):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = (torch.amp.GradScaler("cuda") if hasattr(torch.amp, "GradScaler")
              else torch.cuda.amp.GradScaler())
    data = torch.randn(16, 4, device="cuda")
    before = model.weight.detach().clone()
    for _ in range(3):
        optimizer.zero_grad()
        loss = model(data).pow(2).mean()
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        scaler.step(optimizer)
        scaler.update()
    assert not torch.equal(model.weight.detach(), before)
    momentum = optimizer.state[model.weight]["momentum_buffer"]
    assert momentum.device == float32_policy and momentum.dtype == torch.float32


def storage_ptr(tensor):
    storage = tensor.untyped_storage() if hasattr(tensor, "untyped_storage") else tensor.storage()
    return storage.data_ptr()


def _checkpoint(tensors):
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("map_location", ["cuda", "cuda:0"])
def test_torch_load_onto_cuda_narrows_and_keeps_shared_storage(map_location, float32_policy):
    base = torch.tensor(VALUES * 2, dtype=torch.float64)
    saved = {"base": base, "view": base[2:6], "ints": torch.arange(3),
             "single": torch.tensor(VALUES, dtype=torch.float32)}
    loaded = torch.load(_checkpoint(saved), map_location=map_location)
    expect_narrowed(loaded["base"], VALUES * 2, float32_policy)
    expect_narrowed(loaded["view"], (VALUES * 2)[2:6], float32_policy)
    assert storage_ptr(loaded["view"]) == storage_ptr(loaded["base"])
    assert loaded["ints"].dtype == torch.int64 and loaded["ints"].device == float32_policy
    assert torch.equal(loaded["single"].cpu(), saved["single"])


def test_torch_load_of_a_cuda_checkpoint_with_no_map_location_narrows(float32_policy):
    try:
        torch.empty(0, dtype=torch.bfloat16, device=float32_policy)
    except TypeError:
        pytest.skip("the fixture holds bfloat16, which this target refuses (MPS before macOS 14)")
    fixtures = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
    loaded = torch.load(os.path.join(fixtures, "state_cuda0.pt"))
    assert loaded["float64"].dtype == torch.float32
    assert loaded["float64"].device == float32_policy
    expected = torch.arange(10, dtype=torch.float64).reshape(2, 5) / 9
    assert torch.equal(loaded["float64"].cpu(), expected.float())


def test_torch_load_onto_the_cpu_keeps_float64(float32_policy):
    base = torch.tensor(VALUES, dtype=torch.float64)
    loaded = torch.load(_checkpoint({"base": base}), map_location="cpu")
    assert loaded["base"].dtype == torch.float64 and torch.equal(loaded["base"], base)
    assert torch.load(_checkpoint({"base": base}))["base"].dtype == torch.float64


def test_narrowed_requests_are_in_the_report(float32_policy):
    torchdevice.report(enable=True)
    torchdevice._C._report_clear()
    try:
        torch.zeros(2, dtype=torch.float64, device="cuda")
        torch.zeros(2, device="cuda")
        sites = torchdevice.report()["sites"]
    finally:
        torchdevice.report(enable=False)
        torchdevice._C._report_clear()
    narrowed = [s for s in sites if s["narrowed"]]
    assert [s["narrowed"] for s in narrowed] == ["float64 -> float32"]
    assert narrowed[0]["file"] == __file__
    assert any(not s["narrowed"] for s in sites)
    from torchdevice import report_view
    assert any("float64 -> float32" in line for line in report_view.text_lines(sites))
    page = report_view.html_page(
        [{"sites": sites, "pid": 1, "torch": torch.__version__, "target": "x"}], ["r.json"])
    assert "<th>precision</th>" in page and "float64 -&gt; float32" in page


def test_each_narrowing_call_site_is_warned_about_once(tmp_path):
    log = tmp_path / "log.txt"
    code = (
        "import torch, torchdevice\n"
        "for _ in range(3):\n"
        "    torch.zeros(2, dtype=torch.float64, device='cuda')\n"
        "    torch.tensor([1.0], dtype=torch.float64).cuda()\n"
        "torch.zeros(2, device='cuda')\n"
    )
    run_python(code, env={"TORCHDEVICE_FLOAT64": "float32", "TORCHDEVICE_LOG_FILE": str(log)})
    warnings = [line for line in log.read_text().splitlines() if "float64 -> float32" in line]
    assert len(warnings) == 2, warnings
    assert "<string>:3" in warnings[0] and "<string>:4" in warnings[1]


@requires_no_float64
def test_auto_narrows_where_the_target_has_no_float64():
    torchdevice.install(float64="auto")
    target = torchdevice.target()
    expect_narrowed(torch.tensor(VALUES, dtype=torch.float64).cuda(), VALUES, target)
    # complex128 follows what the target itself refuses: MPS makes complex128 tensors and
    # refuses every op on them, so it is narrowed there too
    made = torch.zeros(2, dtype=torch.complex128, device="cuda") + 1j
    assert made.device == target
    assert made.dtype == (torch.complex64 if target_refuses(torch.complex128) else torch.complex128)


@requires_float64
def test_auto_keeps_float64_where_the_target_has_it():
    torchdevice.install(float64="auto")
    made = torch.tensor(VALUES, dtype=torch.float64).cuda()
    assert made.dtype == torch.float64
    assert torch.equal(made.cpu(), torch.tensor(VALUES, dtype=torch.float64))


@requires_no_float64
def test_error_keeps_the_targets_refusal_with_a_hint():
    torchdevice.install(float64="error")
    with pytest.raises(TypeError, match="(?s)float64.*TORCHDEVICE_FLOAT64=auto"):
        torch.tensor(VALUES, dtype=torch.float64).cuda()
    with pytest.raises(TypeError, match="(?s)float64.*TORCHDEVICE_FLOAT64=auto"):
        torch.zeros(2, dtype=torch.float64, device="cuda")


@requires_float64
def test_error_changes_nothing_where_the_target_has_float64():
    torchdevice.install(float64="error")
    assert torch.zeros(2, dtype=torch.float64, device="cuda").dtype == torch.float64
