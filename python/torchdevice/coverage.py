"""What torchdevice covers, inventoried from the running torch.

``python -m torchdevice coverage`` prints the summary; ``--write docs/coverage.md`` rewrites that
file's section for the running torch version (other versions' sections are kept: generate each
under its own torch). The inventory is never a hand list: it is every public name of
``torch.cuda`` and every ATen schema with a ``Device`` argument in the JIT/dispatcher registry,
each op called with sample arguments on the CPU and then with ``device='cuda:0'``.
"""

import argparse
import re
import sys
import types

import torch

import torchdevice

# Notes for the torch.cuda names torchdevice answers itself; any other torchdevice object is
# "redirected": answered by the target's own equivalent.
EMULATED = {
    "is_available": "True: CUDA requests run on the target",
    "device_count": "1: every CUDA index is the one target",
    "current_device": "0: every CUDA index is the one target",
    "is_initialized": "True once installed",
    "set_device": "accepts any index >= 0; all are the target",
    "device": "context manager; checks its argument, every index is the target",
    "device_of": "-1: no tensor is on a CUDA device while installed",
    "get_device_capability": "(0, 0): the target has no CUDA compute capability",
    "get_arch_list": "[]: no CUDA architecture reaches the target",
    "get_gencode_flags": "'': no CUDA architecture reaches the target",
    "Stream": "one ordered queue on the target; wait/record are already satisfied",
    "StreamContext": "sets the current stream per thread",
    "stream": "sets the current stream per thread",
    "current_stream": "per thread, default stream 0",
    "default_stream": "stream 0",
    "set_stream": "sets the current stream per thread",
    "Event": "timed on the target when all earlier work has finished",
}
NO_OP = {
    "init": "lazy initialisation has nothing to do",
    "empty_cache": "the CPU allocator caches nothing; torch.mps.empty_cache on MPS",
    "set_sync_debug_mode": "kept for get_sync_debug_mode; the target has no CUDA syncs to flag",
    "get_sync_debug_mode": "the mode last set",
    "nvtx": "range_push/range_pop/range_start/range_end/mark (and range) are no-ops",
}
ERROR = {
    "utilization": "raises: torchdevice has no measure of the target's busy time",
}
REDIRECTED_NOTES = {
    "mem_get_info": "the host's available and total memory (CPU target)",
    "memory_allocated": "counted by torchdevice's allocator in front of the CPU allocator",
    "set_per_process_memory_fraction": "enforced: allocations above it raise out of memory",
    "is_bf16_supported": "asked of the target by computing in bfloat16",
    "get_device_properties": "every attribute torch's own has: the host's name, memory, cores, "
                             "caches, clock (CPU target)",
    "memory_snapshot": "torchdevice's allocation records (CPU target)",
}
# torch's own functions that work on the target through torchdevice's replacements.
THROUGH_REPLACEMENTS = {
    "CUDAGraph": "torch's own class, every hook included; its base records the ops a capture runs "
                 "and replay() runs them again on the captured tensors",
    "graph_pool_handle": "torch's own; a pool id: pools only hint at sharing, each graph keeps "
                         "its own tensors",
    "is_current_stream_capturing": "torch's own; True while a graph capture runs on this thread",
    "make_graphed_callables": "torch's own, capturing into CUDAGraph's recording",
}

STATUSES = ["redirected", "emulated", "no-op", "error", "torch's own", "not API"]


def _is_torchdevice(value):
    module = getattr(value, "__module__", None) or type(value).__module__
    return module.startswith("torchdevice")


def classify_cuda_name(name, value):
    """(status, note) for one public torch.cuda name, as it is installed now."""
    unsupported = torchdevice._C._cuda.Unsupported
    if isinstance(value, unsupported):
        return "error", "torch's own code; a failure raises an error naming the call and target"
    if name in THROUGH_REPLACEMENTS and isinstance(value, (types.FunctionType, type)):
        return "redirected", THROUGH_REPLACEMENTS[name]
    if name in ERROR and _is_torchdevice(value):
        return "error", ERROR[name]
    if isinstance(value, types.ModuleType):
        if name in NO_OP and _is_torchdevice(getattr(value, "range_push", None)):
            return "no-op", NO_OP[name]
        return "torch's own", "submodule; its names re-exported here are classified one by one"
    if _is_torchdevice(value):
        if name in EMULATED:
            return "emulated", EMULATED[name]
        if name in NO_OP:
            return "no-op", NO_OP[name]
        return "redirected", REDIRECTED_NOTES.get(name, "answered by the target")
    if isinstance(value, type):
        if name.endswith("Tensor") and getattr(value, "__module__", "") == "torch.cuda":
            return "redirected", "legacy constructor builds on the target"
        if name.endswith("Storage"):
            return "torch's own", "storage class; constructs on the target via the dispatcher"
        if issubclass(value, BaseException):
            return "torch's own", "exception type"
        return "torch's own", "class, unchanged"
    if name == "default_generators" and value and all(
            getattr(g, "device", None) == torchdevice.target() for g in value):
        return "redirected", "(the target's default generator,), the one manual_seed seeds"
    module = getattr(value, "__module__", None) or ""
    if not module.startswith("torch"):
        return "not API", f"an import torch.cuda makes ({module or type(value).__name__})"
    return "torch's own", "unchanged"


