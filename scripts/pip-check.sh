#!/usr/bin/env bash
# Builds torchdevice the ways users install it, from a fresh copy of the sources, and checks each
# install from outside the source tree:
#  1. `pip install --no-build-isolation .` into a throwaway venv;
#  2. `pip wheel`, then that wheel installed into a fresh venv, where it must: load torch's
#     libraries through its own RPATH, depend on no shared spdlog/fmt, change nothing by being
#     installed, land `TORCHDEVICE=1 python -c "import torch; torch.zeros(1, device='cuda')"` on
#     the target (torch >= 2.5), and run a CUDA-only test module under `pytest --torchdevice`
#     (tests run, not skipped).
# The venvs see the system torch; --no-deps --no-index: torch and its dependencies come from the
# distribution, not from an index. Needs scikit-build-core (Debian 13+).
set -euo pipefail
source "$(dirname "$0")/common.sh"
python=$(find_python)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { echo "pip-check: $*"; }

# Tracked and untracked-not-ignored files only: no in-tree build outputs (another torch's _C).
src=$work/src
mkdir "$src"
if git -C "$repo_root" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$repo_root" && git ls-files -z --cached --others --exclude-standard |
     while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done | tar --null -T - -c) |
    tar -x -C "$src"
else  # a copy without .git (scripts/chroot.sh's)
  tar -C "$repo_root" -c --exclude='./build' --exclude='./build-*' --exclude='*.so' \
    --exclude=__pycache__ --exclude=.pytest_cache . | tar -x -C "$src"
fi
# Both builds share one build folder, so the wheel costs no second compile.
pip_build=(--no-build-isolation --no-deps --no-index --quiet -C "build-dir=$work/skbuild")

say "1. pip install --no-build-isolation ."
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install "${pip_build[@]}" "$src"
cd /
"$work/venv/bin/python" - <<'PY'
import torch, torchdevice
assert torchdevice.__file__.startswith(__import__("sys").prefix), torchdevice.__file__
x = torch.zeros(2, device="cuda")
assert x.device == torchdevice.target(), x.device
print("pip-check: installed torchdevice", torchdevice.__version__, "on torch", torch.__version__,
      "redirects", torchdevice.redirected(), "->", torchdevice.target())
PY
# The console script, and activation of a child from the installed package.
"$work/venv/bin/torchdevice" info
if "$work/venv/bin/torchdevice" run --bogus x 2>/dev/null; then exit 1; fi  # a usage error
echo 'import subprocess, sys; subprocess.run([sys.executable, "-c", "import torch; assert torch.cuda.is_available()"], check=True); print("pip-check: console script activates children")' > "$work/prog.py"
"$work/venv/bin/torchdevice" run "$work/prog.py"

say "2. pip wheel, installed into a fresh venv"
"$work/venv/bin/python" -m pip wheel "${pip_build[@]}" -w "$work/wheels" "$src"
wheel=$(echo "$work"/wheels/torchdevice-*.whl)
say "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
"$python" -m venv --system-site-packages "$work/fresh"
fresh=$work/fresh/bin/python
"$fresh" -m pip install --no-deps --no-index --quiet "$wheel"
module=$("$fresh" -c "import importlib.util as u; print(u.find_spec('torchdevice._C').origin)")
case $module in "$work/fresh/"*) ;; *) echo "torchdevice._C not from the fresh venv: $module" >&2; exit 1 ;; esac
dynamic=$(readelf -d "$module")
grep -q 'R.*PATH.*\$ORIGIN/../torch/lib' <<<"$dynamic" || { echo "no RPATH to torch/lib: $dynamic" >&2; exit 1; }
if grep -E 'NEEDED.*lib(spdlog|fmt)\.' <<<"$dynamic"; then echo "depends on a shared spdlog/fmt" >&2; exit 1; fi
say "module has RPATH \$ORIGIN/../torch/lib and no shared spdlog/fmt"
# Installed, not asked for: nothing changes, not even an import of torchdevice.
"$fresh" - <<'PY'
import sys, torch
assert "torchdevice" not in sys.modules, "installing torchdevice activated it"
try:
    torch.zeros(1, device="cuda")
except (AssertionError, RuntimeError):
    print("pip-check: installed but not asked for: torch untouched")
else:
    assert torch.cuda.is_available(), "a CUDA request succeeded on a machine without CUDA"
PY
if "$fresh" -c 'import sys, torch; sys.exit(not hasattr(torch, "_import_device_backends"))'; then
  TORCHDEVICE=1 "$fresh" -c "
import sys, torch
x = torch.zeros(1, device='cuda')
import torchdevice
assert x.device == torchdevice.target(), x.device
print('pip-check: TORCHDEVICE=1, no import, no launcher: zeros(device=cuda) landed on', x.device)"
else
  say "torch $("$fresh" -c 'import torch; print(torch.__version__)') loads no torch.backends entry points: TORCHDEVICE=1 needs torchdevice run there (not checked)"
fi
# A project's CUDA-only tests under the installed pytest plugin (entry point, no -p).
mkdir "$work/project"
cat >"$work/project/test_cuda_only.py" <<'PY'
import pytest
import torch

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
def test_factory():
    assert torch.ones(3, device="cuda").sum().item() == 3


@cuda
def test_module():
    model = torch.nn.Linear(2, 1).cuda()
    assert model(torch.ones(4, 2, device="cuda")).shape == (4, 1)
PY
echo "[pytest]" >"$work/project/pytest.ini"
cd "$work/project"
out=$("$fresh" -m pytest -p no:cacheprovider --torchdevice test_cuda_only.py 2>&1) || { echo "$out" >&2; exit 1; }
grep -qE '^=+ 2 passed in ' <<<"$out" || { echo "$out" >&2; echo "expected 2 passed, none skipped" >&2; exit 1; }
grep -q 'torchdevice: redirected call sites' <<<"$out" || { echo "$out" >&2; exit 1; }
out=$("$fresh" -m pytest -p no:cacheprovider test_cuda_only.py 2>&1) || { echo "$out" >&2; exit 1; }
grep -qE '^=+ 2 skipped in ' <<<"$out" || { echo "$out" >&2; echo "without --torchdevice they must skip" >&2; exit 1; }
say "pytest --torchdevice: the CUDA-only tests ran (2 passed); without it they skip"
