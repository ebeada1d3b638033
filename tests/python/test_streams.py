"""torch.cuda streams and events on the target: one ordered queue, events timed on it."""

import threading
import time

import pytest
import torch

import torchdevice
from conftest import EMULATED_MPS, REDIRECTS_CUDA, keep_target_busy, requires_cuda_redirect

pytestmark = requires_cuda_redirect
# A target whose stream runs queued work asynchronously, so that waits have an effect to see (every
# torch.cuda stream is the target's one ordered queue). On the CPU every call has finished when it
# returns.
ASYNC_STREAMS = REDIRECTS_CUDA and (EMULATED_MPS or (hasattr(torch, "standin")
                                                     and torchdevice.target().type == "standin"))
requires_async_streams = pytest.mark.skipif(
    not ASYNC_STREAMS,
    reason="needs a target whose stream runs asynchronously (the stand-in, the emulated MPS)")


def test_current_and_default_stream():
    default = torch.cuda.default_stream()
    assert torch.cuda.current_stream() == default
    assert torch.cuda.current_stream("cuda:0") == default
    assert default.stream_id == 0 and default.cuda_stream == 0
    assert default.device == torch.device("cuda")
    s = torch.cuda.Stream()
    assert isinstance(s, torch.cuda.Stream) and isinstance(s, torch.cuda.streams.Stream)
    assert s != default and s == s and hash(s) == hash(s)
    assert s != "not a stream"
    assert torch.cuda.Stream(device="cuda:0", priority=-1).priority == -1
    assert "torch.cuda.Stream device=" in repr(s)


def test_stream_context_sets_and_restores_per_thread():
    s = torch.cuda.Stream()
    default = torch.cuda.default_stream()
    seen = []
    with torch.cuda.stream(s):
        assert torch.cuda.current_stream() == s
        t = threading.Thread(target=lambda: seen.append(torch.cuda.current_stream()))
        t.start()
        t.join()
        x = torch.ones(3, device="cuda") * 2  # work inside the block runs on the target
        assert x.device == torch.device("cuda")
    assert seen == [default]
    assert torch.cuda.current_stream() == default
    with torch.cuda.stream(None):
        assert torch.cuda.current_stream() == default
    with s:
        assert torch.cuda.current_stream() == s
        with torch.cuda.StreamContext(torch.cuda.Stream()) as inner:
            assert torch.cuda.current_stream() == inner
        assert torch.cuda.current_stream() == s
    assert torch.cuda.current_stream() == default
    torch.cuda.set_stream(s)
    assert torch.cuda.current_stream() == s
    torch.cuda.set_stream(default)


def test_event_times_real_work():
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    x = torch.randn(300, 300, device="cuda")
    t0 = time.perf_counter()
    start.record()
    for _ in range(20):
        x = torch.tanh(x @ x)
    end.record()
    # On an accelerator the work may still be running here: the wall clock stops once it is done.
    end.synchronize()
    wall_ms = (time.perf_counter() - t0) * 1000
    ms = start.elapsed_time(end)
    assert 0 < ms <= wall_ms
    assert end.query() and start.query()
    # An empty interval is shorter than one with work in it.
    a = torch.cuda.Event(enable_timing=True)
    b = torch.cuda.Event(enable_timing=True)
    a.record()
    b.record()
    b.synchronize()
    assert 0 <= a.elapsed_time(b) < ms


def test_event_sleep_is_measured():
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record(torch.cuda.current_stream())
    time.sleep(0.05)
    end.record()
    end.synchronize()  # as on CUDA: an event's time is known once the device has reached it
    assert 50 <= start.elapsed_time(end) < 1000


def test_event_errors_match_torch():
    untimed = torch.cuda.Event()
    timed = torch.cuda.Event(enable_timing=True)
    timed.record()
    untimed.record()
    with pytest.raises(RuntimeError, match="enable_timing=True"):
        timed.elapsed_time(untimed)
    with pytest.raises(RuntimeError, match="must be recorded"):
        timed.elapsed_time(torch.cuda.Event(enable_timing=True))
    with pytest.raises(RuntimeError, match="no CUDA IPC"):
        torch.cuda.Event(interprocess=True)
    with pytest.raises(TypeError):
        timed.record("not a stream")


@requires_async_streams
@pytest.mark.parametrize("wait", ["stream.wait_event", "stream.wait_stream", "event.wait"])
def test_a_wait_holds_the_waiting_streams_work_until_the_other_streams_is_done(wait):
    s1, s2 = torch.cuda.Stream(), torch.cuda.Stream()
    x = torch.ones(4, device="cuda")  # first: computing drains the queue on these targets
    with torch.cuda.stream(s1):
        keep_target_busy(200)
    event = s1.record_event()
    assert not event.query()
    {"stream.wait_event": lambda: s2.wait_event(event),
     "stream.wait_stream": lambda: s2.wait_stream(s1),
     "event.wait": lambda: event.wait(s2)}[wait]()
    assert not s2.query()  # what s2 runs next follows s1's work
    event.synchronize()
    assert event.query()
    with torch.cuda.stream(s2):
        y = x * 2
    s2.synchronize()
    assert s1.query() and s2.query()
    assert torch.equal(y.cpu(), torch.full((4,), 2.0))


def test_record_wait_and_synchronize():
    s1, s2 = torch.cuda.Stream(), torch.cuda.Stream()
    with torch.cuda.stream(s1):
        x = torch.arange(10.0, device="cuda")
    event = s1.record_event()
    assert isinstance(event, torch.cuda.Event)
    event.synchronize()
    assert event.query()
    s2.wait_event(event)
    s2.wait_stream(s1)
    event.wait(s2)
    with torch.cuda.stream(s2):
        y = x * 2
    s2.synchronize()
    torch.cuda.synchronize()
    assert s1.query() and s2.query()
    assert torch.equal(y.cpu(), torch.arange(0.0, 20.0, 2.0))
    mine = torch.cuda.Event(enable_timing=True)
    assert s1.record_event(mine) is mine
