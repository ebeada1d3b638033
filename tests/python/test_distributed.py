"""torch.distributed written for NCCL runs on gloo: in this process (one-rank groups), and in real
two-process groups started by torch.multiprocessing.spawn and by torchrun, both through
`torchdevice run` with scripts that never mention torchdevice."""

import os
import socket
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = [
    requires_cuda_redirect,
    pytest.mark.skipif(not dist.is_available(), reason="torch built without torch.distributed"),
    pytest.mark.skipif(dist.is_nccl_available(), reason="NCCL is available: it is used as is"),
]

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(torchdevice.__file__)))


@pytest.fixture
def one_rank_group():
    """init_process_group's arguments for a one-rank group that needs no network."""
    yield {"store": dist.HashStore(), "rank": 0, "world_size": 1}
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.mark.parametrize("call", [
    lambda group: dist.init_process_group("nccl", **group),
    lambda group: dist.init_process_group(backend="nccl", **group),
    lambda group: dist.init_process_group(backend=None, **group),
    lambda group: dist.init_process_group(**group),
    lambda group: dist.init_process_group("cuda:nccl,cpu:gloo", **group),
    lambda group: dist.distributed_c10d.init_process_group("NCCL", **group),
], ids=["positional", "keyword", "None", "absent", "device-map", "c10d-module"])
def test_nccl_requests_get_gloo(one_rank_group, call):
    call(one_rank_group)
    assert dist.get_backend() == "gloo"
    tensor = torch.ones(3, device="cuda")
    dist.all_reduce(tensor)
    dist.barrier()
    assert tensor.device == torchdevice.target() and tensor.tolist() == [1.0, 1.0, 1.0]
    group = dist.new_group([0], backend="nccl")
    assert dist.get_backend(group) == "gloo"


# torch >= 2 warns, with or without torchdevice, before it rejects these.
@pytest.mark.filterwarnings("ignore:Device capability of bogus unknown:UserWarning")
def test_other_backends_and_bad_names_are_torchs_business(one_rank_group):
    # torch 1.13 raises RuntimeError/ValueError, torch 2.14 AssertionError: whatever torch raises.
    with pytest.raises((RuntimeError, ValueError, AssertionError), match="(?i)bogus"):
        dist.init_process_group("bogus", **one_rank_group)
    dist.init_process_group("gloo", **one_rank_group)
    assert dist.get_backend() == "gloo"


@pytest.mark.filterwarnings("ignore:Attempted to get default timeout for nccl:UserWarning")
def test_uninstall_puts_torchs_functions_back(one_rank_group):
    wrapped = dist.init_process_group
    torchdevice.uninstall()
    assert dist.init_process_group is dist.distributed_c10d.init_process_group
    assert dist.init_process_group is not wrapped
    assert "torchdevice" not in repr(DDP.__init__)
    with pytest.raises(RuntimeError, match="(?i)nccl"):
        dist.init_process_group("nccl", **one_rank_group)


@pytest.mark.parametrize("index", [0, 1])
def test_ddp_device_ids_are_the_module_s_device_on_the_target(one_rank_group, index):
    """CUDA indices (a rank's, here 1 too) all name the one target where the module lives: DDP
    gets that device (no ids on the CPU target, where torch rejects them), and trains there."""
    dist.init_process_group("nccl", **one_rank_group)
    torch.cuda.set_device(index)
    model = nn.Linear(4, 2).cuda(index)
    ddp = DDP(model, device_ids=[index], output_device=index)
    target = torchdevice.target()
    expected = None if target.type == "cpu" else [target.index if target.index is not None else 0]
    assert ddp.device_ids == expected and ddp.module is model
    output = ddp(torch.ones(2, 4))  # on the host: DDP moves it where its device_ids say
    assert output.device == target
    output.sum().backward()
    assert model.weight.grad is not None and model.weight.grad.device == target


