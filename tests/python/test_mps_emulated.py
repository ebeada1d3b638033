"""The emulated MPS itself (tests/mps_emulated): torch believes it has MPS, and the device behaves
as torch's MPS sources say it does at this version. Skipped where it is not loaded."""

import re
import subprocess
import sys

import pytest
import torch

import torchdevice
from conftest import EMULATED_MPS, environment_without_torchdevice, keep_target_busy

pytestmark = pytest.mark.skipif(not EMULATED_MPS,
                                reason="needs the emulated MPS (bash scripts/mps-emulated.sh)")


def run(code, **env):
    full = environment_without_torchdevice()
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          timeout=120)


def test_torch_believes_it_has_mps():
    assert torch.backends.mps.is_available()
    x = torch.ones(3, device="mps")
    assert x.is_mps and x.device == torch.device("mps", 0)
    assert torch.equal((x * 2).cpu(), torch.full((3,), 2.0))
    if hasattr(torch, "accelerator"):
        assert torch.accelerator.current_accelerator() == torch.device("mps")


def test_the_guard_has_mps_s_surface():
    """MPSGuardImpl has one stream and never synchronizes or queries one: torch's base class
    answers."""
    stream = torch.Stream(device="mps")
    assert stream == torch.Stream(device="mps")  # always the default stream
    with pytest.raises(RuntimeError, match="Backend doesn't support synchronizing streams"):
        stream.synchronize()
    with pytest.raises(RuntimeError, match="Backend doesn't support querying streams"):
        stream.query()


def test_queued_work_completes_later_and_events_time_it():
    start = torch.mps.Event(enable_timing=True)
    end = torch.mps.Event(enable_timing=True)
    start.record()
    keep_target_busy(30)
    end.record()
    assert not end.query()
    end.synchronize()
    assert end.query()
    assert start.elapsed_time(end) >= 25


def test_torch_mps_memory_functions_count_the_device_s_memory():
    torch.mps.synchronize()
    before = torch.mps.current_allocated_memory()
    block = torch.empty(1 << 20, dtype=torch.uint8, device="mps")
    assert torch.mps.current_allocated_memory() == before + (1 << 20)
    assert torch.mps.driver_allocated_memory() >= torch.mps.current_allocated_memory()
    assert torch.mps.recommended_max_memory() > 0
    del block
    assert torch.mps.current_allocated_memory() == before


def test_dtypes_mps_refuses():
    with pytest.raises(TypeError, match="Cannot convert a MPS Tensor to float64"):
        torch.zeros(2, dtype=torch.float64, device="mps")
    with pytest.raises(TypeError, match="float64"):
        torch.ones(2, dtype=torch.float64).to("mps")
    with pytest.raises(TypeError, match="float64"):
        torch.ones(2, device="mps").double()
    made = torch.empty(2, dtype=torch.complex128, device="mps")  # made, then refused by ops
    with pytest.raises(TypeError, match="ComplexDouble to the MPS backend"):
        made.zero_()


def test_out_of_memory_is_a_plain_runtime_error_in_mps_s_words():
    """MPS's allocator raises with TORCH_CHECK, not as torch.OutOfMemoryError."""
    code = ("import torch\ntry:\n    torch.empty(2 << 20, dtype=torch.uint8, device='mps')\n"
            "except RuntimeError as error:\n"
            "    print(type(error).__name__)\n    print(error)")
    result = run(code, TORCHDEVICE_STANDIN_MEMORY_LIMIT=str(1 << 20))
    assert result.returncode == 0, result.stderr
    name, message = result.stdout.split("\n", 1)
    assert name == "RuntimeError"
    assert re.match(r"MPS backend out of memory \(MPS allocated: [\d.]+ (bytes|KiB), other "
                    r"allocations: 0 bytes, max allowed: 1024\.00 KiB\)\. Tried to allocate "
                    r"2\.00 MiB on private pool\.", message), message


