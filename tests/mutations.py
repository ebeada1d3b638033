#!/usr/bin/env python3
"""Proof by mutation: each deliberate breakage of torchdevice below must turn a test red.

    python3 tests/mutations.py [--here] [NAME...]   (on demand, not in CI; root for the chroot lanes)

Works on a throwaway copy of HEAD (a git worktree), or with --here on this clean checkout and its
build folders (incremental, much faster; every file is put back). For each lane it
first runs the mutations' tests unmutated (they must pass: a red baseline proves nothing), then
applies each mutation alone (an exact text replacement, which must be found), rebuilds, reruns
the same tests, and prints a table: the mutation, its lane, and the first test that failed, or
SURVIVED. Lanes: the host's torch (the CPU target), and forky's torch 2.14 in its chroot with the
stand-in (PrivateUse1) or the emulated MPS as the target (scripts/chroot.sh, *.sh activators).
"""

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Mutation:
    name: str
    lane: str  # host | standin | mps
    file: str
    before: str
    after: str
    tests: list
    equivalent: str = ""  # why surviving is right: the breakage changes nothing observable


MUTATIONS = [
    Mutation("GradScaler's found_inf left on the host", "standin", "src/python/amp.cpp",
             "at::zeros({}, scale.options().dtype(at::kFloat))",
             "at::zeros({}, at::TensorOptions().dtype(at::kFloat))",
             ["tests/python/test_amp.py"],
             equivalent="torch's GradScaler hands found_inf to _MultiDeviceReplicator, which copies "
             "it to each gradient's device: a host found_inf computes the same"),
    Mutation("GradScaler's overflow check that never reports", "host", "src/amp.cpp",
             "    found_inf.fill_(1.0);", "", ["tests/python/test_amp.py"]),
    Mutation("'cuda:5' refused (not redirected)", "host", "src/dispatch.cpp",
             "    if (redirect.redirects(value.toDevice().type())) {",
             "    if (redirect.redirects(value.toDevice().type()) && value.toDevice().index() < 5) {",
             ["tests/python/test_dispatch.py", "tests/python/test_fuzz.py"]),
    Mutation("a collective's result not copied back", "standin", "src/staged_backend.cpp",
             "  device.copy_(host);", "  (void)host;",
             ["tests/python/test_distributed.py"]),
    Mutation("an event that does not wait", "standin", "src/python/streams.cpp",
             "void synchronize() const { event_->synchronize(); }", "void synchronize() const {}",
             ["tests/python/test_streams.py"]),
    Mutation("a float64 request not narrowed", "mps", "src/dispatch.cpp",
             "    return substitute;\n", "    return asked;\n",
             ["tests/python/test_float64.py"]),
    Mutation("a graph replay that skips an op", "host", "src/graph_capture.cpp",
             "    if (!entry.replay) {\n      continue;\n    }\n    torch::jit::Stack stack",
             "    if (!entry.replay || &entry == &records_.back()) {\n      continue;\n    }\n"
             "    torch::jit::Stack stack",
             ["tests/python/test_graphs.py"]),
    Mutation("a report that drops a site (sites of one function merged)", "host",
             "src/report.cpp",
             "  Key key{site.file, site.line, site.function, what, requested, target.str(), narrowed};",
             "  Key key{site.file, 0, site.function, what, requested, target.str(), narrowed};",
             ["tests/python/test_report.py"]),
    Mutation("a retarget that leaves the old target's hook", "standin", "src/state.cpp",
             "          register_missing_ops(redirect);\n          register_staged_ops",
             "          register_staged_ops",
             ["tests/python/test_install.py", "tests/python/test_missing_ops.py"]),
    Mutation("a mixed-device op accepted by a strict device (not in torchdevice: the stand-in's "
             "own check, which the other lanes lean on)", "standin",
             "tests/standin/csrc/kernels.cpp", "  check_one_device(op, *stack, first);\n", "",
             ["tests/python/test_standin_backend.py"]),
]

PYTEST = "-m pytest -x -q -p no:cacheprovider"


def lane_command(lane, tests):
    tests = " ".join(tests)
    if lane == "host":
        return ["bash", "-c", "source scripts/common.sh && build >/dev/null && "
                f"PYTHONPATH=python \"$(find_python)\" {PYTEST} {tests}"]
    activator = {"standin": "scripts/standin.sh", "mps": "scripts/mps-emulated.sh"}[lane]
    inner = (f"source scripts/common.sh && build >/dev/null && bash {activator} bash -c "
             f"'PYTHONPATH=python $PYTHON {PYTEST} {tests}'")
    return ["env", "TORCHDEVICE_CHROOT_BIND=1", "bash", "scripts/chroot.sh", "forky",
            "bash", "-c", inner]


def run(work, lane, tests):
    """(passed, first failure or the tail of the output)."""
    result = subprocess.run(lane_command(lane, tests), cwd=work, capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return result.returncode == 0, (failed[0] if failed else "\n".join(lines[-5:]))


def main():
    args = sys.argv[1:]
    here = "--here" in args
    names = [a for a in args if a != "--here"]
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    if here:
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, check=True).stdout
        if dirty:
            sys.exit(f"--here needs a checkout without changes to tracked files:\n{dirty}")
        work = REPO
    else:
        work = Path(tempfile.mkdtemp()) / "torchdevice"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(work),
                        "HEAD"], check=True)
    rows = []
    try:
        for lane in dict.fromkeys(m.lane for m in chosen):
            mine = [m for m in chosen if m.lane == lane]
            tests = sorted({t for m in mine for t in m.tests})
            passed, detail = run(work, lane, tests)
            print(f"baseline {lane}: {'passed' if passed else 'FAILED'}", flush=True)
            if not passed:
                sys.exit(f"the unmutated {lane} lane fails, nothing to prove:\n{detail}")
            for m in mine:
                path = work / m.file
                text = path.read_text()
                if text.count(m.before) != 1:
                    sys.exit(f"{m.name}: its text is not found once in {m.file}")
                path.write_text(text.replace(m.before, m.after))
                try:
                    passed, detail = run(work, lane, m.tests)
                finally:
                    path.write_text(text)
                survived = f"survived (equivalent: {m.equivalent})" if m.equivalent else "SURVIVED"
                rows.append((m.name, lane, survived if passed else detail))
                print(f"{m.name} [{lane}]: {rows[-1][2]}", flush=True)
    finally:
        if not here:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(work)])
    print("\n| mutation | lane | first failing test |\n|---|---|---|")
    for name, lane, detail in rows:
        print(f"| {name} | {lane} | {detail} |")
    sys.exit(any(detail == "SURVIVED" for _, _, detail in rows))


if __name__ == "__main__":
    main()
