#!/usr/bin/env bash
# Runs a command with the stand-in accelerator (tests/standin, torch's PrivateUse1 backend named
# 'standin') active in every Python process it starts.
#
# Usage, where torch >= 2.6 is installed (a chroot):
#   bash scripts/chroot.sh forky bash scripts/standin.sh bash scripts/test.sh
#
# Builds the stand-in into a virtual environment that sees the system's torch
# ($build_dir/standin/venv, incremental), puts that environment's python first on PATH and in
# $PYTHON (scripts/common.sh picks it), and sets TORCHDEVICE_STANDIN: torch's backend autoload
# then loads the stand-in at every `import torch` (subprocesses, DataLoader workers, launchers).
set -euo pipefail
source "$(dirname "$0")/common.sh"

[[ $# -gt 0 ]] || { echo "usage: bash scripts/standin.sh COMMAND..." >&2; exit 2; }
activate_test_device standin "$repo_root/tests/standin" || { rc=$?; [[ $rc == 3 ]] && exit 0; exit $rc; }
export TORCHDEVICE_STANDIN=1
exec "$@"