def cuda_names():
    return [
        (name, *classify_cuda_name(name, getattr(torch.cuda, name)))
        for name in sorted(dir(torch.cuda))
        if not name.startswith("_")
    ]


# ---- ATen schemas with a Device argument ---------------------------------------------------


def _is_device(type_name):
    return "Device" in type_name


def device_schemas():
    """Every aten:: schema with a Device argument, deduplicated, sorted."""
    seen = {}
    for schema in torch._C._jit_get_all_schemas():
        if schema.name.startswith("aten::") and any(
            _is_device(str(a.type)) for a in schema.arguments
        ):
            seen.setdefault(str(schema), schema)
    return [seen[key] for key in sorted(seen)]


class _NoSample(Exception):
    pass


def _sample(arg):
    t = str(arg.type).replace("SymInt", "int")
    name = arg.name
    if t.startswith("Optional["):
        return None
    if t == "Tensor":
        return torch.ones(2, 3)
    if t == "List[Tensor]":
        return [torch.ones(2, 3)]
    if t == "List[int]":
        return [2, 3]
    if t == "int":
        special = {"dtype": torch.float32, "layout": torch.strided,
                   "memory_format": torch.contiguous_format, "low": 0, "high": 5}
        return special.get(name, 2)
    if t == "float":
        return 1.0
    if t == "number":
        return 1
    if t == "complex":
        return 1 + 0j
    if t == "bool":
        return False
    raise _NoSample(f"no sample value for argument '{name}' of type {t}")


def _arguments(schema, device):
    args, kwargs = [], {}
    for arg in schema.arguments:
        if _is_device(str(arg.type)):
            value = device
        elif arg.has_default_value():
            if arg.kwarg_only:
                continue
            value = arg.default_value
        else:
            value = _sample(arg)
        if arg.kwarg_only:
            kwargs[arg.name] = value
        else:
            args.append(value)
    return args, kwargs


def _overload(schema):
    packet = getattr(torch.ops.aten, schema.name[len("aten::"):])
    return getattr(packet, schema.overload_name or "default")


def _tensors(result):
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, (list, tuple)):
        return [t for item in result for t in _tensors(item)]
    return []


def _reason(error):
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = re.sub(r"0x[0-9a-fA-F]+", "0x…", text)
    text = text.replace("|", "/")
    if len(text) > 110:
        text = text[:107] + "..."
    return f"{type(error).__name__}: {text}"


def run_op(schema, device):
    """Calls the op with sample arguments on `device`; returns its result's tensors."""
    args, kwargs = _arguments(schema, device)
    return _tensors(_overload(schema)(*args, **kwargs))


def probe_op(schema):
    """(status, detail): whether the op runs with sample arguments on the CPU and, if it does,
    where its result lands when asked for CUDA."""
    try:
        cpu = run_op(schema, "cpu")
    except _NoSample as error:
        return "not run", str(error)
    except Exception as error:  # the reason is the report
        return "not run", "fails on the CPU too: " + _reason(error)
    if not cpu:
        return "no tensor result", "runs; returns no tensor"
    try:
        cuda = run_op(schema, "cuda:0")
    except Exception as error:
        return "fails", _reason(error)
    devices = sorted({str(t.device) for t in cuda})
    target = str(torchdevice.target())
    if devices == [target]:
        return "lands on target", target
    return "not redirected", "landed on " + ", ".join(devices)


def device_ops():
    return [(str(schema), *probe_op(schema)) for schema in device_schemas()]


# ---- the report ----------------------------------------------------------------------------

OP_STATUSES = ["lands on target", "no tensor result", "not run", "fails", "not redirected"]


