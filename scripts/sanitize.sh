#!/usr/bin/env bash
# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer: builds the core, the
# extension and the gtest binary instrumented (build-asan/, the module kept apart from the regular
# one), runs ctest, then pytest with the sanitizer runtimes preloaded into the Python that has
# torch (torch and CPython are not instrumented; the runtimes must be loaded before them).
# Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/common.sh"
ensure_deps
python=$(find_python) || { echo "no Python with torch found" >&2; exit 1; }
build_dir="$repo_root/build-asan"

# -O0: the sanitizers find the same errors unoptimized, and optimizing instrumented code tripled
# the build (90 s for one file at -O2 -g, 26 s at -O0 -g1); our code is not where the time goes.
cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O0 -g1 -DNDEBUG" \
  -DPython3_EXECUTABLE="$python" -DTORCHDEVICE_SANITIZE=ON >/dev/null
cmake --build "$build_dir"

# The instrumented _C sits in build-asan/python/torchdevice; the package's Python files join it.
package="$build_dir/python/torchdevice"
for file in "$repo_root"/python/torchdevice/*; do
  case "$file" in *.so) continue ;; esac
  ln -sfn "$file" "$package/"
done

# The runtimes of the compiler that built the instrumented code, not whatever else is installed.
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
asan=$("$compiler" -print-file-name=libasan.so)
ubsan=$("$compiler" -print-file-name=libubsan.so)
[ -f "$asan" ] && [ -f "$ubsan" ] || { echo "sanitizer runtimes not found: $asan $ubsan" >&2; exit 1; }

# Leak detection is off: CPython and torch keep interned objects, kernels and registries alive
# until exit on purpose, so every run would "leak". bench/leaks.py measures real growth instead.
# allocator_may_return_null: the out-of-memory tests ask for petabytes and expect torch's error,
# not ASan's report that the request exceeds what it supports.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_init_order=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

"$python" -c "import torch; print('torchdevice sanitizer run on torch', torch.__version__)"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
cd "$repo_root"
LD_PRELOAD="$asan $ubsan${LD_PRELOAD:+ $LD_PRELOAD}" PYTHONPATH="$build_dir/python" \
  "$python" -m pytest -p no:cacheprovider "$@"
