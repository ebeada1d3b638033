"""What torchdevice costs, measured side by side in one run.

    PYTHONPATH=python /usr/bin/python3 bench/bench.py [--quick] [--json PATH]

Prints a table of per-call times (variant A, variant B, ratio B/A) and writes the numbers to
bench/results/latest.json. Each time is the median over many repetitions of a timed loop of N
calls; the variants of all rows are interleaved within every repetition, so drift in clock speed
or load hits A and B alike. The noise row (a call against itself) shows how far from 1.00 a
ratio can stray by chance. When the build has it, build/torchdevice_allocator_bench
(bench/allocator.cpp) adds what counting CPU allocations costs, timed in C++.
"""

import argparse
import copy
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn

# The benchmark chooses when CPU allocations are counted (the UNCOUNTED state below).
COUNT_VARIABLE = "TORCHDEVICE_CPU_MEMORY_STATS"
os.environ.pop(COUNT_VARIABLE, None)

import torchdevice  # noqa: E402

# Explicit so the benchmark still measures the redirect when TORCHDEVICE_DISABLE is set.
TARGET = torchdevice.install()

_native_zeros = torch.zeros


def shim_zeros(*args, **kwargs):
    """torch.zeros behind the kind of Python wrapper that shims monkeypatch over torch's factories.

    It rewrites a CUDA `device` keyword to the target, as such shims do. The test is a cheap
    string check, so this is a lower bound on what a real shim (which handles more cases) costs.
    """
    device = kwargs.get("device")
    if device is not None and str(device).split(":")[0] == "cuda":
        kwargs["device"] = TARGET
    return _native_zeros(*args, **kwargs)


# The state a variant runs in: torchdevice uninstalled, installed, installed with the redirect
# report collecting, or installed without counting CPU allocations (TORCHDEVICE_CPU_MEMORY_STATS=0).
INSTALLED, UNINSTALLED, REPORTING, UNCOUNTED = "installed", "uninstalled", "reporting", "uncounted"
STATES = (INSTALLED, UNINSTALLED, REPORTING, UNCOUNTED)

# (group, [(A statement, A state), (B statement, B state)] per row). Statements run in the
# namespace made by make_namespace(); `target` there is torchdevice.target(). A call written
# for CUDA is compared with the same call written for the target, spelled the same way: a device
# string against a device string (parsing one costs ~0.1 µs), a torch.device against a
# torch.device.
FACTORIES = [
    "torch.zeros(3, device={})",
    "torch.empty(3, device={})",
    "torch.ones(3, device={})",
    "torch.rand(3, device={})",
    "torch.full((3,), 1.0, device={})",
    "torch.arange(3, device={})",
]
GROUPS = [
    (
        "Redirected factory calls",
        f"A: the call spelled for the target (device={str(TARGET)!r}), "
        "B: the call with device='cuda', redirected",
        [((f.format(repr(str(TARGET))), INSTALLED), (f.format("'cuda'"), INSTALLED))
         for f in FACTORIES],
    ),
    (
        "Redirected copies",
        "A: explicit copy to the target, B: the CUDA call, redirected (both copy)",
        [
            (("t.to(target, copy=True)", INSTALLED), ("t.cuda()", INSTALLED)),
            ((f"t.to({str(TARGET)!r}, copy=True)", INSTALLED), ("t.to('cuda')", INSTALLED)),
            # Module.to(target) would not copy (the parameters are already there), so A runs
            # exactly what Module.cuda() runs, with a copy to the target in place of .cuda().
            (("lin._apply(copy_to_target)", INSTALLED), ("lin.cuda()", INSTALLED)),
        ],
    ),
    (
        "Work that is not redirected",
        "A: torchdevice uninstalled, B: torchdevice installed (same statement)",
        [
            ((stmt, UNINSTALLED), (stmt, INSTALLED))
            for stmt in ("torch.zeros(3)", "a + b", "x @ w", "mlp(xb).sum().backward()",
                         "t.to(torch.float16)")
        ],
    ),
    (
        "Work that is not redirected, CPU memory statistics off",
        "A: torchdevice uninstalled, B: installed with TORCHDEVICE_CPU_MEMORY_STATS=0",
        [((stmt, UNINSTALLED), (stmt, UNCOUNTED)) for stmt in ("torch.zeros(3)", "a + b")],
    ),
    (
        "Training step of a small MLP (batch 64, Adam)",
        "A: the step written for the target, B: the same step written for CUDA, redirected",
        [(("train_step(target)", INSTALLED), ("train_step('cuda')", INSTALLED))],
    ),
    (
        "Python-wrapper shim, for reference (torchdevice uninstalled)",
        "A: native torch.zeros, B: shim_zeros that rewrites device='cuda' to the target",
        [
            (("torch.zeros(3, device=target)", UNINSTALLED),
             ("shim_zeros(3, device='cuda')", UNINSTALLED)),
            (("torch.zeros(3)", UNINSTALLED), ("shim_zeros(3)", UNINSTALLED)),
        ],
    ),
    (
        "Redirect report",
        "A: report off, B: report on (a site already seen: one frame walk and one count per call)",
        [((stmt, INSTALLED), (stmt, REPORTING))
         for stmt in ("torch.zeros(3, device='cuda')", "t.cuda()", "torch.zeros(3)")],
    ),
    (
        "Noise",
        "A and B: the same call, torchdevice installed (1st row) and uninstalled (2nd row)",
        [(("torch.zeros(3, device=target)", INSTALLED),
          ("torch.zeros(3, device=target)", INSTALLED)),
         (("torch.zeros(3)", UNINSTALLED), ("torch.zeros(3)", UNINSTALLED))],
    ),
]