def test_ddp_still_rejects_what_torch_rejects(one_rank_group):
    dist.init_process_group("gloo", **one_rank_group)
    frozen = nn.Linear(4, 2).requires_grad_(False)
    with pytest.raises(RuntimeError, match="(?i)require"):
        DDP(frozen, device_ids=[0])


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# One training step loop, the same in both launch styles: each rank starts from different weights
# and takes its half of each batch, so identical parameters at the end prove DDP broadcast and
# averaged, and parameters equal to those of one process training on the whole batches from rank
# 0's weights prove it computed what one device computes.
TRAIN = """
import os, sys
import torch, torch.distributed as dist, torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP


def batches():  # five batches of 32 samples, each in two halves of 16, one per rank
    return torch.randn(5, 2, 16, 8, generator=torch.Generator().manual_seed(1234))


def train(rank, world_size, backend, out):
    torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    assert dist.get_backend() == "gloo", dist.get_backend()
    torch.manual_seed(rank)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1)).cuda()
    ddp = DDP(model, device_ids=[rank], output_device=rank)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    for batch in batches():
        x = batch[rank].to(f"cuda:{rank}")
        loss = (ddp(x) - x.sum(1, keepdim=True)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    total = torch.tensor([rank + 1.0], device="cuda")
    dist.all_reduce(total)
    dist.barrier()
    torch.save({"params": [p.detach().cpu() for p in model.parameters()],
                "device": str(next(model.parameters()).device), "total": total.item()},
               os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()
"""

SPAWNED = TRAIN + """
if __name__ == "__main__":
    import torch.multiprocessing as mp
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", sys.argv[1]
    backend = None if sys.argv[2] == "None" else sys.argv[2]
    mp.spawn(train, args=(2, backend, sys.argv[3]), nprocs=2)
"""

TORCHRUN = TRAIN + """
if __name__ == "__main__":
    train(int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]), "nccl", sys.argv[1])
"""


# Each collective on 'cuda' tensors (the target) in a real two-rank gloo group gives what it gives
# on CPU tensors, and leaves its results on the target; where gloo refuses one on the CPU (1.13 has
# no reduce_scatter), it refuses it on the target too.
COLLECTIVES = """
import os, sys
import torch, torch.distributed as dist


def collectives(rank, device):
    def full(value):
        return torch.full((2, 3), float(value), device=device)

    def all_reduce():
        tensor = full(rank + 1)
        dist.all_reduce(tensor)
        return [tensor]

    def all_reduce_async():
        tensor = full(rank + 1)
        work = dist.all_reduce(tensor, async_op=True)
        work.wait()
        return [tensor, *work.get_future().wait()]

    def broadcast():
        tensor = full(rank + 5)
        dist.broadcast(tensor, src=1)
        return [tensor]

    def all_gather():
        gathered = [full(-1), full(-1)]
        dist.all_gather(gathered, full(rank + 1))
        return gathered

    def all_gather_into_tensor():
        gathered = torch.empty(4, 3, device=device)
        dist.all_gather_into_tensor(gathered, full(rank + 1))
        return [gathered]

    def reduce_scatter_tensor():
        out = full(-1)
        dist.reduce_scatter_tensor(out, torch.arange(12.0, device=device).view(4, 3) * (rank + 1))
        return [out]

    def barrier():
        dist.barrier()
        return []

    results = {}
    for collective in (all_reduce, all_reduce_async, broadcast, all_gather,
                       all_gather_into_tensor, reduce_scatter_tensor, barrier):
        try:
            tensors = collective()
            results[collective.__name__] = ([str(t.device) for t in tensors],
                                            [t.cpu() for t in tensors])
        except (RuntimeError, AttributeError) as error:  # what gloo or this torch lacks
            results[collective.__name__] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return results


def run(rank, out):
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=2)
    torch.save({"cpu": collectives(rank, "cpu"), "cuda": collectives(rank, "cuda")},
               os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", sys.argv[1]
    mp.spawn(run, args=(sys.argv[2],), nprocs=2)
"""


def test_collectives_on_the_target_in_a_two_process_group(tmp_path):
    (tmp_path / "collectives.py").write_text(COLLECTIVES)
    launched = launch(["collectives.py", str(free_port()), str(tmp_path)], tmp_path)
    assert launched.returncode == 0, launched.stderr
    target = str(torchdevice.target())
    for rank in (0, 1):
        results = torch.load(os.path.join(tmp_path, f"rank{rank}.pt"))
        assert results["cpu"].keys() == results["cuda"].keys()
        # What every gloo has runs on the host; the rest fails alike with and without redirect.
        for name in ("all_reduce", "all_reduce_async", "broadcast", "all_gather", "barrier"):
            assert isinstance(results["cpu"][name], tuple), (name, results["cpu"][name])
        for name, on_cpu in results["cpu"].items():
            on_target = results["cuda"][name]
            if isinstance(on_cpu, str):
                assert on_target == on_cpu, name
                continue
            devices, tensors = on_target
            assert devices == [target] * len(on_cpu[1]), name
            for mine, expected in zip(tensors, on_cpu[1]):
                assert torch.equal(mine, expected), name
        assert results["cuda"]["all_reduce"][1][0].eq(3).all()  # 1 + 2


