"""The redirect report: per call site of the program, what asked for which device, where it
went and how often; in the log, at exit, and as JSON per process."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = requires_cuda_redirect

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(torchdevice.__file__)))
SITE_KEYS = {"file", "line", "function", "what", "requested", "target", "count", "narrowed"}


@pytest.fixture
def reporting():
    torchdevice._C._report_clear()
    torchdevice.report(enable=True)
    yield
    torchdevice.report(enable=False)
    torchdevice._C._report_clear()


def allocate(n):
    for _ in range(n):
        torch.zeros(2, device="cuda:1")


def test_sites_name_the_callers_line_and_count_calls(reporting):
    allocate(7)
    line = allocate.__code__.co_firstlineno + 2
    torch.device("cuda")
    device_line = sys._getframe().f_lineno - 1
    sites = torchdevice.report()["sites"]
    assert all(set(site) == SITE_KEYS for site in sites)
    factory = [s for s in sites if s["line"] == line]
    assert len(factory) == 1
    assert factory[0] == {"file": __file__, "line": line, "function": "allocate",
                          "what": factory[0]["what"], "requested": "cuda:1",
                          "target": str(torchdevice.target()), "count": 7, "narrowed": ""}
    assert factory[0]["what"].startswith("aten::")
    assert {"file": __file__, "line": device_line, "function": "test_sites_name_the_callers_line_"
            "and_count_calls", "what": "torch.device", "requested": "cuda",
            "target": str(torchdevice.target()), "count": 1, "narrowed": ""} in sites


def test_every_redirected_call_is_a_site(reporting):
    """Each line below asks for CUDA in its own way: each is a site of the report."""
    first = sys._getframe().f_lineno + 1
    torch.zeros(2, device="cuda")
    torch.ones(2, device="cuda")
    torch.empty(2, device="cuda")
    torch.full((2,), 1.0, device="cuda")
    torch.randn(2, device="cuda")
    torch.arange(3, device="cuda")
    torch.tensor([1.0], device="cuda")
    torch.eye(2, device="cuda")
    torch.zeros(2).cuda()
    torch.zeros(2).to("cuda")
    torch.zeros_like(torch.zeros(2), device="cuda")
    last = sys._getframe().f_lineno - 1
    sites = [s for s in torchdevice.report()["sites"] if s["file"] == __file__]
    assert {s["line"] for s in sites} == set(range(first, last + 1))


def test_off_means_nothing_is_recorded():
    torchdevice._C._report_clear()
    assert not torchdevice._C._report_enabled()
    allocate(3)
    assert torchdevice.report()["sites"] == []


def test_work_that_is_not_redirected_is_not_reported(reporting):
    torch.zeros(2)
    torch.ones(2, device=torchdevice.target()) + 1
    assert torchdevice.report()["sites"] == []


def test_report_writes_json(reporting, tmp_path):
    allocate(2)
    written = tmp_path / "report.json"
    returned = torchdevice.report(str(written))
    assert json.loads(written.read_text()) == returned
    assert returned["pid"] == os.getpid() and returned["target"] == str(torchdevice.target())
    assert set(returned) == {"torchdevice", "torch", "pid", "rank", "argv", "target", "sites"}


def run(args, cwd, env=None):
    full = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    for name in ("TORCHDEVICE_ACTIVATE", "TORCHDEVICE_REPORT", "TORCHDEVICE_REPORT_PID",
                 "TORCHDEVICE_LOG_LEVEL", "TORCHDEVICE_TARGET", "TORCHDEVICE_DISABLE"):
        full.pop(name, None)
    full.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=300)


PROGRAM = """\
import multiprocessing as mp, sys
import torch

def child():
    torch.ones(1, device="cuda")

def build():
    return torch.nn.Linear(2, 2).cuda()

if __name__ == "__main__":
    for _ in range(3):
        build()
    process = mp.get_context("spawn").Process(target=child)
    process.start()
    process.join()
    sys.exit(process.exitcode)
"""


def test_launcher_report_logs_each_site_once_and_writes_one_file_per_process(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    launched = run(["-m", "torchdevice", "run", "--log-level=info", "--report", "out.json",
                    "prog.py"], tmp_path)
    assert launched.returncode == 0, launched.stderr
    program = str(tmp_path / "prog.py")
    main = json.loads((tmp_path / "out.json").read_text())
    assert main["argv"] == ["prog.py"]
    assert [(s["file"], s["line"], s["function"], s["count"]) for s in main["sites"]] == [
        (program, 8, "build", 6)]  # weight and bias, three times over: one site
    assert main["sites"][0]["what"].startswith("aten::")
    others = [name for name in os.listdir(tmp_path) if name.startswith("out.pid")]
    assert len(others) == 1
    child = json.loads((tmp_path / others[0]).read_text())
    assert others[0] == f"out.pid{child['pid']}.json" and child["pid"] != main["pid"]
    assert [(s["line"], s["function"], s["count"]) for s in child["sites"]] == [(5, "child", 1)]
    # Once per site while running, then each process's table at exit.
    logged = [line for line in launched.stderr.splitlines() if "asked for" in line]
    assert len(logged) == 2 and f"{program}:8 (build)" in logged[0]
    assert launched.stderr.count("redirect report, 1 call site:") == 2


def test_report_environment_variable_without_the_launcher(tmp_path):
    code = "import torch, torchdevice\nfor _ in range(4): torch.empty(1, device='cuda')\n"
    (tmp_path / "prog.py").write_text(code)
    result = run(["prog.py"], tmp_path, {"TORCHDEVICE_REPORT": str(tmp_path / "r.json")})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the report does not make the default log level talk
    sites = json.loads((tmp_path / "r.json").read_text())["sites"]
    assert [(s["line"], s["count"]) for s in sites] == [(2, 4)]
