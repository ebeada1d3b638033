"""CUDA graphs on the target: a capture records the ops it runs, replay() runs them again on the
captured tensors, so replays follow the static inputs' current values as on CUDA."""

import os
import pickle

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect, run_python

pytestmark = requires_cuda_redirect


def _capture(fn, *static):
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(*static)
    return graph, out


def test_replay_reads_the_static_input_and_writes_the_static_output():
    torch.manual_seed(0)
    static_x = torch.randn(4, 3, device="cuda")
    w = torch.randn(3, 5, device="cuda")
    graph, static_y = _capture(lambda x: torch.relu(x @ w).sum(dim=1) * 2 + 1, static_x)
    assert isinstance(graph, torch.cuda.CUDAGraph)
    for _ in range(3):
        new = torch.randn(4, 3, device="cuda")
        static_x.copy_(new)
        graph.replay()
        torch.testing.assert_close(static_y, torch.relu(new @ w).sum(dim=1) * 2 + 1)
    assert static_y.device == torchdevice.target()


def test_in_place_ops_run_again_on_replay_and_capture_changes_nothing_before_it():
    counter = torch.zeros(3, device="cuda")
    step = torch.ones(3, device="cuda")
    graph, _ = _capture(lambda: counter.add_(step).mul_(2))
    # As on CUDA, capturing runs no work on tensors that existed before it.
    assert counter.tolist() == [0.0, 0.0, 0.0]
    graph.replay()
    assert counter.tolist() == [2.0, 2.0, 2.0]
    step.fill_(3)
    graph.replay()
    assert counter.tolist() == [10.0, 10.0, 10.0]


def test_a_replay_that_did_nothing_would_fail_this():
    x = torch.zeros(2, device="cuda")
    graph, y = _capture(lambda t: t + 1, x)
    x.fill_(41)
    graph.replay()
    assert y.tolist() == [42.0, 42.0]
    assert graph._torchdevice_recording.replayed_ops >= 1


def test_mlp_forward_backward_and_sgd_step_match_eager():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).cuda()
    reference = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).cuda()
    reference.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    static_x = torch.randn(5, 6, device="cuda")
    static_t = torch.randn(5, 2, device="cuda")

    def step(m, o, x, t):
        loss = torch.nn.functional.mse_loss(m(x), t)
        loss.backward()
        o.step()
        return loss

    # Warm up (creates the momentum buffers), as CUDA graph recipes do; the reference does the same.
    for m, o in ((model, opt), (reference, ref_opt)):
        o.zero_grad(set_to_none=True)
        step(m, o, static_x, static_t)
    opt.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = step(model, opt, static_x, static_t)
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)  # the capture did not step

    for i in range(3):
        x, t = torch.randn(5, 6, device="cuda"), torch.randn(5, 2, device="cuda")
        static_x.copy_(x)
        static_t.copy_(t)
        graph.replay()
        ref_opt.zero_grad(set_to_none=True)
        ref_loss = step(reference, ref_opt, x, t)
        torch.testing.assert_close(static_loss, ref_loss)
        for p, q in zip(model.parameters(), reference.parameters()):
            torch.testing.assert_close(p, q)


def test_make_graphed_callables_forward_and_backward_match_eager():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).cuda()
    reference = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).cuda()
    reference.load_state_dict(model.state_dict())
    sample = torch.randn(2, 4, device="cuda", requires_grad=True)
    graphed = torch.cuda.make_graphed_callables(model, (sample,))
    for _ in range(2):
        x = torch.randn(2, 4, device="cuda", requires_grad=True)
        x_ref = x.detach().clone().requires_grad_(True)
        out = graphed(x)
        ref = reference(x_ref)
        torch.testing.assert_close(out, ref)
        out.pow(2).sum().backward()
        ref.pow(2).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad)
        for p, q in zip(model.parameters(), reference.parameters()):
            torch.testing.assert_close(p.grad, q.grad)
        model.zero_grad(set_to_none=True)
        reference.zero_grad(set_to_none=True)


def test_random_ops_draw_fresh_numbers_on_each_replay():
    graph, noise = _capture(lambda: torch.randn(1000, device="cuda"))
    graph.replay()
    first = noise.clone()
    graph.replay()
    assert not torch.equal(first, noise)
    assert abs(noise.mean().item()) < 0.2


