"""torch.standin: the stand-in's device module, shaped like torch.cuda's."""

import contextlib

import torch

from . import _C

__all__ = [
    "Event", "Stream", "current_device", "current_stream", "default_generators", "device_count",
    "device", "get_amp_supported_dtype", "get_rng_state", "hold", "initial_seed", "is_available",
    "is_initialized", "manual_seed", "manual_seed_all", "max_memory_allocated",
    "max_memory_reserved", "memory_allocated", "memory_limit", "memory_reserved", "memory_stats",
    "reset_peak_memory_stats", "seed", "seed_all", "set_device", "set_memory_limit",
    "set_rng_state", "set_stream", "stream", "synchronize",
]

Stream = torch.Stream
Event = torch.Event


def _index(device=None):
    if device is None:
        return _C.current_device()
    if isinstance(device, int):
        return device
    device = torch.device(device)
    if device.type != "standin":
        raise ValueError(f"Expected a standin device, but got: {device}")
    return _C.current_device() if device.index is None else device.index


def is_available():
    return True


def is_initialized():
    return True


def _lazy_init():
    pass


def _is_in_bad_fork():
    return False


def device_count():
    return _C.device_count()


def current_device():
    return _C.current_device()


def set_device(device):
    _C.set_device(_index(device))


class device:
    """Makes `device` the current stand-in device for the block (like torch.cuda.device)."""

    def __init__(self, device):
        self.index = _index(device)
        self.previous = None

    def __enter__(self):
        self.previous = _C.current_device()
        _C.set_device(self.index)

    def __exit__(self, *exc):
        _C.set_device(self.previous)
        return False


def synchronize(device=None):
    _C.synchronize(_index(device))


def current_stream(device=None):
    return torch.accelerator.current_stream(torch.device("standin", _index(device)))


def set_stream(stream):
    torch.accelerator.set_stream(stream)


@contextlib.contextmanager
def stream(stream):
    """Makes `stream` current on its device for the block."""
    previous = current_stream(stream.device)
    set_stream(stream)
    try:
        yield stream
    finally:
        set_stream(previous)


def _sleep(milliseconds, device=None):
    """Queues `milliseconds` of busy time on the current stream (like torch.cuda._sleep)."""
    _C.sleep(_index(device), float(milliseconds))


@contextlib.contextmanager
def hold(device=None):
    """Work queued on the current stream inside the block runs only after the block ends."""
    gate = _C.hold(_index(device))
    try:
        yield
    finally:
        gate.release()


def memory_stats(device=None):
    return _C.memory_stats(_index(device))


def memory_allocated(device=None):
    return memory_stats(device)["allocated_bytes.all.current"]


def max_memory_allocated(device=None):
    return memory_stats(device)["allocated_bytes.all.peak"]


def memory_reserved(device=None):
    return memory_stats(device)["reserved_bytes.all.current"]


def max_memory_reserved(device=None):
    return memory_stats(device)["reserved_bytes.all.peak"]


def reset_peak_memory_stats(device=None):
    _C.reset_peak_memory_stats(_index(device))


def reset_accumulated_memory_stats(device=None):
    _C.reset_accumulated_memory_stats(_index(device))


def empty_cache():
    """Nothing is cached: freed memory goes straight back to the host."""


def memory_limit(device=None):
    return _C.memory_limit(_index(device))


def set_memory_limit(limit, device=None):
    """Allocations past `limit` bytes on the device fail as an accelerator's out-of-memory."""
    _C.set_memory_limit(_index(device), int(limit))


def get_amp_supported_dtype():
    return [torch.float16, torch.bfloat16]


default_generators = tuple(_C.default_generator(i) for i in range(_C.device_count()))


def manual_seed(seed):
    default_generators[current_device()].manual_seed(int(seed))


def manual_seed_all(seed):
    for generator in default_generators:
        generator.manual_seed(int(seed))


def seed():
    default_generators[current_device()].seed()


def seed_all():
    for generator in default_generators:
        generator.seed()


def initial_seed():
    return default_generators[current_device()].initial_seed()


def get_rng_state(device="standin"):
    return default_generators[_index(device)].get_state()


def set_rng_state(new_state, device="standin"):
    default_generators[_index(device)].set_state(new_state)
