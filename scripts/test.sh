#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, then runs the C++ units (ctest)
# and the Python behaviour suite (pytest) against the torch that is installed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
# The report's headless-browser test needs chromium: installed on the host, whose lane runs it
# (the chroots' lanes skip it).
if [[ -z ${TORCHDEVICE_CHROOT:-} ]]; then ensure_deps chromium; else ensure_deps; fi
build
python=$(find_python)
"$python" -c "import torch; print('torchdevice tests on torch', torch.__version__)"
# TORCHDEVICE_CPP_UNITS=0: the Python suite only (CI's middle torch; the C++ units run on the
# oldest and the newest).
if [[ ${TORCHDEVICE_CPP_UNITS:-1} != 0 ]]; then
  ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
fi
cd "$repo_root"
PYTHONPATH="$repo_root/python${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pytest "$@"
