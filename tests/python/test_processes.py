"""The redirect across processes: forked children keep it, spawned and forkserver children that
import torchdevice install it themselves, DataLoader workers see it with every start method, and
forking while other threads are inside the interceptors does not deadlock the child."""

import multiprocessing
import os
import signal
import threading
import time

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect

# Python >= 3.12 warns when forking a process that runs threads (torch's own pools included); the
# children here use only async-signal-safe paths torch and torchdevice prepare for.
pytestmark = [
    requires_cuda_redirect,
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

START_METHODS = [m for m in ("fork", "spawn", "forkserver")
                 if m in multiprocessing.get_all_start_methods()]


def wait_child(pid, deadline_s=60):
    """The child's exit status, or a failure (after killing it) if it hangs."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"child {pid} hung")


def child_check(target):
    """Runs in a child: exit status 0 when the redirect is in force and lands on `target`."""
    try:
        ok = (torchdevice.is_installed() and torchdevice.target() == target
              and torch.zeros(2, device="cuda").device == target
              and torch.arange(3.0).cuda().tolist() == [0.0, 1.0, 2.0])
    except BaseException:  # any failure is a non-zero status
        ok = False
    os._exit(0 if ok else 1)


def test_fork_keeps_the_redirect(target):
    pid = os.fork()
    if pid == 0:
        child_check(target)
    assert wait_child(pid) == 0


def report():
    """What a child process sees; runs in spawn/forkserver/fork pool workers."""
    return (torchdevice.is_installed(), str(torchdevice.target()),
            str(torch.zeros(1, device="cuda").device), str(torch.ones(1).cuda().device))


@pytest.mark.parametrize("method", START_METHODS)
def test_pool_children_with_every_start_method(method, target):
    context = multiprocessing.get_context(method)
    with context.Pool(1) as pool:
        installed, child_target, made, copied = pool.apply_async(report).get(timeout=120)
    assert installed
    assert child_target == made == copied == str(target)


class CudaDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return torch.full((2,), float(index), device="cuda").cpu()


@pytest.mark.parametrize("method", START_METHODS)
def test_dataloader_workers_with_every_start_method(method):
    loader = torch.utils.data.DataLoader(CudaDataset(), batch_size=2, num_workers=2,
                                         multiprocessing_context=method, timeout=120)
    batches = [batch.tolist() for batch in loader]
    assert sorted(batches) == [[[0.0, 0.0], [1.0, 1.0]], [[2.0, 2.0], [3.0, 3.0]]]


def test_fork_while_threads_are_inside_the_interceptors(target):
    stop = threading.Event()

    def hammer():
        source = torch.ones(8)
        while not stop.is_set():
            torch.zeros(16, device="cuda")
            source.to("cuda:1")
            torch.device("cuda")

    # Each op's first call initialises a function-local static in torch (its operator handle);
    # a fork during that leaves the child waiting on the guard forever, with or without
    # torchdevice. The threads below must be inside the interceptors, not there: one call each
    # first.
    torch.zeros(16, device="cuda")
    torch.ones(8).to("cuda:1")
    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(10):
            pid = os.fork()
            if pid == 0:
                child_check(target)
            assert wait_child(pid) == 0
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)


def _hogwild_step(model, queue):
    """One SGD step in a child, on the parameters the parent shared (the hogwild pattern)."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    queue.put("done")


def test_hogwild_shares_the_model_or_says_why_it_cannot():
    """CUDA code shares a model between processes with model.cuda(); model.share_memory(). Torch
    shares CUDA tensors through CUDA IPC and CPU tensors through shared memory: on the CPU target
    the children's updates reach the parent; on any other target the first call says why it
    cannot and what works instead."""
    model = torch.nn.Linear(3, 2).cuda()
    before = [p.detach().cpu().clone() for p in model.parameters()]
    if torchdevice.target().type != "cpu":
        with pytest.raises(RuntimeError, match=r"cannot be shared .*TORCHDEVICE_TARGET=cpu"):
            model.share_memory()
        return
    model.share_memory()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_hogwild_step, args=(model, queue))
    child.start()
    assert queue.get(timeout=60) == "done"
    child.join(60)
    assert child.exitcode == 0
    for parameter, old in zip(model.parameters(), before):
        assert torch.equal(parameter.detach().cpu(), old + 1.0)
