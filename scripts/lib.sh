# Shared by demo.sh and c_examples_test.sh: network namespaces that clean up
# after themselves, TUN devices inside them, background processes with time
# limits, and bounded waits. Source it; it sets no shell options itself.
#
# Network safety (see DESIGN.md): everything here happens inside namespaces
# this script creates. Nothing is addressed, routed or started in the root
# namespace, and every namespace is deleted on exit, also on failure or
# Ctrl-C.

RSTCP_ROOT=${RSTCP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
RSTCP_BIN=${RSTCP_BIN:-$RSTCP_ROOT/c_examples/build}
RSTCP_PEERS=$RSTCP_ROOT/scripts/peers

_LIB_NAMESPACES=()
_LIB_PIDS=()
_LIB_EXIT_HOOKS=()

# need_root SCRIPT [ARGS...]: network namespaces and TUN devices need root.
# Not root: runs SCRIPT again under sudo if there is sudo, else says to run
# it as root.
need_root() {
    if [ "$(id -u)" = 0 ]; then
        if [ ! -c /dev/net/tun ]; then
            echo "$(basename "$0"): /dev/net/tun is missing: load the tun module (modprobe tun), or in a container give it the device (--device /dev/net/tun)" >&2
            exit 1
        fi
        return 0
    fi
    if command -v sudo >/dev/null 2>&1; then
        echo "$(basename "$0"): needs root (network namespaces and TUN devices): running it again with sudo" >&2
        exec sudo --preserve-env=SKIP_BUILD,RSTCP_LOG bash "$@"
    fi
    echo "$(basename "$0"): needs root (network namespaces and TUN devices), and there is no sudo: run it as root" >&2
    exit 1
}

# What the demo needs: ip, a C compiler for the examples, python3 for the
# kernel-side peers, curl for the shim's step, ping to see the stack answer.
DEMO_PACKAGES=(iproute2 iputils-ping python3 gcc libc6-dev make curl coreutils procps)
# What the whole test suite needs besides: g++ and pkg-config (the install
# test), nftables (loss in kernel tests), netcat, iperf3 (programs the shim
# runs), tcpdump and tshark (captures read back), pytest (the Python
# package's tests).
TEST_PACKAGES=("${DEMO_PACKAGES[@]}" g++ pkg-config nftables netcat-openbsd iperf3 tcpdump tshark python3-pytest)

# ensure_packages PKG...: installs the Debian packages that are missing
# (apt-get, as root); elsewhere, names them and fails.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "missing packages: ${missing[*]} (install them with your package manager)" >&2
        return 1
    fi
    echo "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# Runs on EXIT: stops our background processes, then deletes our namespaces.
_lib_cleanup() {
    local rc=$?
    set +e
    local pid ns hook
    for hook in "${_LIB_EXIT_HOOKS[@]}"; do
        "$hook" "$rc"
    done
    for pid in "${_LIB_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for ns in "${_LIB_NAMESPACES[@]}"; do
        # Anything still running inside our own namespace was started by us.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -TERM "$pid" 2>/dev/null
        done
    done
    for pid in "${_LIB_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    for ns in "${_LIB_NAMESPACES[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null
        done
        ip netns del "$ns" 2>/dev/null
        if ns_exists "$ns"; then
            echo "warning: could not delete network namespace $ns" >&2
        fi
    done
    return "$rc"
}

_lib_traps_set=0
_lib_set_traps() {
    [ "$_lib_traps_set" = 1 ] && return
    trap _lib_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    _lib_traps_set=1
}

# on_exit FUNCTION: FUNCTION "$exit_code" runs at exit, before the cleanup.
on_exit() {
    _lib_set_traps
    _LIB_EXIT_HOOKS+=("$1")
}

ns_exists() {
    ip netns list 2>/dev/null | awk '{ print $1 }' | grep -qxF -- "$1"
}

# ns_create NAME: creates the namespace (deleted at exit), brings lo up.
ns_create() {
    local ns=$1
    _lib_set_traps
    if ns_exists "$ns"; then
        echo "network namespace $ns already exists" >&2
        return 1
    fi
    ip netns add "$ns"
    _LIB_NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up
}

# ns_delete NAME: deletes one of our namespaces now (after its processes).
ns_delete() {
    local ns=$1 pid
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        kill -TERM "$pid" 2>/dev/null
    done
    ip netns del "$ns" 2>/dev/null || true
}

# tun_create NS DEV KERNEL_CIDR: makes a persistent TUN device inside NS, gives
# the kernel side KERNEL_CIDR and brings it up, so that a kernel server can
# bind to its address before the rstcp process (which attaches to the
# existing device) starts.
tun_create() {
    local ns=$1 dev=$2 cidr=$3
    ip -n "$ns" tuntap add dev "$dev" mode tun
    ip -n "$ns" addr add "$cidr" dev "$dev"
    ip -n "$ns" link set "$dev" up
}

# in_ns NS SECONDS CMD...: runs CMD inside NS in the foreground, killed
# after SECONDS.
in_ns() {
    local ns=$1 secs=$2
    shift 2
    timeout --foreground --kill-after=5 "$secs" ip netns exec "$ns" "$@"
}

# bg_in_ns NS SECONDS LOG CMD...: starts CMD inside NS in the background with
# stdout and stderr to LOG, killed after SECONDS at the latest. Sets BG_PID.
bg_in_ns() {
    local ns=$1 secs=$2 log=$3
    shift 3
    timeout --kill-after=5 "$secs" ip netns exec "$ns" "$@" >"$log" 2>&1 &
    BG_PID=$!
    _LIB_PIDS+=("$BG_PID")
}

# wait_pid PID SECONDS: waits for a background process; returns its exit
# status, or 124 if it is still running after SECONDS (it is then killed).
wait_pid() {
    local pid=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            local rc=0
            wait "$pid" || rc=$?
            return "$rc"
        fi
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 124
}

# retry SECONDS CMD...: runs CMD every 0.2 s until it succeeds; fails after
# SECONDS.
retry() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 5; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# wait_log FILE PATTERN SECONDS: waits until FILE has a line matching PATTERN.
wait_log() {
    retry "$3" grep -qE -- "$2" "$1"
}

# wait_listen NS IP PORT SECONDS: waits until a kernel socket in NS listens on
# IP:PORT.
wait_listen() {
    local ns=$1 ip=$2 port=$3 secs=$4
    retry "$secs" _listening "$ns" "$ip" "$port"
}
_listening() {
    ip netns exec "$1" ss -Hltn "src $2:$3" | grep -q .
}

# wait_ping NS IP SECONDS: waits until IP answers ping from inside NS.
# Without ping, waits for a TCP answer (a refusal counts) instead.
wait_ping() {
    if ! command -v ping >/dev/null 2>&1; then
        retry "$3" ip netns exec "$1" python3 -c "
import socket, sys
s = socket.socket()
s.settimeout(1)
try:
    s.connect(('$2', 9))
except ConnectionRefusedError:
    pass
except OSError:
    sys.exit(1)"
        return
    fi
    local ns=$1 ip=$2 secs=$3
    retry "$secs" ip netns exec "$ns" ping -n -c1 -W1 "$ip"
}

# wait_dev NS DEV SECONDS: waits until the interface DEV exists in NS.
wait_dev() {
    retry "$3" ip -n "$1" link show dev "$2"
}

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

# now: seconds since the epoch with milliseconds, for durations.
now() {
    date +%s.%N | cut -c1-14
}

# elapsed START: seconds since START (from now), with two decimals.
elapsed() {
    awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }'
}

# mbits BYTES SECONDS: the rate in Mbit/s.
mbits() {
    awk -v b="$1" -v s="$2" 'BEGIN { if (s <= 0) s = 0.001; printf "%.0f Mbit/s", b * 8 / s / 1e6 }'
}

# show_log TITLE FILE: prints the last lines of FILE, indented.
show_log() {
    local title=$1 file=$2
    [ -s "$file" ] || return 0
    echo "      --- $title (last 15 lines of $file) ---"
    tail -n 15 "$file" | sed 's/^/      | /'
}

# find_cargo: makes sure cargo is on PATH. Under sudo, root's PATH usually
# lacks the calling user's ~/.cargo/bin; that toolchain is used then.
find_cargo() {
    if command -v cargo >/dev/null 2>&1; then
        return 0
    fi
    local home=${HOME:-/root}
    if [ -n "${SUDO_USER:-}" ]; then
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    fi
    if [ -x "$home/.cargo/bin/cargo" ]; then
        export PATH="$home/.cargo/bin:$PATH"
        export RUSTUP_HOME=${RUSTUP_HOME:-$home/.rustup}
        export CARGO_HOME=${CARGO_HOME:-$home/.cargo}
        return 0
    fi
    echo "cargo not found: install Rust with rustup (or put cargo on root's PATH)" >&2
    exit 1
}

# as_builder CMD...: runs CMD as the user who called sudo when that user has
# cargo (so target/ keeps its owner and that user's rustup toolchain is
# used), else as the current user.
as_builder() {
    if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && [ "$(id -u)" = 0 ]; then
        local home path
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        path="$home/.cargo/bin:$PATH"
        if sudo -u "$SUDO_USER" env "PATH=$path" sh -c 'command -v cargo' >/dev/null 2>&1; then
            sudo -u "$SUDO_USER" env "PATH=$path" "$@"
            return
        fi
    fi
    "$@"
}

# build: cargo build --release and the C examples, unless SKIP_BUILD=1.
build() {
    if [ "${SKIP_BUILD:-0}" = 1 ]; then
        return 0
    fi
    echo "Building: cargo build --release && make -C c_examples (a first build takes a few minutes)"
    if ! as_builder sh -c 'command -v cargo' >/dev/null 2>&1; then
        echo "cargo not found: install Rust with rustup (https://rustup.rs: curl --proto '=https' -sSf https://sh.rustup.rs | sh), or build first and run with SKIP_BUILD=1" >&2
        return 1
    fi
    # cargo shows its progress (crates compiled) while it builds.
    (cd "$RSTCP_ROOT" && as_builder cargo build --release)
    as_builder make -C "$RSTCP_ROOT/c_examples" --no-print-directory >/dev/null
}
