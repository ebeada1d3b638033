# Shared by the scripts: find the interpreter that has torch, install what is missing, build.
# Sourced, not run.

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# One tree can be built against several torches (the host's, a chroot's): each in its own folder.
build_dir=${TORCHDEVICE_BUILD_DIR:-$repo_root/build}

# Debian's torch belongs to /usr/bin/python3; the python3 first on PATH may be another one.
find_python() {
  local candidate
  for candidate in "${PYTHON:-}" /usr/bin/python3 python3; do
    if [ -n "$candidate" ] && "$candidate" -c "import torch" >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Installs the distribution packages torchdevice builds and tests with, if any is missing.
ensure_deps() {  # ensure_deps [EXTRA_PACKAGE...]
  # torchvision only for the model zoo's vision models (tests/python/zoo.py).
  local packages="python3-torch python3-torchvision libtorch-dev pybind11-dev libspdlog-dev
                  libgtest-dev python3-pytest python3-numpy cmake ninja-build g++ $*"
  local missing=""
  local package
  for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      missing="$missing $package"
  done
  if [ -n "$missing" ]; then
    echo "torchdevice: installing distribution packages:$missing"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
  fi
}

# Configures and builds into $build_dir, the extension landing in python/torchdevice.
build() {
  local python
  python=$(find_python) || { echo "no Python with torch found" >&2; return 1; }
  cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPython3_EXECUTABLE="$python" -DTORCHDEVICE_BUILD_TESTS="${TORCHDEVICE_CPP_UNITS:-1}" \
    >/dev/null
  cmake --build "$build_dir"
}

# Builds a test device package (tests/standin, tests/mps_emulated: torch >= 2.6) into a virtual
# environment that sees the system's torch ($build_dir/NAME/venv, incremental), then puts that
# environment's python first on PATH and in $PYTHON. Returns 3 (and says so) where the installed
# torch cannot host it. (Called in an || list, so set -e does not reach inside: each step returns.)
activate_test_device() {  # activate_test_device NAME PACKAGE_DIR
  local name=$1 package=$2 python version venv start
  python=$(find_python) || { echo "$name: no Python with torch found" >&2; return 1; }
  version=$("$python" -c 'import torch; print(torch.__version__)')
  if ! "$python" -c 'import sys, torch
major, minor = (int(part) for part in torch.__version__.split(".")[:2])
sys.exit((major, minor) < (2, 6))'; then
    echo "$name: torch $version cannot host it (needs >= 2.6); skipped"
    return 3
  fi
  venv=$build_dir/$name/venv
  if [[ ! -x $venv/bin/python ]]; then
    "$python" -m venv --system-site-packages --without-pip "$venv" || return 1
  fi
  start=$SECONDS
  # The system's pip, scikit-build-core and torch, seen through --system-site-packages.
  "$venv/bin/python" -m pip install -q --no-build-isolation --no-deps --no-index \
    --config-settings=build-dir="$build_dir/$name/build" "$package" || return 1
  echo "$name: built for torch $version in $((SECONDS - start)) s"
  export PYTHON=$venv/bin/python
  export PATH=$venv/bin:$PATH
}
