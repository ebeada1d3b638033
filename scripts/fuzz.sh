#!/usr/bin/env bash
# Builds the libFuzzer target (tests/fuzz/fuzz_device.cpp) with clang into build-fuzz/ and runs it.
# libtorch is built with g++ and libstdc++; clang++ links against it with the same libstdc++.
#
# Usage: bash scripts/fuzz.sh [SECONDS (default 60)] [extra libFuzzer flags...]
# Findings land in build-fuzz/findings/; the corpus grows in build-fuzz/corpus/.
set -euo pipefail
source "$(dirname "$0")/common.sh"
seconds=${1:-60}
shift || true
python=$(find_python) || { echo "no Python with torch found" >&2; exit 1; }
build_dir="$repo_root/build-fuzz"
clang=$(command -v clang++ || command -v clang++-14) || { echo "clang++ is needed" >&2; exit 1; }

cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$clang" -DPython3_EXECUTABLE="$python" -DTORCHDEVICE_FUZZ=ON \
  -DTORCHDEVICE_BUILD_TESTS=OFF >/dev/null
cmake --build "$build_dir" --target torchdevice_fuzz

mkdir -p "$build_dir/corpus" "$build_dir/findings"
# Seeds: the spellings users write, so mutation starts from the grammar's interesting corners.
for spec in cuda cuda:0 cuda:3 cuda:127 cuda:128 cuda:300 mps mps:0 cpu cpu:0 xpu:1 meta "" ":" \
            "cuda:-1" "cuda:01" "CUDA"; do
  printf '%s' "$spec" >"$build_dir/corpus/seed-$(printf '%s' "$spec" | md5sum | cut -c1-8)"
done
# Leak detection stays on: libFuzzer reports memory an input allocates and never frees.
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
"$build_dir/torchdevice_fuzz" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$build_dir/findings/" "$@" "$build_dir/corpus"