def test_reset_pool_and_capture_state():
    g1 = torch.cuda.CUDAGraph()
    assert torch.cuda.is_current_stream_capturing() is False
    seen = []
    x = torch.ones(2, device="cuda")
    with torch.cuda.graph(g1):
        seen.append(torch.cuda.is_current_stream_capturing())
        y = x * 3
    assert seen == [True] and torch.cuda.is_current_stream_capturing() is False
    g2 = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g2, pool=g1.pool()):
        z = y + 1
    x.fill_(2)
    g1.replay()
    g2.replay()
    assert z.tolist() == [7.0, 7.0]
    handle = torch.cuda.graph_pool_handle()
    g3 = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g3, pool=handle):
        w = x - 1
    assert g3.pool() == tuple(handle)
    g1.reset()
    with pytest.raises(RuntimeError, match="not been captured"):
        g1.replay()
    with torch.cuda.graph(g1):
        y2 = x * 5
    g1.replay()
    assert y2.tolist() == [10.0, 10.0] and w.tolist() == [1.0, 1.0]


def test_torch_keeps_its_own_cuda_graph_class_and_uninstall_gives_its_base_back():
    """torchdevice gives torch's CUDAGraph base (a dummy on a torch without CUDA) the methods of
    CUDA's C++ class, so the class users get is torch's own, with every hook of the version."""
    graph_class = torch.cuda.CUDAGraph
    assert graph_class.__module__ == "torch.cuda.graphs" and graph_class is torch.cuda.graphs.CUDAGraph
    assert issubclass(graph_class, torch._C._CUDAGraph)
    assert torch.cuda.is_current_stream_capturing is torch.cuda.graphs.is_current_stream_capturing
    base = dict(vars(torch._C._CUDAGraph))
    torchdevice.uninstall()
    try:
        bare = dict(vars(torch._C._CUDAGraph))
        assert "capture_begin" in base and base.keys() - bare.keys() >= {"capture_begin", "replay"}
        if not torch.backends.cuda.is_built():
            with pytest.raises(RuntimeError, match="dummy base class"):
                torch.cuda.CUDAGraph()
    finally:
        torchdevice.install()
    assert vars(torch._C._CUDAGraph).keys() == base.keys()
    torchdevice.uninstall()
    try:
        # Exactly torch's own entries again, the same objects (its __new__ a staticmethod still).
        assert dict(vars(torch._C._CUDAGraph)) == bare
    finally:
        torchdevice.install()


def test_a_torch_built_with_cuda_gets_a_graph_class_of_torchdevices():
    """There torch's base is CUDA's C++ class, which cannot be created without a device; a C++
    class in its place here takes the same branch."""
    result = run_python("""
import torch, torchdevice
torchdevice.uninstall()
torch_class = torch.cuda.CUDAGraph
torch._C._CUDAGraph = torchdevice._C._cuda._GraphRecording
torchdevice.install()
assert torch.cuda.CUDAGraph is not torch_class and torch.cuda.CUDAGraph.__module__ == "torch.cuda"
assert torch.cuda.graphs.CUDAGraph is torch.cuda.CUDAGraph
x = torch.zeros(2, device="cuda")
graph = torch.cuda.CUDAGraph()
with torch.cuda.graph(graph):
    y = x + 1
x.fill_(41)
graph.replay()
assert y.tolist() == [42.0, 42.0], y
torchdevice.uninstall()
assert torch.cuda.CUDAGraph is torch_class
print("replayed")
""")
    assert result.stdout.strip() == "replayed", result.stdout + result.stderr


requires_graph_hooks = pytest.mark.skipif(
    not hasattr(torch.cuda.CUDAGraph, "register_capture_start_hook"),
    reason=f"CUDAGraph's lifecycle hooks are torch 2.14's (this is {torch.__version__})")


@requires_graph_hooks
def test_lifecycle_hooks_fire_where_torch_fires_them():
    events = []
    x = torch.ones(2, device="cuda")
    graph = torch.cuda.CUDAGraph()
    graph.register_capture_start_hook(
        lambda g: events.append(("capture start", g is graph, torch.cuda.is_current_stream_capturing())))
    graph.register_capture_end_hook(lambda g: events.append(("capture end", g._has_graph_exec)))
    graph.register_post_instantiate_hook(lambda g: events.append(("instantiated", g._has_graph_exec)))
    graph.register_replay_start_hook(lambda g: events.append(("replay start", y.tolist())))
    graph.register_replay_end_hook(lambda g: events.append(("replay end", y.tolist())))
    global_start = torch.cuda.graphs.register_graph_capture_start_hook(
        lambda g: events.append(("global capture start",)))
    try:
        with torch.cuda.graph(graph):
            y = x * 2
        x.fill_(5)
        graph.replay()
    finally:
        global_start.remove()
    assert events == [
        ("global capture start",), ("capture start", True, True),
        ("capture end", False), ("instantiated", True),
        ("replay start", [2.0, 2.0]), ("replay end", [10.0, 10.0]),
    ]


