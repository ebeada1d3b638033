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
ensure_deps() {
  # torchvision only for the model zoo's vision models (tests/python/zoo.py).
  local packages="python3-torch python3-torchvision libtorch-dev pybind11-dev libspdlog-dev
                  libgtest-dev python3-pytest python3-numpy cmake ninja-build g++"
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
    -DPython3_EXECUTABLE="$python" >/dev/null
  cmake --build "$build_dir"
}
