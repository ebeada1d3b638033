"""Install, uninstall, configuration and the import itself."""

import inspect
import threading

import pytest
import torch

import torchdevice
from conftest import REDIRECTS_CUDA, REDIRECTS_MPS, requires_cuda_redirect, run_python


def test_install_is_idempotent(target):
    patched = torch.cuda.is_available
    assert torchdevice.install() == target
    assert torchdevice.install() == target
    assert torch.cuda.is_available is patched
    assert torchdevice.is_installed()


def test_uninstall_twice_is_harmless():
    torchdevice.uninstall()
    torchdevice.uninstall()
    assert not torchdevice.is_installed()
    assert torchdevice.target() is None
    assert torchdevice.redirected() == []


def test_target_override_by_argument(target):
    assert torchdevice.install(target="cpu") == torch.device("cpu")
    assert torchdevice.install(torch.device("cpu")) == torch.device("cpu")
    torchdevice.install()
    assert torchdevice.target() == target


@pytest.mark.parametrize(
    "bad, message",
    [("gpu", "Invalid device string: 'gpu'"), ("cuda:-1", "'cuda:-1'"), ("xla", "not available")],
)
def test_bad_target_is_a_clear_error_and_leaves_the_install_alone(bad, message, target):
    with pytest.raises(RuntimeError, match=message):
        torchdevice.install(target=bad)
    assert torchdevice.target() == target


@requires_cuda_redirect
def test_unavailable_target_names_the_choices():
    with pytest.raises(RuntimeError, match="'cuda' is not available on this machine. Choose one"):
        torchdevice.install(target="cuda")


def test_environment_target_and_opt_out():
    code = "import torch, torchdevice; print(torchdevice.is_installed(), torchdevice.target())"
    assert run_python(code, {"TORCHDEVICE_TARGET": "cpu"}).stdout.split() == ["True", "cpu"]
    assert run_python(code, {"TORCHDEVICE_DISABLE": "1"}).stdout.split() == ["False", "None"]
    disabled = run_python(
        "import torch, torchdevice; print(torch.cuda.is_available is torch.cuda.is_available,"
        " torch.device('cuda').type)",
        {"TORCHDEVICE_DISABLE": "1"},
    )
    assert disabled.stdout.split() == ["True", "cuda"]


def test_unavailable_environment_target_fails_the_import_clearly():
    result = run_python("import torchdevice", {"TORCHDEVICE_TARGET": "xla"}, check=False)
    assert result.returncode != 0
    assert "the requested target 'xla' is not available" in result.stderr


def test_logging_is_quiet_by_default_and_says_once_at_info():
    code = "import torch, torchdevice\nfor _ in range(100): torch.zeros(1, device='cuda')"
    assert run_python(code).stderr == ""
    said = run_python(code, {"TORCHDEVICE_LOG_LEVEL": "info"}).stderr.splitlines()
    assert said[0] == ("[info] torchdevice: installed: " + ", ".join(torchdevice.redirected())
                       + " -> " + str(torchdevice.target()) + ", float64 policy auto")
    if REDIRECTS_CUDA:  # then the redirect report names the one call site once, and sums it up
        target = torchdevice.target()
        assert said[1].startswith("[info] torchdevice: <string>:2 (<module>): aten::")
        assert said[1].endswith(f" asked for cuda -> {target}")
        assert said[2:4] == ["[info] torchdevice: redirect report, 1 call site:",
                             "   count  request -> target  call site: op or API"]
        assert said[4].startswith(f"     100  cuda -> {target}  <string>:2 (<module>): aten::")
        assert len(said) == 5
    else:
        assert len(said) == 1


def test_log_file(tmp_path):
    log = tmp_path / "td.log"
    run_python("import torchdevice", {"TORCHDEVICE_LOG_LEVEL": "info", "TORCHDEVICE_LOG_FILE": str(log)})
    assert "installed:" in log.read_text()


def test_version_mismatch_fails_the_import_with_what_to_do():
    result = run_python("import torch\ntorch.__version__ = '0.0.1'\nimport torchdevice", check=False)
    assert result.returncode != 0
    assert "compiled against torch" in result.stderr and "Rebuild" in result.stderr


def test_compiled_against_the_running_torch():
    assert torchdevice._C.compiled_torch_version == torch.__version__
    assert isinstance(torchdevice.__version__, str)