@requires_graph_hooks
def test_keep_graph_instantiates_on_the_first_replay(tmp_path):
    instantiated = []
    x = torch.ones(2, device="cuda")
    graph = torch.cuda.CUDAGraph(keep_graph=True)
    graph.register_post_instantiate_hook(lambda g: instantiated.append(g._has_graph_exec))
    graph.register_capture_end_hook(torch.cuda.graphs.export_dot(str(tmp_path / "graph.dot")))
    with torch.cuda.graph(graph):
        y = x + 1
    assert "aten::add" in (tmp_path / "graph.dot").read_text()
    assert instantiated == [] and not graph._has_graph_exec
    x.fill_(3)
    graph.replay()
    graph.replay()
    assert instantiated == [True] and y.tolist() == [4.0, 4.0]


@requires_graph_hooks
def test_destroy_callbacks_and_retained_objects_are_released_on_reset_and_collection():
    import gc
    import weakref

    class Held:
        pass

    fired = []
    x = torch.ones(2, device="cuda")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        x * 2
    held = Held()
    alive = weakref.ref(held)
    graph.retain_object(held)
    graph.register_destroy_callback(lambda: fired.append("reset"))
    del held
    assert alive() is not None
    graph.reset()
    assert fired == ["reset"] and alive() is None
    with torch.cuda.graph(graph):
        x * 3
    graph.register_destroy_callback(lambda: fired.append("collected"))
    del graph
    gc.collect()
    assert fired == ["reset", "collected"]


def test_errors_name_the_call_and_the_target(tmp_path):
    g = torch.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="not been captured"):
        g.replay()
    with pytest.raises(RuntimeError, match=f"raw_cuda_graph.*{torchdevice.target().type}"):
        g.raw_cuda_graph()
    g.enable_debug_mode()
    x = torch.ones(3, device="cuda")
    with torch.cuda.graph(g):
        (x + 1).sum()
    path = tmp_path / "graph.dot"
    g.debug_dump(str(path))
    dot = path.read_text()
    assert dot.startswith("digraph") and "aten::add.Tensor" in dot and "op0 -> op1" in dot
    if hasattr(g, "get_graph_data"):
        with pytest.raises(RuntimeError, match=f"CUDAGraph API is not available on the {torchdevice.target().type}"):
            g.get_graph_data()
    nonzero = torch.cuda.CUDAGraph()
    mask = torch.tensor([1.0, 0.0, 1.0], device="cuda")
    with torch.cuda.graph(nonzero):
        idx = torch.nonzero(mask)
    mask.fill_(1)
    with pytest.raises(RuntimeError, match="data-dependent shapes"):
        nonzero.replay()
    assert idx.shape == (2, 1)


ON_CPU = torchdevice.target().type == "cpu"


@pytest.mark.skipif(ON_CPU, reason="on the CPU target, CPU tensors are the target's: host work "
                    "cannot be told from device work there, and is captured")
def test_host_work_inside_a_capture_runs_once_and_is_not_replayed():
    """As CUDA's: a graph holds device work only; host ops run when captured, never again."""
    a, x = torch.ones(2), torch.ones(2, device="cuda")
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        b = a * 2
        a.add_(1)  # a host write inside the capture stays written
        y = x * 2
    assert b.tolist() == [2.0, 2.0] and a.tolist() == [2.0, 2.0]
    a.fill_(5)
    x.fill_(5)
    g.replay()
    assert b.tolist() == [2.0, 2.0] and a.tolist() == [5.0, 5.0]
    assert y.cpu().tolist() == [10.0, 10.0]


@pytest.mark.skipif(not ON_CPU, reason="only the CPU target captures CPU work (its tensors)")
def test_on_the_cpu_target_cpu_work_in_a_capture_is_the_targets_and_replays():
    a = torch.ones(2)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        b = a * 2
    a.fill_(5)
    c = a * 2
    assert c.tolist() == [10.0, 10.0] and b.tolist() == [2.0, 2.0]
    g.replay()
    assert b.tolist() == [10.0, 10.0]


def test_a_second_capture_on_another_thread_is_refused_while_one_is_underway():
    """The threads autograd runs an accelerator's backward on record into the capture underway
    (test_mlp_forward_backward_and_sgd_step_match_eager), so only one capture runs at a time."""
    import threading

    x = torch.ones(2, device="cuda")
    errors = []

    def second():
        try:
            with torch.cuda.graph(torch.cuda.CUDAGraph()):
                x + 1
        except RuntimeError as error:
            errors.append(str(error))

    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = x * 2
        thread = threading.Thread(target=second)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "already underway on another thread" in errors[0], errors
    x.fill_(3)
    graph.replay()
    assert y.tolist() == [6.0, 6.0]
