#!/usr/bin/env bash
# Runs a command with the stand-in accelerator (tests/standin, torch's PrivateUse1 backend named
# 'standin') active in every Python process it starts.
#
# Usage, where torch >= 2.6 is installed (a chroot):
#   bash scripts/chroot.sh forky bash scripts/standin.sh bash scripts/test.sh
#   TORCHDEVICE_STANDIN=mps bash scripts/standin.sh COMMAND...   (MPS-like; default: 1, plain)
#
# Builds the stand-in into a virtual environment that sees the system's torch
# ($build_dir/standin/venv, incremental), puts that environment's python first on PATH and in
# $PYTHON (scripts/common.sh picks it), and sets TORCHDEVICE_STANDIN: torch's backend autoload
# then loads the stand-in at every `import torch` (subprocesses, DataLoader workers, launchers).
set -euo pipefail
source "$(dirname "$0")/common.sh"

[[ $# -gt 0 ]] || { echo "usage: bash scripts/standin.sh COMMAND..." >&2; exit 2; }
python=$(find_python) || { echo "standin.sh: no Python with torch found" >&2; exit 1; }
version=$("$python" -c 'import torch; print(torch.__version__)')
if ! "$python" -c 'import sys, torch
major, minor = (int(part) for part in torch.__version__.split(".")[:2])
sys.exit((major, minor) < (2, 6))'; then
  echo "standin.sh: torch $version cannot host the stand-in backend (needs >= 2.6); skipped"
  exit 0
fi

standin_dir=$build_dir/standin
venv=$standin_dir/venv
if [[ ! -x $venv/bin/python ]]; then
  "$python" -m venv --system-site-packages --without-pip "$venv"
fi
start=$SECONDS
# The system's pip, scikit-build-core and torch, seen through --system-site-packages.
"$venv/bin/python" -m pip install -q --no-build-isolation --no-deps --no-index \
  --config-settings=build-dir="$standin_dir/build" "$repo_root/tests/standin"
echo "standin.sh: stand-in built for torch $version in $((SECONDS - start)) s"

export PYTHON=$venv/bin/python
export PATH=$venv/bin:$PATH
export TORCHDEVICE_STANDIN=${TORCHDEVICE_STANDIN:-1}
exec "$@"
