#!/usr/bin/env bash
# Runs a command with the emulated MPS (tests/mps_emulated: DeviceType::MPS on Linux) active in
# every Python process it starts.
#
# Usage, where torch >= 2.6 is installed (a chroot):
#   bash scripts/chroot.sh forky bash scripts/mps-emulated.sh bash scripts/test.sh
#   TORCHDEVICE_MPS_MACOS=13 bash scripts/mps-emulated.sh COMMAND...   (macOS 13's dtype rules)
#
# Builds the emulation into a virtual environment that sees the system's torch, puts that
# environment's python first on PATH and in $PYTHON (scripts/common.sh picks it), and sets
# TORCHDEVICE_MPS_EMULATED=1: torch's backend autoload then loads it at every `import torch`.
set -euo pipefail
source "$(dirname "$0")/common.sh"

[[ $# -gt 0 ]] || { echo "usage: bash scripts/mps-emulated.sh COMMAND..." >&2; exit 2; }
activate_test_device mps_emulated "$repo_root/tests/mps_emulated" || { rc=$?; [[ $rc == 3 ]] && exit 0; exit $rc; }
export TORCHDEVICE_MPS_EMULATED=1
exec "$@"
