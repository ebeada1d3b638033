"""`torchdevice report FILE... [--html PAGE]`: the report of a real `torchdevice run --report`,
printed grouped by file with counts, and as one self-contained HTML page with each source line."""

import html.parser
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import torchdevice
from conftest import requires_cuda_redirect

pytestmark = requires_cuda_redirect

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(torchdevice.__file__)))

HELPER = """\
import torch


def make(n):
    made = []
    for _ in range(n):
        made.append(torch.zeros(2, device="cuda") if n < 5 else None)  # n < 5 & <more>
    return made
"""
PROGRAM = """\
import torch
import helper

helper.make(3)
model = torch.nn.Linear(2, 2).cuda()
"""


def torchdevice_cli(args, cwd):
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT)
    for name in ("TORCHDEVICE_ACTIVATE", "TORCHDEVICE_REPORT", "TORCHDEVICE_REPORT_PID",
                 "TORCHDEVICE_LOG_LEVEL", "TORCHDEVICE_TARGET", "TORCHDEVICE_DISABLE"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "torchdevice", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A report written by a real run: sites in two files."""
    root = tmp_path_factory.mktemp("program")
    (root / "helper.py").write_text(HELPER)
    (root / "train.py").write_text(PROGRAM)
    result = torchdevice_cli(["run", "--report", "out.json", "train.py"], root)
    assert result.returncode == 0, result.stderr
    return root, json.loads((root / "out.json").read_text())


def line_of(text, fragment):
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_sites_are_printed_grouped_by_file_with_counts(written):
    root, report = written
    result = torchdevice_cli(["report", "out.json"], root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"1 process: out.json (pid {report['pid']})")
    assert f"target {torchdevice.target()}" in lines[0]
    total = sum(site["count"] for site in report["sites"])
    assert lines[1] == f"{len(report['sites'])} call sites, {total} redirected calls"
    helper = lines.index("helper.py: 1 site, 3 calls")
    assert re.fullmatch(rf"\s+{line_of(HELPER, 'torch.zeros')}\s+make\s+aten::\S+\s+cuda -> "
                        rf"{re.escape(str(torchdevice.target()))}\s+x3", lines[helper + 1])
    train = [line for line in lines if line.startswith("train.py: ")]
    assert len(train) == 1
    assert any(re.match(rf"\s+{line_of(PROGRAM, '.cuda()')}\s+<module>\s", line) for line in lines)


def test_several_processes_files_add_up(written, tmp_path):
    root, report = written
    other = dict(report, pid=report["pid"] + 1, rank=1)
    (tmp_path / "out.rank1.json").write_text(json.dumps(other))
    result = torchdevice_cli(["report", str(root / "out.json"), str(tmp_path / "out.rank1.json")],
                             root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 processes: ")
    assert "helper.py: 1 site, 6 calls" in result.stdout.splitlines()


class Page(html.parser.HTMLParser):
    """Every tag and attribute, and the text of each table row's cells."""

    def __init__(self):
        super().__init__()
        self.tags, self.rows, self.cell = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_html_page_is_self_contained_and_shows_each_source_line(written):
    root, report = written
    result = torchdevice_cli(["report", "out.json", "--html", "report.html"], root)
    assert result.returncode == 0, result.stderr
    text = (root / "report.html").read_text()
    page = Page()
    page.feed(text)
    page.close()
    tags = {tag for tag, _ in page.tags}
    assert {"html", "head", "style", "body", "table"} <= tags
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base"}
    assert not re.search(r"(https?:)?//|url\(|@import", text), "fetches something"
    assert all(not name.startswith("on") for _, attrs in page.tags for name in attrs)
    rows = [row for row in page.rows if row]
    assert len(rows) == len(report["sites"])
    by_line = {(row[0], row[2]): row for row in rows}
    helper_line = line_of(HELPER, "torch.zeros")
    row = by_line[(str(helper_line), "make")]
    assert row[1] == HELPER.splitlines()[helper_line - 1].strip()  # escaped, read back intact
    assert row[4:] == ["cuda", str(torchdevice.target()), "", "3"]  # "": not narrowed
    program_row = by_line[(str(line_of(PROGRAM, ".cuda()")), "<module>")]
    assert program_row[1] == "model = torch.nn.Linear(2, 2).cuda()"


def test_unreadable_input_is_a_usage_error(tmp_path):
    (tmp_path / "not-a-report.json").write_text('{"pid": 1}')
    result = torchdevice_cli(["report", "missing.json"], tmp_path)
    assert result.returncode == 2 and "cannot read report 'missing.json'" in result.stderr
    result = torchdevice_cli(["report", "not-a-report.json"], tmp_path)
    assert result.returncode == 2 and "is not a torchdevice report" in result.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian: apt install chromium)")
def test_html_page_loads_in_a_headless_browser_with_the_network_cut(written, tmp_path):
    root, report = written
    result = torchdevice_cli(["report", "out.json", "--html", "report.html"], root)
    assert result.returncode == 0, result.stderr
    # Every host name unresolvable: a page that needed the network would show less.
    browser = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--dump-dom", (root / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert browser.returncode == 0, browser.stderr
    page = Page()
    page.feed(browser.stdout)
    rows = [row for row in page.rows if row]
    assert len(rows) == len(report["sites"]), browser.stdout
    helper_line = line_of(HELPER, "torch.zeros")
    assert [str(helper_line), HELPER.splitlines()[helper_line - 1].strip(), "make"] in [
        row[:3] for row in rows]
