#!/usr/bin/env bash
# Run a command against a newer Debian torch, inside a Debian chroot.
#
# Usage: bash scripts/chroot.sh SUITE [COMMAND...]
#   SUITE    Debian suite: forky (torch 2.14) or trixie (torch 2.6).
#   COMMAND  argv run in /work/copy/torchdevice inside the chroot
#            (default: bash scripts/test.sh). For a shell string use
#            `bash -c '...'`.
#
# Needs root (debootstrap, mount, chroot). The chroot is cached at
# ${TORCHDEVICE_CHROOT_DIR:-/var/cache/torchdevice/chroots}/SUITE and built on
# first use (~2 GB, ~2 min). The repository is copied in fresh on every run, so
# host build outputs (made against the host's torch 1.13) never leak in.
# Runs for the same suite are serialised by a lock (they share the copy).
#
# TORCHDEVICE_CHROOT_BIND=1 (for developers who rerun often): the work tree
# itself is bound at /work/NAME instead of copied, builds go to build-SUITE/
# in it (kept between runs, so rebuilds are incremental), and several trees
# may use one chroot at once. The mounts it makes are left for the next run.
set -euo pipefail

die() { echo "chroot.sh: $*" >&2; exit 2; }
log() { echo "chroot.sh: $*" >&2; }