def test_non_blocking_copy_reads_its_source_when_the_stream_gets_there():
    """MPS's host->device non_blocking copy from pageable memory is queued, and reads its source
    when the stream gets there (pytorch#139550). Torch's own copy: without torchdevice, which
    completes such copies (test_non_blocking.py)."""
    torchdevice.uninstall()
    source = torch.ones(4)
    keep_target_busy(100)
    early = source.to("mps", non_blocking=True)
    source.fill_(7.0)  # the hazard: the copy has not read its source yet
    assert torch.equal(early.cpu(), torch.full((4,), 7.0))  # .cpu() waits for the stream
    source = torch.ones(4)
    safe = source.to("mps", non_blocking=True)
    torch.mps.synchronize()
    source.fill_(7.0)
    assert torch.equal(safe.cpu(), torch.ones(4))


def test_bfloat16_follows_the_macos_version():
    code = "import torch; torch.ones(1, dtype=torch.bfloat16, device='mps'); print('ok')"
    assert run(code, TORCHDEVICE_MPS_MACOS="14").stdout.split() == ["ok"]
    refused = run(code, TORCHDEVICE_MPS_MACOS="13")
    assert "BFloat16 is only supported on MacOS 14 or newer" in refused.stderr


def test_an_op_mps_lacks_raises_or_falls_back_as_mps_does():
    code = "import torch; print(torch.heaviside(torch.ones(2, device='mps'), torch.zeros(2, device='mps')).cpu().tolist())"
    refused = run(code)
    assert re.search(r"NotImplementedError: The operator 'aten::heaviside(\.out)?' is not "
                     r"currently implemented for the MPS device", refused.stderr), refused.stderr
    fallen_back = run(code, PYTORCH_ENABLE_MPS_FALLBACK="1")
    assert fallen_back.returncode == 0, fallen_back.stderr
    assert fallen_back.stdout.split() == ["[1.0,", "1.0]"]
    assert "will fall back to run on the CPU" in fallen_back.stderr


def test_pinned_memory_is_mps_s():
    """MPS pins host memory it hands out tagged as CPU memory where torch has that fix (2026);
    before, its pinned storages said mps:0 and torch's own pin_memory() failed on them. Torch's
    own pinning: without torchdevice (test_pinning.py has it with)."""
    torchdevice.uninstall()
    host = torch.arange(4.0)
    try:
        pinned = host.pin_memory()
    except RuntimeError as error:
        assert 'storage on different device "mps:0"' in str(error)
        return
    assert pinned.is_pinned() and pinned.device.type == "cpu"
    assert torch.equal(pinned, host)


def test_storages_can_be_made_on_mps():
    storage = torch.UntypedStorage(8, device="mps")
    assert storage.device == torch.device("mps", 0) and storage.nbytes() == 8
    assert torch.UntypedStorage([1, 2, 3], device="mps").tolist() == [1, 2, 3]


def test_import_leaves_the_device_untouched():
    """`import torchdevice` runs in every spawned DataLoader worker: it asks whether MPS exists and
    nothing more. What torchdevice must learn from the device itself (whether it computes in
    float64) it asks at the first redirected request."""
    code = ("import torch, torchdevice, torchdevice_mps_emulated as mps; print(mps.allocations()); "
            "x = torch.ones(2, dtype=torch.float64, device='cuda'); "
            "print(x.device, x.dtype, mps.allocations() > 0)")
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "mps:0", "torch.float32", "True"]


def test_cuda_events_time_where_mps_s_guard_cannot():
    """torch 2.4-2.5's MPSGuardImpl records events but neither synchronizes nor times them, so
    torch's own Event.elapsed_time() raises there; torch.cuda.Event still times (on the host,
    after waiting for the device) and synchronizes."""
    code = """
import torch
own = [torch.Event("mps", enable_timing=True) for _ in range(2)]
for event in own:
    event.record()
try:
    own[0].elapsed_time(own[1])
except RuntimeError as error:
    print("torch:", error)
import torchdevice, torchdevice_mps_emulated
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
torchdevice_mps_emulated.sleep(30)
end.record()
end.synchronize()
print("elapsed", start.elapsed_time(end) >= 25)
"""
    result = run(code, TORCHDEVICE_MPS_GUARD="2.5")
    assert result.returncode == 0, result.stderr
    assert "torch: Backend doesn't support elapsedTime" in result.stdout
    assert "elapsed True" in result.stdout
