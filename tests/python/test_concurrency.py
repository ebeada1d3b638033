"""Threads making redirected calls while another thread installs and uninstalls.

While uninstalled, a CUDA request is refused exactly as torch refuses it without torchdevice
(lazy init's "Torch not compiled with CUDA enabled", the missing device guard or kernel), or, for a
call already past dispatch when the uninstall happened, with torchdevice's NotImplementedError
saying so. Anything that succeeds is on the target.
"""

import re
import threading
import time

import torch

import torchdevice
from conftest import requires_cuda_redirect

WORKERS = 4
ITERATIONS = 400
TOGGLES = 150
DEADLINE_S = 120

# The last one: before torch reports a missing kernel it rechecks the operator's whole dispatch
# table, unlocked, and a table that another thread is re-registering fails that check. The same
# refusal, in torch's internal-assert words (tests/cpp/test_concurrency.cpp says more).
TORCH_REFUSALS = re.compile(
    r"Torch not compiled with CUDA enabled|not linked with support for cuda devices"
    r"|with arguments from the 'CUDA' backend|uninstalled while this call was in flight"
    r"|_equalsBoxedAndUnboxed\(dispatchTable_"
)

CALLS = [
    ("zeros", lambda source: torch.zeros(4, 4, device="cuda")),
    ("cuda()", lambda source: source.cuda()),
    ("to('cuda:1')", lambda source: source.to("cuda:1")),
    ("tensor", lambda source: torch.tensor([0.0, 1.0, 2.0], device="cuda")),
    ("empty_like", lambda source: torch.empty_like(source, device="cuda")),
]


@requires_cuda_redirect
def test_threads_race_install_and_uninstall(target):
    failures = []
    counts = {"ok": 0, "refused": 0}
    lock = threading.Lock()

    def worker():
        source = torch.arange(3, dtype=torch.float32)
        for i in range(ITERATIONS):
            name, call = CALLS[i % len(CALLS)]
            try:
                made = call(source)
            except Exception as error:  # judged below: only torch's own refusals pass
                with lock:
                    counts["refused"] += 1
                    if not TORCH_REFUSALS.search(str(error)):
                        failures.append(f"{name}: {type(error).__name__}: {error}")
                continue
            with lock:
                counts["ok"] += 1
                if made.device != target:  # whatever succeeded was redirected
                    failures.append(f"{name} landed on {made.device}")
                elif name != "zeros" and name != "empty_like" and not torch.equal(made.cpu(), source):
                    failures.append(f"{name} changed the values: {made}")

    def toggler():
        for _ in range(TOGGLES):
            torchdevice.uninstall()
            time.sleep(0)
            torchdevice.install()

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    threads.append(threading.Thread(target=toggler))
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, DEADLINE_S - (time.monotonic() - start)))
    assert not any(thread.is_alive() for thread in threads), "deadlock: threads still running"
    torchdevice.install()
    assert failures == [], failures[:5]
    assert counts["ok"] + counts["refused"] == WORKERS * ITERATIONS
    assert counts["ok"] > 0
    print(f"{WORKERS} threads x {ITERATIONS} calls, {TOGGLES} install/uninstall cycles: {counts}")
    assert torch.zeros(1, device="cuda").device == target
