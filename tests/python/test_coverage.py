"""The coverage inventory: every Device-taking ATen op and every public torch.cuda name."""

import os
import re
import subprocess
import sys

import pytest
import torch

import torchdevice
from torchdevice import coverage
from conftest import REPO, requires_cuda_redirect

pytestmark = [requires_cuda_redirect,
              pytest.mark.filterwarnings("ignore:Sparse .* tensor support is in beta"),
              pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")]

SCHEMAS = coverage.device_schemas()

# Ops that run on the CPU but not when asked for CUDA: known defects of the redirect, reported.
# test_known_defects_still_fail keeps this list honest: a fixed op must be removed from it.
KNOWN_DEFECTS = {
    "aten::_sparse_bsc_tensor_unsafe": "sparse compressed layouts build a SparseCsrCUDA tensor "
    "inside a composite op, before any dispatcher hook",
    "aten::_sparse_bsr_tensor_unsafe": "same as _sparse_bsc_tensor_unsafe",
    "aten::_sparse_csc_tensor_unsafe": "same as _sparse_bsc_tensor_unsafe",
    "aten::_sparse_csr_tensor_unsafe": "same as _sparse_bsc_tensor_unsafe",
    "aten::to.prim_Device": "the JIT's prim to() initialises CUDA itself",
}
# torch >= 2's public sparse compressed constructors run with the sample arguments and fail the
# same way; on 1.13 they do not run at all ("not run").
KNOWN_DEFECTS.update({
    f"aten::sparse_{layout}_tensor.{indices}_value_size": "same as _sparse_bsc_tensor_unsafe"
    for layout, indices in [("bsc", "ccol_row"), ("bsr", "crow_col"), ("csc", "ccol_row"),
                            ("csr", "crow_col")]
})


def _key(schema):
    return schema.name + ("." + schema.overload_name if schema.overload_name else "")


def _cpu_result(schema):
    try:
        return coverage.run_op(schema, "cpu")
    except Exception:  # does not run with sample arguments: listed in docs/coverage.md
        return None


def _schemas():
    for schema in SCHEMAS:
        known = KNOWN_DEFECTS.get(_key(schema))
        marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
        yield pytest.param(schema, marks=marks, id=str(schema))


@pytest.mark.parametrize("schema", list(_schemas()))
def test_device_op_lands_on_target(schema, target):
    if _cpu_result(schema) is None:
        status, reason = coverage.probe_op(schema)
        assert status == "not run"
        pytest.skip(f"cannot run with sample arguments: {reason}")
    if not _cpu_result(schema):
        pytest.skip("returns no tensor")
    try:
        coverage.run_op(schema, str(target))
    except RuntimeError as error:
        # The target itself lacks the kernel (the stand-in has no sparse ones): the redirected
        # request reaches it and gets torch's own error, naming the target's backend.
        with pytest.raises(type(error)) as raised:
            coverage.run_op(schema, "cuda:0")
        assert str(raised.value).splitlines()[0] == str(error).splitlines()[0]
        return
    results = coverage.run_op(schema, "cuda:0")
    assert results and all(t.device == target for t in results)


SPARSE_ARGUMENTS = {  # indices, values and size each public sparse constructor takes
    "coo": lambda: (torch.tensor([[0, 1], [1, 0]]), torch.tensor([1.0, 2.0]), (2, 2)),
    **{layout: lambda: (torch.tensor([0, 1, 2]), torch.tensor([1, 0]),
                        torch.tensor([1.0, 2.0]), (2, 2)) for layout in ("csr", "csc")},
    **{layout: lambda: (torch.tensor([0, 1, 2]), torch.tensor([1, 0]),
                        torch.tensor([1.0, 2.0]).view(2, 1, 1), (2, 2)) for layout in ("bsr", "bsc")},
}


@pytest.mark.parametrize("layout", sorted(SPARSE_ARGUMENTS))
def test_public_sparse_constructors_land_on_the_target(layout, target):
    """The sample arguments above cannot build these on every torch (1.13): real ones can."""
    make = getattr(torch, f"sparse_{layout}_tensor")
    want = make(*SPARSE_ARGUMENTS[layout]())
    try:
        on_target = make(*SPARSE_ARGUMENTS[layout](), device=target)
    except RuntimeError as error:  # the target itself has no sparse kernels (the stand-in)
        with pytest.raises(type(error)) as raised:
            make(*SPARSE_ARGUMENTS[layout](), device="cuda")
        assert str(raised.value).splitlines()[0] == str(error).splitlines()[0]
        return
    got = make(*SPARSE_ARGUMENTS[layout](), device="cuda")
    assert got.device == on_target.device == target
    assert got.layout == on_target.layout == want.layout
    try:
        expected = [part.cpu() for part in sparse_parts(on_target)]
    except RuntimeError:  # the target cannot read its own compressed tensors (the stand-in)
        return
    for got_part, expected_part in zip(sparse_parts(got), expected):
        assert torch.equal(got_part.cpu(), expected_part)


def sparse_parts(tensor):
    """Indices and values, read without sparse kernels (the stand-in has none)."""
    if tensor.layout == torch.sparse_coo:
        return tensor._indices(), tensor._values()
    if tensor.layout in (torch.sparse_csr, torch.sparse_bsr):
        return tensor.crow_indices(), tensor.col_indices(), tensor.values()
    return tensor.ccol_indices(), tensor.row_indices(), tensor.values()


def test_known_defects_still_fail():
    names = {_key(s): s for s in SCHEMAS}
    for key in KNOWN_DEFECTS:
        if key in names:
            assert coverage.probe_op(names[key])[0] in ("fails", "not run"), key


def test_inventory_is_the_live_torch():
    names = {n for n, _, _ in coverage.cuda_names()}
    assert names == {n for n in dir(torch.cuda) if not n.startswith("_")}
    ops = {str(s) for s in SCHEMAS}
    assert any(o.startswith("aten::zeros(") for o in ops)
    assert all("Device" in o for o in ops)


def test_every_cuda_name_is_classified():
    for name, status, note in coverage.cuda_names():
        assert status in coverage.STATUSES and note, name
    statuses = dict((n, s) for n, s, _ in coverage.cuda_names())
    assert statuses["memory_allocated"] == "redirected"
    assert statuses["Stream"] == "emulated"
    assert statuses["nvtx"] == "no-op"
    assert statuses["FloatTensor"] == "redirected"
    assert statuses["can_device_access_peer"] == "error"


def test_unclassified_functions_raise_a_clear_error(target):
    with pytest.raises(RuntimeError, match=r"torch.cuda.can_device_access_peer\(\) is not "
                       rf"supported on the {target} target") as info:
        torch.cuda.can_device_access_peer(0, 0)
    assert info.value.__cause__ is not None  # torch's own error, chained
    # Where torch's own code works without CUDA, its answer is kept.
    assert isinstance(torch.cuda.list_gpu_processes(), str)


def test_nvtx_is_a_documented_no_op():
    with torch.cuda.nvtx.range("outer"):
        assert torch.cuda.nvtx.range_push("inner") == 1
        assert torch.cuda.nvtx.range_pop() == 1
    assert torch.cuda.nvtx.range_pop() == -1
    torch.cuda.nvtx.mark("here")
    torch.cuda.nvtx.range_end(torch.cuda.nvtx.range_start("r"))
    assert torch.cuda.is_current_stream_capturing() is False
    torch.cuda.set_sync_debug_mode("warn")
    assert torch.cuda.get_sync_debug_mode() == 1
    torch.cuda.set_sync_debug_mode(0)


@pytest.mark.skipif(str(torchdevice.target()) != "cpu", reason="docs/coverage.md is made on CPU")
def test_docs_coverage_is_current():
    problem = coverage.stale(os.path.join(REPO, "docs", "coverage.md"))
    assert problem is None, problem + ": run `python -m torchdevice coverage --write docs/coverage.md`"


def documented_op_statuses():
    """{schema: status} of docs/coverage.md's section for the running torch (made on the CPU)."""
    with open(os.path.join(REPO, "docs", "coverage.md")) as f:
        block = coverage._sections(f.read()).get(torch.__version__)
    if block is None:
        pytest.skip(f"docs/coverage.md has no section for torch {torch.__version__}")
    ops = block.split("### ATen schemas with a Device argument", 1)[1].split("\n### ", 1)[0]
    return dict(re.findall(r"^\| `(.+)` \| ([a-z ]+) \|", ops, re.M))


@pytest.mark.skipif(str(torchdevice.target()) == "cpu",
                    reason="on the CPU target test_docs_coverage_is_current compares it whole")
def test_docs_coverage_holds_on_this_target(target):
    """What docs/coverage.md says of each op, found on the CPU target, holds on this one: an op
    it lists as landing on the target lands here too, unless this target itself lacks the kernel
    (the stand-in has no sparse ones), which the same call made for the target shows."""
    documented = documented_op_statuses()
    assert len(documented) == len(SCHEMAS)
    for schema in SCHEMAS:
        expected = documented[str(schema).replace("|", "/")]
        status, detail = coverage.probe_op(schema)
        if status == "not run" and detail.startswith("fails on the CPU too"):
            continue  # its sample call fails where an accelerator is loaded (_pin_memory)
        if expected == "lands on target" and status == "fails":
            with pytest.raises(Exception) as own:
                coverage.run_op(schema, str(target))
            assert coverage._reason(own.value) == detail, schema
            continue
        if expected == "lands on target":
            assert detail == str(target), schema
        assert status == expected, f"{schema}: {detail}"


def test_command_prints_the_summary(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "python"))
    out = tmp_path / "coverage.md"
    result = subprocess.run(
        [sys.executable, "-m", "torchdevice", "coverage", "--write", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"torchdevice coverage on torch {torch.__version__}" in result.stdout
    assert f"ATen schemas with a Device argument: {len(SCHEMAS)}" in result.stdout
    text = out.read_text()
    assert f"<!-- torch {torch.__version__} begin -->" in text
    check = subprocess.run(
        [sys.executable, "-m", "torchdevice", "coverage", "--check", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert check.returncode == 0, check.stderr
