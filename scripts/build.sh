#!/usr/bin/env bash
# Installs what is missing and builds the extension and the C++ tests.
set -euo pipefail
source "$(dirname "$0")/common.sh"
ensure_deps
build