if hasattr(torch, "compile"):
    GROUPS.append((
        "Compiled forward of a small MLP (torch.compile, inductor)",
        "A: the model and batch compiled for the target, B: the same written for CUDA, redirected",
        [(("compiled_for_target(torch.randn(16, 32, device=target))", INSTALLED),
          ("compiled_for_cuda(torch.randn(16, 32, device='cuda'))", INSTALLED))],
    ))

if TARGET.type != "cpu" and hasattr(torch, "Event"):
    GROUPS.append((
        "Events on an accelerator target, with queued work",
        "A: the target's own event (torch.Event) recorded, B: torch.cuda.Event recorded, "
        "redirected; each after 1 µs of device time is queued (a device-wide sync would wait)",
        [(("queue(); torch.Event(target).record()", INSTALLED),
          ("queue(); torch.cuda.Event().record()", INSTALLED))],
    ))


def make_compiled():
    """Two compiled copies of one MLP: one moved to the target, one moved with .cuda()."""
    if not hasattr(torch, "compile"):
        return {}
    mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    for_target = torch.compile(copy.deepcopy(mlp).to(TARGET))
    for_cuda = torch.compile(copy.deepcopy(mlp).cuda())
    with torch.no_grad():  # compiled once each here, outside the timed loops
        for_target(torch.randn(16, 32, device=TARGET))
        for_cuda(torch.randn(16, 32, device="cuda"))
    return {"compiled_for_target": for_target, "compiled_for_cuda": for_cuda}


# Compiled like timeit does, so the loop adds no Python call per iteration to the statement.
LOOP_TEMPLATE = """
def loop(n, clock=perf_counter_ns):
    start = clock()
    for _ in range(n):
        {stmt}
    return clock() - start
"""

# One fresh interpreter gives both numbers; timing inside it leaves out interpreter start-up,
# which would otherwise add its own noise to both variants.
IMPORT_PROBE = (
    "import time; t0 = time.perf_counter_ns(); import torch; t1 = time.perf_counter_ns(); "
    "import torchdevice; t2 = time.perf_counter_ns(); print(t1 - t0, t2 - t1)"
)


def make_train_step():
    """One optimiser step whose batch is made on `device`, as a training loop does."""
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).to(TARGET)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step(device):
        inputs = torch.randn(64, 32, device=device)
        labels = torch.randint(0, 10, (64,), device=device)
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(inputs), labels).backward()
        optimiser.step()

    return train_step


def make_queue():
    """Queues a little device time on the target's current stream, where its module can (its
    `_sleep`, like torch.cuda._sleep; the stand-in's takes milliseconds)."""
    sleep = getattr(getattr(torch, TARGET.type, None), "_sleep", None)
    if sleep is None or TARGET.type == "cuda":
        return lambda: None
    return lambda: sleep(0.001)


