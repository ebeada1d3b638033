#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, and trains the CUDA-written
# example on this machine through torchdevice, without editing it.
set -euo pipefail
source "$(dirname "$0")/common.sh"
ensure_deps
build
python=$(find_python)
cd "$repo_root"
TORCHDEVICE_LOG_LEVEL=${TORCHDEVICE_LOG_LEVEL:-info} PYTHONPATH="$repo_root/python" \
  "$python" -m torchdevice run examples/train_cuda.py "$@"