def launch(args, cwd):
    # Debian's torch 2.x is built without libuv, yet its TCPStore asks for libuv by default and
    # fails with or without torchdevice; USE_LIBUV=0 is the switch torch's error names.
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT, USE_LIBUV="0")
    for name in ("TORCHDEVICE_ACTIVATE", "TORCHDEVICE_TARGET", "TORCHDEVICE_DISABLE"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "torchdevice", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def trained_in_one_process():
    """TRAIN's loop in this process, on the target, with rank 0's weights and whole batches."""
    scope = {}
    exec(TRAIN, scope)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1)).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for batch in scope["batches"]():
        x = batch.reshape(32, 8).cuda()
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach().cpu() for p in model.parameters()]


def check_ranks_agree(out):
    ranks = [torch.load(os.path.join(out, f"rank{rank}.pt")) for rank in (0, 1)]
    for rank in ranks:
        assert rank["device"] == str(torchdevice.target())
        assert rank["total"] == 3.0  # 1 + 2, summed across the ranks
    for mine, theirs in zip(ranks[0]["params"], ranks[1]["params"]):
        assert torch.equal(mine, theirs)
    torch.manual_seed(0)
    untrained = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    assert not torch.equal(untrained[0].weight, ranks[0]["params"][0])  # it did train
    # Averaging two half-batch gradients and taking one whole-batch gradient round differently.
    for mine, alone in zip(ranks[0]["params"], trained_in_one_process()):
        torch.testing.assert_close(mine, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["nccl", "None", "cuda:nccl,cpu:gloo"])
def test_ddp_training_under_multiprocessing_spawn(tmp_path, backend):
    (tmp_path / "train.py").write_text(SPAWNED)
    launched = launch(["train.py", str(free_port()), backend, str(tmp_path)], tmp_path)
    assert launched.returncode == 0, launched.stderr
    check_ranks_agree(str(tmp_path))


def tcp_store_problem():
    """Why torch itself cannot open a TCPStore with its defaults here, or None. torchrun's
    rendezvous opens one that way: Debian's torch 2.x asks for libuv, which it was built without,
    and USE_LIBUV=0 does not reach that call, so torchrun fails there with or without torchdevice."""
    try:
        dist.TCPStore("127.0.0.1", free_port(), 1, True, timedelta(seconds=10))
    except RuntimeError as error:
        return str(error)
    return None


def test_ddp_training_under_torchrun(tmp_path):
    problem = tcp_store_problem()
    if problem is not None:
        pytest.skip(f"torchrun cannot start on this torch: {problem}")
    (tmp_path / "train.py").write_text(TORCHRUN)
    # torch 1.13's torchrun fails on Python 3.11 unless it redirects the workers' output.
    launched = launch(["-m", "torch.distributed.run", "--nproc_per_node=2",
                       "--master_addr=127.0.0.1", f"--master_port={free_port()}",
                       "--redirects=1", "--tee=1", f"--log_dir={tmp_path / 'logs'}",
                       "train.py", str(tmp_path)], tmp_path)
    assert launched.returncode == 0, launched.stderr + launched.stdout
    check_ranks_agree(str(tmp_path))


@requires_cuda_redirect
@pytest.mark.parametrize("device_ids", [None, [0], [0, 1, 2]])
def test_data_parallel_trains_on_the_one_target_as_on_one_device(device_ids):
    """DataParallel over 'cuda' with every CUDA index the one target: one device, inputs moved
    there, gradients and steps exactly those of the bare module."""
    torch.manual_seed(0)
    bare = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    wrapped_module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    wrapped_module.load_state_dict(bare.state_dict())
    parallel = nn.DataParallel(wrapped_module, device_ids=device_ids).cuda()
    bare = bare.to(torchdevice.target())
    x = torch.randn(6, 4)  # on the host, as a DataLoader yields it
    outputs = parallel(x)
    assert outputs.device == torchdevice.target()
    assert torch.equal(outputs, bare(x.to(torchdevice.target())))
    outputs.sum().backward()
    bare(x.to(torchdevice.target())).sum().backward()
    for a, b in zip(parallel.module.parameters(), bare.parameters()):
        assert torch.equal(a.grad, b.grad)