def make_namespace():
    torch.manual_seed(0)
    return {
        "queue": make_queue(),
        "train_step": make_train_step(),
        "torch": torch,
        "perf_counter_ns": time.perf_counter_ns,
        "target": TARGET,
        "shim_zeros": shim_zeros,
        "t": torch.rand(3),
        "a": torch.rand(3),
        "b": torch.rand(3),
        "x": torch.rand(32, 32),
        "w": torch.rand(32, 32),
        "lin": nn.Linear(64, 64),
        "copy_to_target": lambda p: p.to(TARGET, copy=True),
        "mlp": nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)),
        "xb": torch.rand(16, 32),
        **make_compiled(),
    }


def compile_loop(stmt, namespace):
    scope = dict(namespace)
    exec(LOOP_TEMPLATE.format(stmt=stmt), scope)
    return scope["loop"]


def set_state(state):
    installed = state != UNINSTALLED
    counting = state != UNCOUNTED
    if torchdevice.is_installed() and (not installed or counting != (COUNT_VARIABLE not in os.environ)):
        torchdevice.uninstall()
    if installed and not torchdevice.is_installed():
        if counting:
            os.environ.pop(COUNT_VARIABLE, None)
        else:
            os.environ[COUNT_VARIABLE] = "0"
        torchdevice.install()
    torchdevice._C._report_enable(state == REPORTING)


def calibrate(loop, loop_ns):
    """How many calls make one timed loop last about loop_ns."""
    n = 1
    while True:
        elapsed = loop(n)
        if elapsed >= loop_ns / 4:
            return max(1, round(n * loop_ns / elapsed))
        n *= 2


def measure(reps, loop_ns):
    namespace = make_namespace()
    rows, variants = [], []
    for group, _, pairs in GROUPS:
        for (stmt_a, state_a), (stmt_b, state_b) in pairs:
            row = {"group": group, "case": stmt_b, "n": 0,
                   "A": {"stmt": stmt_a, "state": state_a, "samples": []},
                   "B": {"stmt": stmt_b, "state": state_b, "samples": []}}
            rows.append(row)
            for key in "AB":
                variants.append((row, key, compile_loop(row[key]["stmt"], namespace)))
    # Toggling the install is slow (ms) and leaves the next call of each op slow too, so a
    # repetition changes state as rarely as it can: it runs every variant of one state, then of
    # the next (the order reverses each repetition), and each variant gets untimed warm-up calls.
    by_state = [[v for v in variants if v[0][v[1]]["state"] == state]
                for state in STATES]

    for row, key, loop in variants:
        if key == "A":  # A and B share N so that their loops do the same number of calls
            set_state(row["A"]["state"])
            loop(10)
            row["n"] = calibrate(loop, loop_ns)

    gc.disable()  # as timeit does: a collection landing in one loop would skew that sample
    try:
        shuffle = random.Random(0).shuffle
        for rep in range(reps):
            # A fresh random order every repetition, so no variant keeps a favoured slot or
            # neighbour, and drift over the run falls on all of them alike.
            for group in by_state if rep % 2 == 0 else by_state[::-1]:
                shuffle(group)
                for row, key, loop in group:
                    set_state(row[key]["state"])
                    loop(5)
                    row[key]["samples"].append(loop(row["n"]) / row["n"])
    finally:
        gc.enable()
        set_state(INSTALLED)
        torchdevice._C._report_clear()

    for row in rows:
        for key in "AB":
            samples = row[key].pop("samples")
            q1, median, q3 = statistics.quantiles(samples, n=4)
            row[key].update(median_ns=median, iqr_ns=q3 - q1)
        row["ratio"] = row["B"]["median_ns"] / row["A"]["median_ns"]
    return rows


