#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, then runs the C++ units (ctest)
# and the Python behaviour suite (pytest) against the torch that is installed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
ensure_deps
build
python=$(find_python)
"$python" -c "import torch; print('torchdevice tests on torch', torch.__version__)"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
cd "$repo_root"
PYTHONPATH="$repo_root/python${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pytest "$@"