[[ $# -ge 1 ]] || die "usage: bash scripts/chroot.sh SUITE [COMMAND...]"
SUITE=$1; shift
# The suite name becomes a path component: keep it to a plain name.
[[ $SUITE =~ ^[a-z][a-z0-9-]*$ ]] || die "bad suite name: $SUITE"
[[ $# -gt 0 ]] || set -- bash scripts/test.sh
[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, mount, chroot)"

REPO=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
ROOT=${TORCHDEVICE_CHROOT_DIR:-/var/cache/torchdevice/chroots}
DIR=$ROOT/$SUITE
MIRROR=${TORCHDEVICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Debian 12's debootstrap has no script for forky; sid's works for every suite.
DEBOOTSTRAP_SCRIPT=/usr/share/debootstrap/scripts/sid
PACKAGES=python3-torch,python3-torchvision,libtorch-dev,pybind11-dev,libspdlog-dev,libgtest-dev,python3-pytest,cmake,g++,ninja-build,python3-scikit-build-core,python3-pip,python3-numpy,python3-venv,git
# The newest suite also carries the Hugging Face libraries users run through torchdevice
# (tests/python/test_third_party.py).
[[ $SUITE != forky ]] || PACKAGES+=,python3-transformers,python3-accelerate
# Written last in a successful build: a dir without it (or built with another
# package list) is an interrupted or stale build and is rebuilt.
MARKER=.torchdevice-chroot-ok
MARKER_TEXT="suite=$SUITE packages=$PACKAGES"

MOUNTED=()   # mount points to undo, in mount order
BUILD_TMP=   # temp build dir to remove if the build does not finish

# Unmount everything at or below $1 (deepest first): debootstrap or a killed
# run may leave mounts behind, and rm must never descend into a bound /dev.
umount_below() {
    local m
    findmnt -rn -o TARGET | awk -v p="$1" '$0 == p || index($0, p "/") == 1' |
        sort -r | while IFS= read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" || true
        done
}

# Remove a chroot tree safely: unmount first, never cross filesystems.
remove_tree() {
    umount_below "$1"
    rm -rf --one-file-system -- "$1"
}

# shellcheck disable=SC2317  # reached only through the EXIT trap
cleanup() {
    local rc=$? i
    set +e
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" ||
            log "warning: could not unmount ${MOUNTED[i]}"
    done
    if [[ -n $BUILD_TMP && -d $BUILD_TMP ]]; then
        log "removing unfinished build $BUILD_TMP"
        remove_tree "$BUILD_TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
# Turn signals into exits so the EXIT trap always unmounts.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -p "$ROOT"
# One run per suite at a time: runs share the chroot's mounts and repo copy.
exec 9>"$ROOT/.$SUITE.lock"
if ! flock -n 9; then
    log "waiting for another run on $SUITE to finish"
    flock 9
fi

build_chroot() {
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
    fi
    [[ -f $DEBOOTSTRAP_SCRIPT ]] || die "missing $DEBOOTSTRAP_SCRIPT"
    # Leftovers of builds killed before their trap could run.
    local old
    for old in "$ROOT/.$SUITE.build."*; do
        if [[ -d $old ]]; then remove_tree "$old"; fi
    done
    # Build beside the final dir (same filesystem) and rename at the end, so
    # an interrupted build is never mistaken for a usable chroot.
    BUILD_TMP=$(mktemp -d "$ROOT/.$SUITE.build.XXXXXX")
    chmod 755 "$BUILD_TMP"   # mktemp makes it 0700; it becomes the chroot's /
    log "building $SUITE chroot in $BUILD_TMP (takes a few minutes)"
    local start=$SECONDS
    # debootstrap stops with "Couldn't find these debs" if a package is absent
    # from the suite: that is reported, never silently dropped.
    debootstrap --variant=minbase --include="$PACKAGES" \
        "$SUITE" "$BUILD_TMP" "$MIRROR" "$DEBOOTSTRAP_SCRIPT" 9>&-
    # Drop the .deb cache (hundreds of MB) that debootstrap leaves.
    rm -f "$BUILD_TMP"/var/cache/apt/archives/*.deb
    echo "$MARKER_TEXT" >"$BUILD_TMP/$MARKER"
    if [[ -e $DIR ]]; then remove_tree "$DIR"; fi
    mv -T "$BUILD_TMP" "$DIR"
    BUILD_TMP=
    log "built $DIR in $((SECONDS - start)) s"
}

if [[ ! -f $DIR/$MARKER ]]; then
    build_chroot
elif [[ $(<"$DIR/$MARKER") != "$MARKER_TEXT" ]]; then
    log "package list changed since $DIR was built: rebuilding"
    build_chroot
fi

BIND=${TORCHDEVICE_CHROOT_BIND:-}

# Mount what torch and the tools need, and undo at exit only what this run
# mounted: a mount that is already there (a killed run's, or a bound run's)
# is reused and left as it was. Bound runs keep theirs, for each other.
mount_once() {   # mount_once TARGET MOUNT-ARGS...
    local target=$DIR$1; shift
    mkdir -p "$target"
    if ! mountpoint -q "$target"; then
        mount "$@" "$target"
        if [[ $BIND != 1 ]]; then MOUNTED+=("$target"); fi
    fi
}
mount_once /proc -t proc proc
mount_once /sys -t sysfs sysfs
mount_once /dev --bind /dev
mount_once /dev/pts --bind /dev/pts
# torch's multiprocessing shares tensors through /dev/shm (its own tmpfs).
if mountpoint -q /dev/shm; then mount_once /dev/shm --bind /dev/shm; fi

cp --remove-destination -L /etc/resolv.conf "$DIR/etc/resolv.conf"

BUILD_DIR=
if [[ $BIND == 1 ]]; then
    DEST=/work/$(basename "$REPO")
    mount_once "$DEST" --bind "$REPO"
    BUILD_DIR=$DEST/build-$SUITE
    exec 9>&-   # each tree has its own build dir: no need to serialise
else
    # Fresh copy of the repo's tracked + untracked-not-ignored files. Files
    # deleted from the work tree but still in the index are skipped. Apart
    # from /work/NAME, where a bound tree may stay mounted.
    DEST=/work/copy/torchdevice
    rm -rf --one-file-system -- "${DIR:?}$DEST"
    mkdir -p "$DIR$DEST"
    (
        cd "$REPO"
        git ls-files -z --cached --others --exclude-standard |
            while IFS= read -r -d '' f; do
                if [[ -e $f || -L $f ]]; then printf '%s\0' "$f"; fi
            done |
            tar --null -T - -c
    ) | tar -x --no-same-owner -C "$DIR$DEST"
fi

# Clean environment: nothing from the host (its PATH python, its torch) leaks
# in. The command is passed as argv, so no re-quoting is needed. The lock fd
# is closed for it, so a daemon it leaves behind cannot hold the lock.
set +e
chroot "$DIR" /usr/bin/env -i HOME=/root \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 CI="${CI:-}" TORCHDEVICE_CHROOT="$SUITE" \
    ${BUILD_DIR:+TORCHDEVICE_BUILD_DIR=$BUILD_DIR} \
    bash -c 'cd "$0" && exec "$@"' "$DEST" "$@" 9>&-
rc=$?
set -e
exit "$rc"