def measure_import(runs):
    env = dict(os.environ)
    env.pop("TORCHDEVICE_DISABLE", None)  # the measured import should include installing
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(torchdevice.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    torch_ns, torchdevice_ns = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        torch_ns.append(int(out[0]))
        torchdevice_ns.append(int(out[1]))
    torch_ms = statistics.median(torch_ns) / 1e6
    both_ms = statistics.median(a + b for a, b in zip(torch_ns, torchdevice_ns)) / 1e6
    return {"runs": runs, "import_torch_ms": torch_ms, "import_torch_torchdevice_ms": both_ms,
            "ratio": both_ms / torch_ms,
            "import_torchdevice_alone_ms": statistics.median(torchdevice_ns) / 1e6}


def measure_example(runs):
    """Whole-run wall time of the README example through the launcher, in seconds."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.path.join(repo, "python"))
    env.pop("TORCHDEVICE_DISABLE", None)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "torchdevice", "run", "examples/train_cuda.py"],
                       cwd=repo, env=env, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return {"runs": runs, "median_s": statistics.median(seconds)}


def measure_allocator():
    """The C++ timing of the CPU counting allocator (bench/allocator.cpp), or None if not built."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Where scripts/common.sh builds for this torch (scripts/chroot.sh sets it per suite).
    build = os.environ.get("TORCHDEVICE_BUILD_DIR", os.path.join(repo, "build"))
    binary = os.path.join(build, "torchdevice_allocator_bench")
    if not os.path.exists(binary):
        return None
    out = subprocess.run([binary, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine():
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"torch": torch.__version__, "torchdevice": torchdevice.__version__,
            "python": platform.python_version(), "cpu": cpu_name(), "nproc": nproc,
            "torch_threads": torch.get_num_threads(), "target": str(TARGET),
            "fast_path": torchdevice._C.fast_path()}


def print_table(info, settings, rows, imports, example, allocator):
    width = max(len(row["case"]) for row in rows) + 2
    print(f"torchdevice {info['torchdevice']} overhead: torch {info['torch']}, {info['cpu']}, "
          f"nproc {info['nproc']}, target {info['target']}")
    print(f"per call: median of {settings['reps']} repetitions, each a timed loop of N calls "
          f"(~{settings['loop_us']} µs), all variants interleaved")
    print("unboxed fast path: " + ", ".join(info["fast_path"]) +
          "; every other redirected op takes the boxed fallback")
    header = f"{'case':<{width}}{'variant A µs':>14}{'variant B µs':>14}{'ratio B/A':>11}"
    for group, legend, _ in GROUPS:
        print(f"\n{group}\n  {legend}\n{header}")
        for row in (r for r in rows if r["group"] == group):
            print(f"{row['case']:<{width}}{row['A']['median_ns'] / 1e3:>14.3f}"
                  f"{row['B']['median_ns'] / 1e3:>14.3f}{row['ratio']:>11.2f}")
    print(f"\nImport, in a fresh interpreter (median of {imports['runs']} runs)\n"
          "  A: import torch, B: import torch, torchdevice\n"
          f"{'case':<{width}}{'variant A ms':>14}{'variant B ms':>14}{'ratio B/A':>11}")
    print(f"{'import':<{width}}{imports['import_torch_ms']:>14.1f}"
          f"{imports['import_torch_torchdevice_ms']:>14.1f}{imports['ratio']:>11.3f}")
    print(f"import torchdevice alone, after torch: {imports['import_torchdevice_alone_ms']:.1f} ms")
    print(f"\nexamples/train_cuda.py through `python -m torchdevice run`, whole run: "
          f"{example['median_s']:.2f} s (median of {example['runs']})")
    print("\nCPU counting allocator, timed in C++ (build/torchdevice_allocator_bench)\n"
          "  torch's CPU allocator; a wrapper that only forwards to it; torchdevice's counter")
    if allocator is None:
        print("  not built: `source scripts/common.sh && build` builds it")
        return
    print(f"{'case':<{width}}{'torch ns':>14}{'forwarding +ns':>16}{'counting +ns':>14}")
    for row in allocator:
        print(f"{row['case']:<{width}}{row['torch_ns']:>14.1f}"
              f"{row['forwarding_ns'] - row['torch_ns']:>+16.1f}"
              f"{row['counting_ns'] - row['torch_ns']:>+14.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (~15 s)")
    parser.add_argument("--json", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "results", "latest.json"))
    args = parser.parse_args()

    settings = ({"reps": 21, "loop_us": 400, "import_runs": 2, "example_runs": 1} if args.quick
                else {"reps": 201, "loop_us": 1000, "import_runs": 5, "example_runs": 3})
    rows = measure(settings["reps"], settings["loop_us"] * 1000)
    imports = measure_import(settings["import_runs"])
    example = measure_example(settings["example_runs"])
    allocator = measure_allocator()
    info = machine()
    print_table(info, settings, rows, imports, example, allocator)

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"machine": info, "settings": settings, "rows": rows, "import": imports,
                   "example": example, "allocator": allocator},
                  f, indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