@requires_cuda_redirect
def test_concurrent_install_and_redirected_calls(target):
    errors, devices = [], set()

    def worker():
        try:
            for _ in range(200):
                torchdevice.install()
                devices.add(torch.zeros(2, device="cuda").device)
                devices.add(torch.ones(2).cuda().device)
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert devices == {target}


@pytest.mark.skipif(not REDIRECTS_CUDA, reason="CUDA is available here")
def test_install_and_uninstall_cycles_keep_behaviour(target):
    for _ in range(50):
        torchdevice.uninstall()
        assert torch.device("cuda").type == "cuda"
        torchdevice.install()
        assert torch.zeros(1, device="cuda").device == target


@pytest.mark.skipif(not hasattr(torch.library.Library, "fallback"),
                    reason=f"torch {torch.__version__}'s Python cannot register a backend fallback")
@pytest.mark.skipif(not REDIRECTS_MPS,
                    reason="MPS is available here (the emulated MPS, or CUDA), never redirected")
def test_a_fallback_already_on_mps_stays_and_the_install_succeeds():
    # What torch itself does on a Mac whose MPS is built but unavailable (VMs, CI runners).
    code = """
import torch
library = torch.library.Library("_", "IMPL", "MPS")
def unavailable(op, keyset, *args, **kwargs):
    raise RuntimeError("torch's own MPS fallback ran for " + str(op))
library.fallback(unavailable, with_keyset=True)
import torchdevice
assert torchdevice.is_installed() and "mps" in torchdevice.redirected()
assert torch.zeros(2, device="mps").device == torchdevice.target()
assert torch.ones(2).to("mps").device == torchdevice.target()
# An op with no MPS kernel still reaches torch's fallback, not torchdevice's.
mps = [line for line in torch._C._dispatch_dump_table("aten::batch_norm_stats").splitlines()
       if line.startswith("MPS:")]
assert len(mps) == 1 and "backend fallback" in mps[0], mps
assert "src/dispatch.cpp" not in mps[0], mps
torchdevice.uninstall()
torchdevice.install()
assert torch.zeros(2, device="cuda").device == torchdevice.target()
print("ok")
"""
    assert run_python(code).stdout.split() == ["ok"]


@requires_cuda_redirect
def test_a_failed_install_leaves_nothing_behind():
    # Another library that guards torch.cuda makes one of the Python hooks fail midway.
    code = """
import os, types, torch
class Guarded(types.ModuleType):
    def __setattr__(self, name, value):
        if name == "is_available":
            raise RuntimeError("torch.cuda is guarded by another library")
        super().__setattr__(name, value)
before = dict(vars(torch.cuda))
device_new = torch.device.__new__
torch.cuda.__class__ = Guarded
os.environ["TORCHDEVICE_DISABLE"] = "1"
import torchdevice
try:
    torchdevice.install()
except RuntimeError as error:
    assert "guarded" in str(error), error
else:
    raise AssertionError("the install should have failed")
assert not torchdevice.is_installed() and torchdevice.target() is None
assert {k: v for k, v in vars(torch.cuda).items() if k in before} == before
assert set(vars(torch.cuda)) == set(before), set(vars(torch.cuda)) ^ set(before)
assert torch.device("cuda").type == "cuda"
ours = ("src/dispatch.cpp", "src/missing_ops.cpp", "src/amp.cpp", "src/pinning.cpp")
for op in ("aten::add.Tensor", "aten::empty.memory_format", "aten::batch_norm_stats"):
    dump = torch._C._dispatch_dump(op)
    assert not any(name in dump for name in ours), dump
try:
    torch.zeros(1, device="cuda")
except (RuntimeError, AssertionError) as error:
    assert "torchdevice" not in str(error), error
else:
    raise AssertionError("CUDA must be torch's own again")
torch.cuda.__class__ = types.ModuleType
assert torchdevice.install() == torch.zeros(1, device="cuda").device
print("ok")
"""
    assert run_python(code).stdout.split() == ["ok"]


def test_wrapped_classes_keep_their_signatures():
    """Libraries read inspect.signature(torch.optim.AdamW) to learn what torch offers (fused=,
    foreach=): the classes whose methods torchdevice wraps answer as torch's own."""
    classes = [torch.autocast, torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel,
               torch.cuda.amp.GradScaler, torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD]
    installed = [inspect.signature(cls) for cls in classes]
    torchdevice.uninstall()
    try:
        assert installed == [inspect.signature(cls) for cls in classes]
    finally:
        torchdevice.install()
