"""Resident memory stays flat over many redirected calls and install/uninstall cycles
(bench/leaks.py measures the same at a million calls)."""

import os
import sys

import pytest

from conftest import REPO, requires_cuda_redirect

sys.path.insert(0, os.path.join(REPO, "bench"))
import leaks  # noqa: E402

pytestmark = [
    requires_cuda_redirect,
    pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                       reason="AddressSanitizer's quarantine makes RSS meaningless"),
]

# Generous: 200k calls leaking 64 bytes each would be 12.5 MiB.
BOUND_KIB = 8 * 1024


def test_redirected_calls_do_not_grow_rss():
    assert leaks.measure("calls", leaks.redirected_calls, 200_000, leaks.WARMUP) < BOUND_KIB


def test_install_uninstall_cycles_do_not_grow_rss():
    assert leaks.measure("cycles", leaks.cycles, 300, 50) < BOUND_KIB
