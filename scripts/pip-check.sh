#!/usr/bin/env bash
# Builds and installs torchdevice with pip into a throwaway virtual environment that sees the
# system torch, then imports it from outside the source tree. Needs scikit-build-core (Debian 13+).
# --no-deps: torch and its dependencies come from the distribution, not from an index.
set -euo pipefail
source "$(dirname "$0")/common.sh"
python=$(find_python)
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --no-build-isolation --no-deps --no-index --quiet "$repo_root"
cd /
"$venv/bin/python" - <<'PY'
import torch, torchdevice
assert torchdevice.__file__.startswith(__import__("sys").prefix), torchdevice.__file__
x = torch.zeros(2, device="cuda")
assert x.device == torchdevice.target(), x.device
print("pip-check: installed torchdevice", torchdevice.__version__, "on torch", torch.__version__,
      "redirects", torchdevice.redirected(), "->", torchdevice.target())
PY
# The console script, and activation of a child from the installed package.
"$venv/bin/torchdevice" info
if "$venv/bin/torchdevice" run --bogus x 2>/dev/null; then exit 1; fi  # a usage error
echo 'import subprocess, sys; subprocess.run([sys.executable, "-c", "import torch; assert torch.cuda.is_available()"], check=True); print("pip-check: console script activates children")' > "$venv/prog.py"
"$venv/bin/torchdevice" run "$venv/prog.py"
