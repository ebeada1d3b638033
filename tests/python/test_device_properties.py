"""torch.cuda.get_device_properties: every attribute torch's own object declares, for the target."""

import os
import platform
import re
import subprocess

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = requires_cuda_redirect

needs_cpu_target = pytest.mark.skipif(
    torchdevice.target() is None or torchdevice.target().type != "cpu",
    reason="the CPU target's figures come from the host",
)


def _torch_declared_attributes():
    """The attributes torch's own _CudaDeviceProperties declares in this version's stubs."""
    path = os.path.join(os.path.dirname(torch.__file__), "_C", "__init__.pyi")
    with open(path) as f:
        text = f.read()
    body = re.search(r"class _CudaDeviceProperties:\n((?:    .*\n)+)", text).group(1)
    return re.findall(r"^    (\w+):", body, re.M)


def test_every_attribute_torch_declares_is_there():
    props = torch.cuda.get_device_properties(0)
    declared = _torch_declared_attributes()
    assert "name" in declared
    missing = [name for name in declared if not hasattr(props, name)]
    assert missing == []
    # Attributes later torch versions add, present whatever this torch declares.
    for name in ("gcnArchName", "uuid", "L2_cache_size", "warp_size", "clock_rate",
                 "max_threads_per_multi_processor", "shared_memory_per_multiprocessor"):
        assert hasattr(props, name)
    assert isinstance(props, torch.cuda._CudaDeviceProperties)


def _getconf(name):
    out = subprocess.run(["getconf", name], capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() else 0


@needs_cpu_target
def test_cpu_figures_are_the_hosts():
    props = torch.cuda.get_device_properties("cuda")
    assert props.gcnArchName == platform.machine()
    assert props.L2_cache_size == _getconf("LEVEL2_CACHE_SIZE")
    assert props.shared_memory_per_multiprocessor == _getconf("LEVEL1_DCACHE_SIZE")
    assert props.warp_size in (1, 4, 8, 16)
    assert props.clock_rate > 0
    if os.path.exists("/etc/machine-id"):
        with open("/etc/machine-id") as f:
            assert props.uuid.replace("-", "") == f.read().strip()
    else:
        assert props.uuid == ""  # the system keeps no id: none is made up
    assert props.max_threads_per_multi_processor >= 1
