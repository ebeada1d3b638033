"""`pytest --torchdevice`: a project's CUDA-only tests, run through pytest in a subprocess with the
plugin loaded the way a checkout loads it (`-p torchdevice_pytest`), are collected and run, not
skipped; the marker and the fixture install per test; the summary lists the redirected sites."""

import os
import re
import subprocess
import sys
import textwrap

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = requires_cuda_redirect

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(torchdevice.__file__)))

# A project as people write it: a conftest that asks torch at import, skips on CPU-only machines.
CONFTEST = """\
import torch

HAS_CUDA = torch.cuda.is_available()
"""

CUDA_TESTS = """\
import pytest
import torch
from torch import nn

from conftest import HAS_CUDA

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@requires_cuda
def test_factory():
    x = torch.ones(3, device="cuda")
    assert x.sum().item() == 3


@requires_cuda
def test_model_trains():
    torch.manual_seed(0)
    model = nn.Linear(4, 1).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data, target = torch.randn(16, 4).cuda(), torch.randn(16, 1).to("cuda")
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(data), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.skipif(not HAS_CUDA, reason="conftest says no CUDA")
def test_conftest_saw_cuda():
    assert torch.cuda.device_count() >= 1
"""


def project(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    # The project's own config, so this repository's pytest settings do not apply.
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return tmp_path


def run_pytest(root, *args):
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    for name in ("TORCHDEVICE", "TORCHDEVICE_TARGET", "TORCHDEVICE_ACTIVATE", "TORCHDEVICE_REPORT",
                 "TORCHDEVICE_DISABLE", "TORCHDEVICE_LOG_LEVEL"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "torchdevice_pytest", "-p", "no:cacheprovider",
         "-rs", *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    return result, result.stdout + result.stderr


def outcome(output):
    """The counts of pytest's closing line: {'passed': 3, 'skipped': 1, ...}."""
    last = output.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", last)}


def test_cuda_only_tests_run_under_torchdevice_and_the_summary_lists_their_sites(tmp_path):
    root = project(tmp_path, {"conftest.py": CONFTEST, "test_cuda_project.py": CUDA_TESTS})
    # The bare option comes before the path: the path must stay a path, not become the target.
    result, output = run_pytest(root, "--torchdevice", "test_cuda_project.py")
    assert result.returncode == 0, output
    assert outcome(output) == {"passed": 3}, output
    header = rf"^torchdevice: cuda.* -> {re.escape(str(torchdevice.target()))}$"
    assert re.search(header, output, re.M), output
    summary = output.split("torchdevice: redirected call sites")[1]
    factory_line = CUDA_TESTS.splitlines().index('    x = torch.ones(3, device="cuda")') + 1
    assert re.search(r"^test_cuda_project\.py: \d+ sites, \d+ calls$", summary, re.M), summary
    assert re.search(rf"^\s+{factory_line}\s+test_factory\s+\S+\s+cuda(:0)? -> ", summary, re.M), \
        summary


def test_without_the_option_the_same_tests_skip_and_nothing_is_imported(tmp_path):
    probe = """\
    import sys

    def test_plugin_alone_imports_nothing():
        assert "torchdevice" not in sys.modules and "torch" not in sys.modules
    """
    root = project(tmp_path, {"test_probe.py": probe})
    result, output = run_pytest(root)
    assert result.returncode == 0, output
    assert outcome(output) == {"passed": 1}, output
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_cuda_project.py").write_text(CUDA_TESTS)
    result, output = run_pytest(root, "test_cuda_project.py")
    assert outcome(output) == {"skipped": 3}, output
    assert "redirected call sites" not in output


def test_a_chosen_target_and_the_per_test_marker_and_fixture(tmp_path):
    tests = """\
    import pytest
    import torch


    def test_before():
        assert not torch.cuda.is_available()


    @pytest.mark.torchdevice("cpu")
    def test_marked():
        assert torch.cuda.is_available()
        assert torch.zeros(2, device="cuda").device == torch.device("cpu")


    def test_fixture(torchdevice):
        assert torch.zeros(2, device="cuda").device == torchdevice


    def test_after():
        assert not torch.cuda.is_available()
    """
    root = project(tmp_path, {"test_per_test.py": tests})
    result, output = run_pytest(root)
    assert result.returncode == 0, output
    assert outcome(output) == {"passed": 4}, output
    assert "redirected call sites" in output
    # --torchdevice=TARGET: the session's target, named in the header.
    root = project(tmp_path, {"conftest.py": CONFTEST, "test_cuda_project.py": CUDA_TESTS})
    result, output = run_pytest(root, "--torchdevice=cpu", "test_cuda_project.py")
    assert outcome(output) == {"passed": 3}, output
    assert re.search(r"^torchdevice: cuda.* -> cpu$", output, re.M), output
