#!/usr/bin/env bash
# The benchmark: rstcp beside the Linux kernel on the same kind of path, in
# one run, with a table, bench/results.json and the chart bench/chart.png.
#
#   bash bench/run.sh            5 runs, 3 s per figure, 100,000 idle connections
#   bash bench/run.sh --quick    3 runs, 1 s per figure, 10,000 idle connections
#                                (also --runs N, --secs S, --idle N,
#                                --no-ceiling, --no-smoltcp, --only G,G...)
#
# As root, or it runs itself again with sudo. It installs ethtool (for the
# "offloads off" column) and python3-matplotlib (for the chart) from Debian's
# packages when they are missing, and goes on without them if it cannot.
# SKIP_BUILD=1 skips the build.
#
# Network safety: everything runs inside namespaces rstcp-bench-<pid>-*
# that the benchmark makes and deletes, also on Ctrl-C; on exit this script
# also deletes any such namespace whose process is gone.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

need_root "$0" "$@"
ensure_packages iproute2 procps || exit 1
ensure_packages ethtool || echo "note: no ethtool: the \"kernel, offloads off\" column is left out"
ensure_packages python3-matplotlib || echo "note: no matplotlib: no chart"

# Namespaces of benchmark processes that are gone (killed, or this one).
sweep_bench_namespaces() {
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E '^rstcp-bench-[0-9]+-[a-z]$' || true); do
        pid=${ns#rstcp-bench-}
        pid=${pid%-*}
        if ! kill -0 "$pid" 2>/dev/null; then
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}
on_exit sweep_bench_namespaces
sweep_bench_namespaces

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    find_cargo
    echo "Building: cargo build --release -p rstcp-bench"
    (cd "$RSTCP_ROOT" && as_builder cargo build --release -p rstcp-bench)
fi
BIN=${CARGO_TARGET_DIR:-$RSTCP_ROOT/target}/release/rstcp-bench
OUT=$RSTCP_ROOT/bench

"$BIN" --json "$OUT/results.json" "$@"

# Debian's python3 has Debian's matplotlib; a python3 earlier on PATH may not.
PY=
for py in python3 /usr/bin/python3; do
    if "$py" -c 'import matplotlib' 2>/dev/null; then
        PY=$py
        break
    fi
done
if [ -n "$PY" ]; then
    "$PY" "$OUT/chart.py" "$OUT/results.json" "$OUT/chart.png" && echo "wrote $OUT/chart.png"
else
    echo "chart skipped: python3 has no matplotlib (Debian package python3-matplotlib)"
fi
