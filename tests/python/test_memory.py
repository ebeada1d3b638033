"""torch.cuda's device properties and memory statistics, answered from the target."""

import os

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect, run_python

pytestmark = requires_cuda_redirect

OutOfMemoryError = getattr(torch.cuda, "OutOfMemoryError", RuntimeError)

needs_cpu_target = pytest.mark.skipif(
    torchdevice.target() is None or torchdevice.target().type != "cpu",
    reason="checks the counter the CPU target keeps itself; the target here is "
           f"{torchdevice.target()}",
)


def _meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


@needs_cpu_target
def test_device_properties_describe_the_host():
    props = torch.cuda.get_device_properties(0)
    assert props.total_memory == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert props.multi_processor_count == os.cpu_count()
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    assert props.name == (names[0] if names else "cpu")
    assert (props.major, props.minor) == (0, 0)
    assert repr(props).startswith("_CudaDeviceProperties(name=")
    assert torch.cuda.get_device_properties("cuda:0").total_memory == props.total_memory
    with pytest.raises(ValueError, match="Expected a cuda device"):
        torch.cuda.get_device_properties(None)


@needs_cpu_target
def test_mem_get_info_is_the_host_memory():
    free, total = torch.cuda.mem_get_info()
    assert total == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    # MemAvailable moves as other processes run; a wide band still catches a wrong source.
    assert abs(free - _meminfo("MemAvailable")) < total // 10
    assert 0 < free <= total


def target_takes_bfloat16():
    try:
        torch.ones(1, dtype=torch.bfloat16, device=torchdevice.target())
    except (TypeError, RuntimeError):  # MPS before macOS 14
        return False
    return True


def test_bf16_arch_list_and_utilization():
    assert torch.cuda.is_bf16_supported() is target_takes_bfloat16()
    assert torch.cuda.get_arch_list() == []
    assert torch.cuda.get_gencode_flags() == ""
    with pytest.raises(RuntimeError, match=r"torch.cuda.utilization\(\) is not available on the"):
        torch.cuda.utilization()


@needs_cpu_target
def test_memory_allocated_counts_real_tensors():
    before = torch.cuda.memory_allocated()
    x = torch.empty(1000, device="cuda")  # 4000 bytes
    assert torch.cuda.memory_allocated() - before == 4000
    assert torch.cuda.memory_allocated("cuda:0") - before == 4000
    y = torch.zeros(250, dtype=torch.float64, device="cuda")  # 2000 bytes
    assert torch.cuda.memory_allocated() - before == 6000
    del x
    assert torch.cuda.memory_allocated() - before == 2000
    del y
    assert torch.cuda.memory_allocated() == before
    # CPU memory is the target's memory: a plain CPU tensor counts too.
    z = torch.ones(100, dtype=torch.uint8)
    assert torch.cuda.memory_allocated() - before == 100
    del z


@needs_cpu_target
def test_peak_and_reset():
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    assert torch.cuda.max_memory_allocated() == base
    big = torch.empty(100_000, device="cuda")
    del big
    assert torch.cuda.max_memory_allocated() - base == 400_000
    assert torch.cuda.max_memory_reserved() - base == 400_000
    torch.cuda.reset_peak_memory_stats()
    assert torch.cuda.max_memory_allocated() == torch.cuda.memory_allocated()
    assert torch.cuda.memory_reserved() == torch.cuda.memory_allocated()


def _target_module():
    return getattr(torch, torchdevice.target().type, None)


@pytest.mark.skipif(torchdevice.target() is None or torchdevice.target().type == "cpu",
                    reason="the CPU target's own counter: test_peak_and_reset")
