"""The stand-in accelerator itself (tests/standin): torch's PrivateUse1 backend named 'standin',
loaded by torch's backend autoload when TORCHDEVICE_STANDIN is set (scripts/standin.sh)."""

import io
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.skipif(
    not hasattr(torch, "standin"),
    reason="the stand-in accelerator is not loaded (run under scripts/standin.sh, torch >= 2.6)",
)

MiB = 1 << 20


@pytest.fixture(autouse=True)
def backend_alone():
    """The backend by itself: torchdevice's redirect (which the suite's conftest installs) is
    removed for each test here and reinstalled by the conftest afterwards."""
    torchdevice = sys.modules.get("torchdevice")
    if torchdevice is not None:
        torchdevice.uninstall()
    yield


def test_torch_sees_one_accelerator_named_standin():
    assert torch._C._get_privateuse1_backend_name() == "standin"
    assert torch.accelerator.is_available()
    assert torch.accelerator.current_accelerator() == torch.device("standin")
    assert torch.accelerator.device_count() == torch.standin.device_count() >= 1


def test_factories_and_copies_both_ways():
    x = torch.arange(6.0).reshape(2, 3)
    y = x.to("standin")
    assert y.device == torch.device("standin:0") and y.is_standin
    assert torch.equal(y.cpu(), x)
    assert torch.equal(x.t().to("standin").cpu(), x.t())  # non-contiguous source
    assert torch.equal(y.t().contiguous().cpu(), x.t())  # non-contiguous on the device
    assert torch.equal(x.standin().to(torch.int32).cpu(), x.to(torch.int32))
    assert torch.equal(torch.full((2, 2), 3.0, device="standin").cpu(), torch.full((2, 2), 3.0))
    assert torch.zeros(3, device="standin").device.type == "standin"


@pytest.mark.parametrize("op", ["equal", "matmul", "cat", "where", "add"])
def test_tensors_on_two_devices_are_refused_as_cuda_refuses_them(op):
    """Its CPU fallback would copy any argument to the CPU; CUDA refuses mixed devices, so the
    stand-in does too (else no lane could see torchdevice leaving a tensor on the host)."""
    a, b = torch.ones(3, device="standin"), torch.ones(3)
    call = {"equal": lambda: torch.equal(a, b), "matmul": lambda: a.view(3, 1) @ b.view(1, 3),
            "cat": lambda: torch.cat([a, b]), "where": lambda: torch.where(a > 0, a, b),
            "add": lambda: a + b}[op]
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        call()


def test_what_cuda_allows_across_devices_still_runs():
    """0-dim CPU tensors in TensorIterator's ops and CPU indices, as on CUDA."""
    a = torch.arange(4.0, device="standin")
    assert torch.equal((a + torch.tensor(2.0)).cpu(), torch.arange(2.0, 6.0))
    assert torch.equal(a[torch.tensor([0, 3])].cpu(), torch.tensor([0.0, 3.0]))
    a[torch.tensor([1])] = torch.tensor(9.0)
    assert a.cpu().tolist() == [0.0, 9.0, 2.0, 3.0]


def test_compute_runs_through_the_cpu_kernels_and_views_alias():
    a, b = torch.randn(4, 3), torch.randn(3, 2)
    on_device = (a.to("standin") @ b.to("standin") + 1).relu()
    assert on_device.device.type == "standin"
    torch.testing.assert_close(on_device.cpu(), (a @ b + 1).relu())
    y = torch.zeros(2, 3, device="standin")
    y.view(-1)[4] = 5.0
    y.t()[0, 1] += 1.0
    y.add_(1.0)
    assert torch.equal(y.cpu(), torch.tensor([[1.0, 1.0, 1.0], [2.0, 6.0, 1.0]]))
    assert y.sum().item() == 12.0


def test_autograd():
    w = torch.randn(3, device="standin", requires_grad=True)
    (w * w).sum().backward()
    assert w.grad.device.type == "standin"
    torch.testing.assert_close(w.grad.cpu(), 2 * w.detach().cpu())


def test_checkpoint_round_trip():
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(4.0, device="standin")}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, map_location="standin")["w"]
    assert loaded.device.type == "standin"
    assert torch.equal(loaded.cpu(), torch.arange(4.0))


def test_allocator_counts_current_and_peak():
    torch.standin.synchronize()
    base = torch.standin.memory_allocated()
    torch.standin.reset_peak_memory_stats()
    t = torch.empty(MiB, dtype=torch.uint8, device="standin")
    assert torch.standin.memory_allocated() == base + MiB
    del t
    assert torch.standin.memory_allocated() == base
    assert torch.standin.max_memory_allocated() >= base + MiB
    torch.standin.reset_peak_memory_stats()
    assert torch.standin.max_memory_allocated() == base


@pytest.mark.skipif(not hasattr(getattr(torch, "accelerator", None), "memory_allocated"),
                    reason="torch.accelerator has no memory statistics before torch 2.9")
