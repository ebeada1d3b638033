"""Resident memory across many redirected calls and many install/uninstall cycles.

Usage: /usr/bin/python3 bench/leaks.py [CALLS (default 1000000)] [CYCLES (default 5000)]
(run from the repository root with PYTHONPATH=python). Prints RSS before and after each phase.
A leak of a few bytes per call shows as megabytes here; allocator noise stays under ~1 MB.
"""

import sys

import torch

import torchdevice

WARMUP = 20000
# The first few thousand install/uninstall cycles grow RSS by ~130 KiB in all (interpreter and
# allocator caches filling up), then it stays flat: the measured cycles start after them.
CYCLE_WARMUP = 4000


def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def redirected_calls(count):
    source = torch.ones(16)
    for i in range(count):
        if i % 2:
            torch.zeros(16, device="cuda")
        else:
            source.cuda()


def cycles(count):
    for _ in range(count):
        torchdevice.uninstall()
        torchdevice.install()
        torch.zeros(1, device="cuda")


def measure(name, run, count, warmup):
    run(warmup)
    before = rss_kib()
    run(count)
    after = rss_kib()
    print(f"{name}: {count} -> RSS {before} KiB before, {after} KiB after, "
          f"{after - before:+d} KiB ({(after - before) * 1024 / count:+.2f} B each)")
    return after - before


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    cycle_count = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    print(f"torch {torch.__version__}, redirect: {torchdevice.redirected()} -> {torchdevice.target()}")
    measure("redirected calls (zeros(16, device='cuda') / .cuda())", redirected_calls, calls,
            WARMUP)
    measure("install/uninstall cycles", cycles, cycle_count, CYCLE_WARMUP)


if __name__ == "__main__":
    main()
