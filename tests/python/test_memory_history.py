"""Memory history and snapshots on the CPU target, from torchdevice's own allocation records."""

import pickle

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = [
    requires_cuda_redirect,
    pytest.mark.skipif(
        torchdevice.target() is None or torchdevice.target().type != "cpu",
        reason="allocation records are kept for the CPU target's counted allocations",
    ),
]


def _allocate_here():
    return torch.empty(123457, dtype=torch.uint8, device="cuda")


def _record(enabled):
    if torch.__version__.startswith("1."):
        torch.cuda.memory._record_memory_history(bool(enabled), trace_alloc_max_entries=1000)
    else:
        torch.cuda.memory._record_memory_history(enabled, max_entries=1000)


def test_snapshot_lists_live_blocks_with_their_python_stack(tmp_path):
    _record("all")
    try:
        block = _allocate_here()
        address = block.data_ptr()
        snapshot = torch.cuda.memory._snapshot()
        segments = [s for s in snapshot["segments"] if s["address"] == address]
        assert len(segments) == 1
        segment = segments[0]
        assert segment["total_size"] == 123457 and segment["blocks"][0]["state"] == "active_allocated"
        names = [f["name"] for f in segment["blocks"][0]["frames"]]
        assert "_allocate_here" in names
        trace = snapshot["device_traces"][0]
        assert any(e["action"] == "alloc" and e["addr"] == address for e in trace)
        del block
        trace = torch.cuda.memory._snapshot()["device_traces"][0]
        assert any(e["action"] == "free_completed" and e["addr"] == address for e in trace)
        assert address not in [s["address"] for s in torch.cuda.memory._snapshot()["segments"]]
        kept = _allocate_here()
        assert kept.data_ptr() in [s["address"] for s in torch.cuda.memory_snapshot()]
        if hasattr(torch.cuda.memory, "_dump_snapshot"):  # torch >= 2.1: torch's own, on _snapshot
            path = tmp_path / "snapshot.pickle"
            torch.cuda.memory._dump_snapshot(str(path))
            with open(path, "rb") as f:
                assert set(pickle.load(f)) >= {"segments", "device_traces"}
    finally:
        _record(None)


@pytest.mark.parametrize("stacks", ["all", "python"])
def test_stacks_all_puts_the_cpp_frames_before_the_python_ones(stacks):
    torch.cuda.memory._record_memory_history("all", stacks=stacks)
    try:
        block = _allocate_here()
        segment, = [s for s in torch.cuda.memory._snapshot()["segments"]
                    if s["address"] == block.data_ptr()]
        frames = segment["blocks"][0]["frames"]
    finally:
        _record(None)
    names = [f["name"] for f in frames]
    first_python = names.index("_allocate_here")
    native, python = frames[:first_python], frames[first_python:]
    assert not any(".so" in f["filename"] for f in python), python
    if stacks == "python":
        assert native == []
        return
    # torch's own C++ frames, from its allocation back to its Python binding, innermost first.
    assert native and all(".so" in f["filename"] and f["line"] == 0 for f in native), native
    assert any("empty" in f["name"] for f in native), [f["name"] for f in native]


def test_stopping_stops_recording():
    _record("all")
    _record(None)
    kept = _allocate_here()
    assert kept.data_ptr() not in [s["address"] for s in torch.cuda.memory._snapshot()["segments"]]


def test_bad_arguments_are_value_errors():
    if torch.__version__.startswith("1."):
        pytest.skip("torch 1.13's enabled is a bool")
    with pytest.raises(ValueError, match="enabled must be"):
        torch.cuda.memory._record_memory_history("everything")