def test_torch_accelerator_memory_statistics_are_the_allocators():
    t = torch.empty(MiB, dtype=torch.uint8, device="standin")
    assert torch.accelerator.memory_allocated() == torch.standin.memory_allocated() >= MiB
    del t


def test_out_of_memory_at_the_limit():
    limit = torch.standin.memory_limit()
    ooms = torch.standin.memory_stats()["num_ooms"]
    torch.standin.set_memory_limit(torch.standin.memory_allocated() + MiB)
    try:
        kept = torch.empty(MiB // 2, dtype=torch.uint8, device="standin")
        with pytest.raises(RuntimeError) as raised:
            torch.empty(2 * MiB, dtype=torch.uint8, device="standin")
    finally:
        torch.standin.set_memory_limit(limit)
    del kept
    assert torch.standin.memory_stats()["num_ooms"] == ooms + 1
    assert isinstance(raised.value, torch.OutOfMemoryError)
    assert "standin out of memory. Tried to allocate 2.00 MiB" in str(raised.value)


def test_stream_work_completes_later_in_order():
    first, second = torch.Stream(device="standin"), torch.Stream(device="standin")
    marker = torch.Event(device="standin")
    after = torch.Event(device="standin")
    with torch.standin.stream(first):
        with torch.standin.hold():
            first.record_event(marker)
            second.wait_event(marker)
            second.record_event(after)
            assert not marker.query() and not after.query() and not first.query()
    after.synchronize()
    assert marker.query() and after.query() and first.query() and second.query()


def test_elapsed_time_covers_the_queued_work():
    start = torch.Event(device="standin", enable_timing=True)
    end = torch.Event(device="standin", enable_timing=True)
    start.record()
    torch.standin._sleep(30)
    end.record()
    end.synchronize()
    assert start.elapsed_time(end) >= 30.0


def test_generators_seed_reproducibly_apart_from_the_cpus():
    torch.standin.manual_seed(7)
    first = torch.randn(5, device="standin")
    torch.standin.manual_seed(7)
    torch.default_generator.manual_seed(99)  # the CPU's generator does not feed the device
    assert torch.equal(torch.randn(5, device="standin").cpu(), first.cpu())
    torch.manual_seed(3)  # seeds every device, the stand-in included
    again = torch.rand(5, device="standin")
    torch.manual_seed(3)
    assert torch.equal(torch.rand(5, device="standin").cpu(), again.cpu())
    generator = torch.Generator(device="standin").manual_seed(11)
    assert generator.device.type == "standin"
    drawn = torch.randn(4, device="standin", generator=generator)
    generator.manual_seed(11)
    assert torch.equal(torch.randn(4, device="standin", generator=generator).cpu(), drawn.cpu())
    state = torch.standin.get_rng_state()
    expected = torch.rand(3, device="standin")
    torch.standin.set_rng_state(state)
    assert torch.equal(torch.rand(3, device="standin").cpu(), expected.cpu())


def test_autocast_casts_matrix_products():
    a = torch.randn(4, 4, device="standin")
    with torch.autocast("standin", dtype=torch.float16):
        product = a @ a
        assert product.dtype == torch.float16 and product.device.type == "standin"
        assert torch.softmax(product, 0).dtype == torch.float32
    assert (a @ a).dtype == torch.float32


def test_attention_trains_under_float16_autocast():
    """torch's math attention (the stand-in has no kernel of its own) softmaxes inside a kernel,
    below autograd: the autocast cast of softmax must happen at the top, where autograd sees it,
    or the backward meets a float32 saved output and a half gradient (found by nanoGPT)."""
    q, k, v = (torch.randn(2, 2, 8, 4, device="standin", requires_grad=True) for _ in range(3))
    with torch.autocast("standin", dtype=torch.float16):
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    out.float().sum().backward()
    reference = [t.detach().cpu().requires_grad_() for t in (q, k, v)]
    with torch.autocast("cpu", dtype=torch.float16):
        torch.nn.functional.scaled_dot_product_attention(*reference, is_causal=True).float().sum().backward()
    for ours, cpu in zip((q, k, v), reference):
        torch.testing.assert_close(ours.grad.cpu(), cpu.grad, rtol=1e-2, atol=1e-2)


def test_the_environment_loads_it_in_every_python_process():
    code = "import torch; print(torch.ones(1, device='standin').device)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.split() == ["standin:0"]


def test_plain_accelerator_has_float64_bfloat16_pinned_memory_and_synchronous_copies():
    assert torch.ones(2, dtype=torch.float64, device="standin").sum().item() == 2.0
    assert torch.ones(2, device="standin").bfloat16().dtype == torch.bfloat16
    pinned = torch.ones(3).pin_memory()
    assert pinned.is_pinned() and not torch.ones(3).is_pinned()
    source = torch.ones(4)
    copied = source.to("standin", non_blocking=True)
    source.fill_(7.0)
    assert torch.equal(copied.cpu(), torch.ones(4))
    with torch.autocast("standin", dtype=torch.bfloat16):
        assert (torch.ones(2, 2, device="standin") @ torch.ones(2, 2, device="standin")).dtype \
            == torch.bfloat16