def test_peaks_on_an_accelerator_are_its_allocators():
    """Through torch's allocator interface (torch >= 2.9), else the backend module's own
    memory_stats() (torch 2.6 with the stand-in): the target's figures, never a guess."""
    module = _target_module()
    if module is None or not hasattr(module, "max_memory_allocated"):
        pytest.skip(f"torch.{torchdevice.target().type} keeps no peak to compare with")
    MiB = 1 << 20
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    assert base == module.memory_allocated() == torch.cuda.max_memory_allocated()
    block = torch.empty(MiB, dtype=torch.uint8, device="cuda")
    assert torch.cuda.memory_allocated() == base + MiB
    del block
    assert torch.cuda.max_memory_allocated() == module.max_memory_allocated() >= base + MiB
    assert torch.cuda.max_memory_reserved() == module.max_memory_reserved() >= base + MiB
    stats = torch.cuda.memory_stats()
    assert stats["allocated_bytes.all.peak"] == torch.cuda.max_memory_allocated()
    assert stats["allocation.all.allocated"] >= 1
    torch.cuda.reset_peak_memory_stats()
    assert torch.cuda.max_memory_allocated() == torch.cuda.memory_allocated() == module.max_memory_allocated()
    assert "peak" in torch.cuda.memory_summary()


@needs_cpu_target
def test_memory_stats_and_summary():
    torch.cuda.reset_accumulated_memory_stats()
    x = torch.empty(256, device="cuda")
    del x
    stats = torch.cuda.memory_stats()
    assert stats["allocated_bytes.all.current"] == torch.cuda.memory_allocated()
    assert stats["allocated_bytes.all.allocated"] >= 1024
    assert stats["allocated_bytes.all.freed"] >= 1024
    assert stats["allocation.all.allocated"] >= 1
    assert stats["reserved_bytes.all.current"] == stats["allocated_bytes.all.current"]
    nested = torch.cuda.memory_stats_as_nested_dict()
    assert nested["allocated_bytes"]["all"]["current"] == torch.cuda.memory_allocated()
    summary = torch.cuda.memory_summary()
    assert "redirected to cpu" in summary and "allocated now" in summary
    torch.cuda.empty_cache()  # the CPU caches nothing: a no-op that must not fail
    with pytest.warns(FutureWarning):
        assert torch.cuda.memory_cached() == torch.cuda.memory_reserved()


@needs_cpu_target
@pytest.mark.parametrize("device", [None, "cuda"], ids=["cpu", "redirected"])
def test_host_out_of_memory_says_how_many_bytes_were_requested(device):
    # The CPU allocator is asked for a few bytes more (the counter's header) and quotes that size.
    with pytest.raises(RuntimeError) as raised:
        torch.empty(2**50, dtype=torch.uint8, device=device)
    assert f"{2**50} bytes were requested" in str(raised.value)


@needs_cpu_target
def test_memory_fraction_is_enforced():
    total = torch.cuda.get_device_properties(0).total_memory
    with pytest.raises(ValueError, match="Invalid fraction value"):
        torch.cuda.set_per_process_memory_fraction(1.5)
    limit_bytes = torch.cuda.memory_allocated() + 1_000_000
    try:
        torch.cuda.set_per_process_memory_fraction(limit_bytes / total)
        small = torch.empty(1000, device="cuda")
        with pytest.raises(OutOfMemoryError) as raised:
            torch.empty(2_000_000, device="cuda")
        assert "Out of memory on cpu" in str(raised.value)
        assert "set_per_process_memory_fraction" in str(raised.value)
        del small
        assert torch.cuda.memory_stats()["num_ooms"] >= 1
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    torch.empty(2_000_000, device="cuda")
    # A fraction of 1.0 is the whole host, so no limit: what the host cannot give fails as ever.
    with pytest.raises(RuntimeError) as raised:
        torch.empty(2**50)
    assert type(raised.value) is RuntimeError
    if hasattr(torch.cuda, "get_per_process_memory_fraction"):
        assert torch.cuda.get_per_process_memory_fraction() == 1.0


@needs_cpu_target
def test_uninstall_restores_the_allocator_and_frees_still_count():
    run_python(
        "import torch, torchdevice\n"
        "x = torch.empty(1000, device='cuda')\n"
        "before = torch.cuda.memory_allocated\n"
        "n = before()\n"
        "torchdevice.uninstall()\n"
        "assert torch.cuda.memory_allocated is not before\n"
        "y = torch.empty(5000)\n"  # the original allocator: not counted
        "assert before() == n, (before(), n)\n"
        "del x\n"  # allocated by the counter, freed after uninstall
        "assert before() == n - 4000, (before(), n)\n"
        "torchdevice.install()\n"
        "assert torch.cuda.memory_allocated() == n - 4000\n"
        "z = torch.empty(10)\n"
        "assert torch.cuda.memory_allocated() == n - 4000 + 40\n"
    )


