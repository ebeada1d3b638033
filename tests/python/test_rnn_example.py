"""examples/train_rnn_cuda.py, a character LSTM written for CUDA (cuDNN flags, .cuda(), CUDA
events and memory statistics), trains unmodified through the real launcher,
`python -m torchdevice run`, with its tensors on the target."""
import json
import os
import re
import subprocess
import sys

import torchdevice
from conftest import REPO, environment_without_torchdevice, requires_cuda_redirect

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(torchdevice.__file__)))
EXAMPLE = os.path.join("examples", "train_rnn_cuda.py")


@requires_cuda_redirect
def test_recurrent_cuda_example_trains_on_the_target(tmp_path):
    env = environment_without_torchdevice()
    env["PYTHONPATH"] = PACKAGE_ROOT
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "torchdevice", "run", "--report", str(report), EXAMPLE,
         "--steps", "60", "--max-loss-ratio", "0.8"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr

    target = str(torchdevice.target())
    assert f"data on {target}, model on {target}" in result.stdout, result.stdout
    first = float(re.search(r"first loss ([\d.]+)", result.stdout).group(1))
    final = float(re.search(r"final loss ([\d.]+)", result.stdout).group(1))
    assert final < 0.8 * first, result.stdout  # it learned (the script checks it too)

    # The redirect report: the example's own lines asked for cuda and got the target.
    sites = json.loads(report.read_text())["sites"]
    example_sites = [s for s in sites if s["file"].endswith(EXAMPLE)]
    assert {s["target"] for s in example_sites} == {target}
    assert {s["requested"].split(":")[0] for s in example_sites} == {"cuda"}
    asked = {s["function"] for s in example_sites}
    assert {"main", "sample"} <= asked, sites