def section(names=None, ops=None):
    """The markdown section for the running torch."""
    names = cuda_names() if names is None else names
    ops = device_ops() if ops is None else ops
    lines = [f"## torch {torch.__version__}", ""]
    lines.append(
        f"Target: `{torchdevice.target()}`. {len(names)} public `torch.cuda` names; "
        f"{len(ops)} ATen schemas with a `Device` argument."
    )
    lines += ["", "| torch.cuda names | count |", "|---|---|"]
    for status in STATUSES:
        lines.append(f"| {status} | {sum(1 for n in names if n[1] == status)} |")
    lines += ["", "| ATen ops with a Device argument | count |", "|---|---|"]
    for status in OP_STATUSES:
        lines.append(f"| {status} | {sum(1 for o in ops if o[1] == status)} |")
    lines += ["", "### torch.cuda", "", "| name | status | note |", "|---|---|---|"]
    lines += [f"| `{n}` | {s} | {note} |" for n, s, note in names]
    lines += ["", "### ATen schemas with a Device argument", "",
              "| schema | status | detail |", "|---|---|---|"]
    lines += [f"| `{schema.replace('|', '/')}` | {s} | {d} |" for schema, s, d in ops]
    missing = torchdevice._C.missing_ops()
    lines += ["", "### CUDA-only ops that raise torchdevice's error on the target", "",
              f"{len(missing)} ops. Each exists only for CUDA and nothing on the target can run it: "
              "no kernel on the target's key, no composite kernel, no backend fallback; queries "
              "that return a `bool` (`cudnn_is_acceptable`, `_use_cudnn_*`) are never among them. "
              "The error names the op, the target and the portable equivalent.", "",
              "| op | why it is CUDA's alone |", "|---|---|"]
    lines += [f"| `{name}` | {why} |" for name, why in missing]
    return "\n".join(lines) + "\n"


HEADER = """# torchdevice coverage

Generated from the live torch by `python -m torchdevice coverage --write docs/coverage.md`, run
under each torch version on a machine without CUDA (CUDA redirected to the CPU); a test fails when
the section for the running torch is stale. Statuses:

- torch.cuda: **redirected** (answered by the target's own equivalent), **emulated** (truthfully,
  for a target that is one device with one ordered queue), **no-op** (documented), **error** (a
  clear error naming the call and the target; torch's own code still runs first and its result is
  kept where it works without CUDA), **torch's own** (unchanged and working: classes, exception
  types, storages, submodules), **not API** (imports such as `typing` names).
- ATen ops: each is called with sample arguments on the CPU, then with `device='cuda:0'`.
  **lands on target**: every result tensor is on the target. **not run**: no sample argument
  exists for a required parameter, or the op fails on the CPU too (the reason is shown).
  **no tensor result**: runs, returns no tensor. **fails** / **not redirected**: a defect.
"""

_BEGIN = "<!-- torch {} begin -->"
_END = "<!-- torch {} end -->"


def _sections(text):
    """{version: block} of an existing coverage.md."""
    found = {}
    for match in re.finditer(r"<!-- torch (\S+) begin -->\n(.*?)<!-- torch \1 end -->", text, re.S):
        found[match.group(1)] = match.group(2)
    return found


def _version_key(version):
    return [int(p) if p.isdigit() else p for p in re.split(r"[.+a-z]+", version) if p]


def render(existing_text, new_section):
    sections = _sections(existing_text)
    sections[torch.__version__] = new_section
    parts = [HEADER]
    for version in sorted(sections, key=_version_key):
        parts.append(f"{_BEGIN.format(version)}\n{sections[version]}{_END.format(version)}\n")
    return "\n".join(parts)


def stale(path):
    """None if `path` holds an up-to-date section for the running torch, else why not."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return f"{path} does not exist"
    current = _sections(text).get(torch.__version__)
    if current is None:
        return f"{path} has no section for torch {torch.__version__}"
    if current != section():
        return f"{path}'s section for torch {torch.__version__} is stale"
    return None


def summary(names, ops):
    lines = [f"torchdevice coverage on torch {torch.__version__} (target {torchdevice.target()})"]
    lines.append(f"  torch.cuda public names: {len(names)}")
    for status in STATUSES:
        lines.append(f"    {status:16} {sum(1 for n in names if n[1] == status)}")
    lines.append(f"  ATen schemas with a Device argument: {len(ops)}")
    for status in OP_STATUSES:
        lines.append(f"    {status:16} {sum(1 for o in ops if o[1] == status)}")
    lines.append(f"  CUDA-only ops raising torchdevice's error: {len(torchdevice._C.missing_ops())}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="torchdevice coverage", description=__doc__)
    parser.add_argument("--write", metavar="PATH", help="rewrite this torch's section of PATH")
    parser.add_argument("--check", metavar="PATH", help="exit 1 if PATH is stale for this torch")
    options = parser.parse_args(argv)
    if options.check:
        problem = stale(options.check)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    names, ops = cuda_names(), device_ops()
    print(summary(names, ops))
    if options.write:
        try:
            with open(options.write) as f:
                existing = f.read()
        except FileNotFoundError:
            existing = ""
        with open(options.write, "w") as f:
            f.write(render(existing, section(names, ops)))
        print(f"wrote {options.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