@needs_cpu_target
@pytest.mark.skipif(not hasattr(torch, "_lazy_clone"), reason="copy-on-write clones came in torch 2.2")
def test_copy_on_write_clones_of_counted_memory_work():
    # torch only lazily clones memory whose DataPtr context is its data: the counter keeps it so.
    before = torch.cuda.memory_allocated()
    x = torch.arange(1000.0, device="cuda")
    clone = torch._lazy_clone(x)
    assert torch.cuda.memory_allocated() - before == 4000  # shared until written
    clone.add_(1)  # materializes: a real copy, counted
    assert torch.cuda.memory_allocated() - before == 8000
    assert torch.equal(x, torch.arange(1000.0)) and torch.equal(clone, torch.arange(1.0, 1001.0))
    del x, clone
    assert torch.cuda.memory_allocated() == before


@needs_cpu_target
def test_cpu_memory_stats_can_be_turned_off_and_say_so():
    run_python(
        "import os, pytest, torch, torchdevice\n"
        "x = torch.zeros(3, device='cuda')\n"  # the redirect itself is unaffected
        "assert x.device.type == 'cpu'\n"
        "for call in (torch.cuda.memory_allocated, torch.cuda.max_memory_allocated,\n"
        "             torch.cuda.memory_stats, lambda: torch.cuda.set_per_process_memory_fraction(0.5)):\n"
        "    with pytest.raises(RuntimeError, match='TORCHDEVICE_CPU_MEMORY_STATS=0') as info:\n"
        "        call()\n"
        "    assert 'Unset TORCHDEVICE_CPU_MEMORY_STATS' in str(info.value)\n"
        "assert torch.cuda.mem_get_info()[1] > 0\n"  # the host's own figures need no counting
        "torchdevice.uninstall()\n"
        "del os.environ['TORCHDEVICE_CPU_MEMORY_STATS']\n"
        "torchdevice.install()\n"
        "before = torch.cuda.memory_allocated()\n"
        "y = torch.empty(100, device='cuda')\n"
        "assert torch.cuda.memory_allocated() - before == 400\n",
        env={"TORCHDEVICE_CPU_MEMORY_STATS": "0"},
    )


@needs_cpu_target
def test_cpu_memory_stats_setting_must_be_0_or_1():
    result = run_python("import torchdevice", env={"TORCHDEVICE_CPU_MEMORY_STATS": "off"},
                        check=False)
    assert result.returncode != 0
    assert "TORCHDEVICE_CPU_MEMORY_STATS must be 0 or 1, not 'off'" in result.stderr


@pytest.mark.skipif(torchdevice.target() is None or torchdevice.target().type != "mps",
                    reason="MPS's own rules: needs MPS (the emulated MPS)")
def test_peaks_on_mps_are_its_allocators_or_an_error_saying_so():
    """torch.mps keeps no peak; MPS's allocator does once it is a c10::DeviceAllocator (2026),
    and then torch.cuda's figures are its own. Before, asking for a peak says why it cannot."""
    MiB = 1 << 20
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == torch.mps.current_allocated_memory()
    try:
        torch.cuda.reset_peak_memory_stats()
    except RuntimeError as error:
        assert "mps allocator keeps no such statistic" in str(error)
        with pytest.raises(RuntimeError, match="keeps no such statistic"):
            torch.cuda.max_memory_allocated()
        return
    base = torch.cuda.memory_allocated()
    block = torch.empty(3 * MiB, dtype=torch.uint8, device="cuda")
    assert torch.cuda.memory_allocated() == base + 3 * MiB == torch.mps.current_allocated_memory()
    del block
    assert torch.cuda.max_memory_allocated() == base + 3 * MiB
    assert torch.cuda.memory_stats()["allocated_bytes.all.peak"] == base + 3 * MiB
    assert torch.cuda.memory_allocated() == base

