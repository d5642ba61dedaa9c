#!/usr/bin/env bash
# The whole test suite, as root (the kernel tests make network namespaces and
# TUN devices):
#
#   1. cargo build --release && cargo test --release   unit, stack-to-stack,
#      kernel-namespace, FFI and LD_PRELOAD tests
#   2. make -C c_examples
#   3. scripts/install_test.sh      make install into temporary prefixes;
#      builds the C examples and C/C++ files with pkg-config (no namespace)
#   4. scripts/c_examples_test.sh   the C examples against kernel peers
#   5. pytest python/tests            the Python package (ctypes) against
#      kernel peers, in a namespace of its own
#
# Stops at the first part that fails; exit status 0 only if all pass.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RSTCP_ROOT"

need_root "$0" "$@"
ensure_packages "${TEST_PACKAGES[@]}"
find_cargo

banner() {
    echo
    echo "=== $* ==="
}

start=$(now)

# Programs the tests run answer rstcp-stat on a Unix socket each: keep those
# in a directory of this run's own, not in /run/rstcp.
RSTCP_STAT_DIR=$(mktemp -d /tmp/rstcp-test-stat.XXXXXX)
export RSTCP_STAT_DIR
remove_stat_dir() { rm -rf "$RSTCP_STAT_DIR"; }
on_exit remove_stat_dir

banner "cargo build --release && cargo test --release"
# The build makes librstcp_preload.so and rstcp-run, which the preload
# tests run programs under.
cargo build --release
cargo test --release --no-run
# Bounded, so that a hang fails the run instead of stalling it.
timeout 900 cargo test --release

banner "make -C c_examples"
# build.rs regenerates include/rstcp.h; the committed copy must match it.
if git -C "$RSTCP_ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    if ! git -C "$RSTCP_ROOT" diff --exit-code -- include/rstcp.h; then
        echo "include/rstcp.h differs from what build.rs generates: commit the new header" >&2
        exit 1
    fi
fi
make -C c_examples --no-print-directory

banner "scripts/install_test.sh"
bash scripts/install_test.sh

banner "scripts/c_examples_test.sh"
bash scripts/c_examples_test.sh

banner "pytest python/tests"
# A python3 that has pytest (Debian's python3-pytest; a pyenv python3 first
# on PATH may lack it).
py=
for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import pytest' 2>/dev/null; then
        py=$cand
        break
    fi
done
if [ -z "$py" ]; then
    echo "pytest not found: install python3-pytest" >&2
    exit 1
fi
# No caches or bytecode written into the tree (the run is as root).
RSTCP_LIB="$RSTCP_ROOT/target/release/librstcp.so" PYTHONDONTWRITEBYTECODE=1 \
    timeout --kill-after=10 120 "$py" -m pytest -p no:cacheprovider -q python/tests

leftover=$(ip netns list | awk '{ print $1 }' | grep '^rstcp' || true)
if [ -n "$leftover" ]; then
    echo "warning: network namespaces named rstcp* exist after the run: $leftover" >&2
fi
echo
echo "test.sh: all parts passed in $(elapsed "$start") s"
