#!/usr/bin/env bash
# Runs the C examples (c_examples/build/) against Linux kernel peers and
# checks what they do. Needs root, the built library and examples
# (cargo build --release && make -C c_examples), iproute2, iputils-ping,
# python3, and nftables for the loss case (skipped without nft).
#
#   bash scripts/c_examples_test.sh [CASE ...]     (as root; default: all cases)
#
# Every case runs in a fresh bash process with its own network namespace
# (rstcp-cex-<pid>), deleted when the case ends, passes or not. The last line
# is "N passed, N failed[, N skipped]"; the exit status is 0 only if none
# failed.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CASES=(
    readme_c_example
    echo_concurrent_and_sequential
    echo_custom_peer_address
    http_get_1mib
    http_get_404
    http_get_connection_refused
    upload_2mib
    upload_empty_and_reattach
    http_get_with_loss
)

# Seconds one case may take in all.
CASE_LIMIT=180

# --- helpers for the cases ---------------------------------------------------

die() {
    echo "ASSERTION FAILED: $*" >&2
    exit 1
}

expect_eq() { # WHAT EXPECTED ACTUAL
    [ "$2" = "$3" ] || die "$1: expected '$2', got '$3'"
    echo "ok: $1 = $3"
}

expect_grep() { # WHAT PATTERN FILE
    grep -qE -- "$2" "$3" || {
        echo "--- $3:" >&2
        tail -n 20 "$3" >&2
        die "$1: no line matching /$2/ in $3"
    }
    echo "ok: $1"
}

# run_rc VAR CMD...: runs CMD and stores its exit status in VAR (no errexit).
run_rc() {
    local __var=$1 __rc=0
    shift
    "$@" || __rc=$?
    printf -v "$__var" '%s' "$__rc"
}

dump_on_failure() {
    if [ "$1" != 0 ]; then
        local f
        for f in "$WORK"/*.log; do
            [ -e "$f" ] && show_log "$(basename "$f")" "$f" >&2
        done
    fi
    rm -rf "$WORK"
}

setup_case() {
    NS=rstcp-cex-${RSTCP_CEX_RUN:-0}-$$
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/rstcp-cex.XXXXXX")
    on_exit dump_on_failure
    ns_create "$NS"
}

# --- the cases ---------------------------------------------------------------

# echo_server with a TUN device the library creates itself: 4 clients at
# once (0 B, 1 B, 100 kB, 1 MB), then one more after they are done.
case_echo_concurrent_and_sequential() {
    setup_case
    bg_in_ns "$NS" 120 "$WORK/echo_server.log" env RSTCP_TUN=cex0 RSTCP_ADDR=10.77.0.2/24 \
        "$RSTCP_BIN/echo_server" 7777 5
    local server=$BG_PID
    wait_dev "$NS" cex0 10 || die "TUN cex0 not created by the library within 10 s"
    ip -n "$NS" -br addr show dev cex0 >"$WORK/addr.log"
    expect_grep "library gave the kernel side 10.77.0.1/24" ' 10\.77\.0\.1/24' "$WORK/addr.log"
    wait_ping "$NS" 10.77.0.2 10 || die "10.77.0.2 does not answer ping"
    echo "ok: 10.77.0.2 answers ping"
    in_ns "$NS" 90 python3 "$RSTCP_PEERS/echo_check.py" --io-timeout 60 10.77.0.2 7777 0 1 100000 1000000 \
        >"$WORK/clients1.log" 2>&1 || die "concurrent echoes: $(cat "$WORK/clients1.log")"
    cat "$WORK/clients1.log"
    in_ns "$NS" 30 python3 "$RSTCP_PEERS/echo_check.py" --io-timeout 20 10.77.0.2 7777 65536 \
        >"$WORK/clients2.log" 2>&1 || die "sequential echo: $(cat "$WORK/clients2.log")"
    cat "$WORK/clients2.log"
    local rc
    run_rc rc wait_pid "$server" 20
    expect_eq "echo_server exit status" 0 "$rc"
    expect_eq "connections reported" 5 "$(grep -c '^conn [0-9]* 10\.77\.0\.1:[0-9]*: echoed [0-9]* bytes$' "$WORK/echo_server.log")"
    expect_eq "total bytes echoed" 1165537 \
        "$(awk '/^conn .* echoed/ { s += $(NF-1) } END { print s }' "$WORK/echo_server.log")"
    expect_grep "closing line" '^served 5 connections, all clean$' "$WORK/echo_server.log"
}

# RSTCP_ADDR and RSTCP_PEER other than the defaults, on a device the library
# creates.
case_echo_custom_peer_address() {
    setup_case
    bg_in_ns "$NS" 60 "$WORK/echo_server.log" \
        env RSTCP_TUN=cex1 RSTCP_ADDR=10.80.0.5/24 RSTCP_PEER=10.80.0.9 \
        "$RSTCP_BIN/echo_server" 5555 1
    local server=$BG_PID
    wait_dev "$NS" cex1 10 || die "TUN cex1 not created within 10 s"
    ip -n "$NS" -br addr show dev cex1 >"$WORK/addr.log"
    expect_grep "kernel side is RSTCP_PEER 10.80.0.9/24" ' 10\.80\.0\.9/24' "$WORK/addr.log"
    wait_ping "$NS" 10.80.0.5 10 || die "10.80.0.5 does not answer ping"
    in_ns "$NS" 30 python3 "$RSTCP_PEERS/echo_check.py" --io-timeout 20 10.80.0.5 5555 3000 \
        >"$WORK/clients.log" 2>&1 || die "echo: $(cat "$WORK/clients.log")"
    cat "$WORK/clients.log"
    local rc
    run_rc rc wait_pid "$server" 20
    expect_eq "echo_server exit status" 0 "$rc"
    expect_grep "peer seen as 10.80.0.9" '^conn 1 10\.80\.0\.9:[0-9]+: echoed 3000 bytes$' "$WORK/echo_server.log"
}

# start_http NS DEV KERNEL_IP: a pre-made TUN device and a kernel http.server
# on KERNEL_IP:8080 serving $WORK/www.
start_http() {
    local dev=$1 ip=$2
    mkdir -p "$WORK/www"
    head -c 1048576 /dev/urandom >"$WORK/www/blob.bin"
    tun_create "$NS" "$dev" "$ip/24"
    bg_in_ns "$NS" 150 "$WORK/http_server.log" \
        python3 -m http.server --bind "$ip" --directory "$WORK/www" 8080
    wait_listen "$NS" "$ip" 8080 10 || die "http.server not listening on $ip:8080"
}

case_http_get_1mib() {
    setup_case
    start_http cex2 10.78.0.1
    local rc
    run_rc rc in_ns "$NS" 60 env RSTCP_TUN=cex2 RSTCP_ADDR=10.78.0.2/24 \
        "$RSTCP_BIN/http_get" 10.78.0.1 8080 /blob.bin >"$WORK/body.bin" 2>"$WORK/http_get.log"
    cat "$WORK/http_get.log"
    expect_eq "http_get exit status" 0 "$rc"
    expect_grep "status line on stderr" '^HTTP/1\.[01] 200 ' "$WORK/http_get.log"
    expect_eq "body size" 1048576 "$(stat -c %s "$WORK/body.bin")"
    expect_eq "body sha256" "$(sha256_of "$WORK/www/blob.bin")" "$(sha256_of "$WORK/body.bin")"
    expect_grep "server saw the rstcp address" '^10\.78\.0\.2 .*"GET /blob\.bin HTTP/1\.0" 200' "$WORK/http_server.log"
}

case_http_get_404() {
    setup_case
    start_http cex3 10.78.0.1
    local rc
    run_rc rc in_ns "$NS" 60 env RSTCP_TUN=cex3 RSTCP_ADDR=10.78.0.2/24 \
        "$RSTCP_BIN/http_get" 10.78.0.1 8080 /no-such-file >"$WORK/body.bin" 2>"$WORK/http_get.log"
    cat "$WORK/http_get.log"
    expect_eq "http_get exit status for 404" 3 "$rc"
    expect_grep "status line on stderr" '^HTTP/1\.[01] 404 ' "$WORK/http_get.log"
}

# Nothing listens on the port: the kernel answers the SYN with RST, and
# connect must fail with ECONNREFUSED.
case_http_get_connection_refused() {
    setup_case
    tun_create "$NS" cex4 10.78.0.1/24
    local rc
    run_rc rc in_ns "$NS" 30 env RSTCP_TUN=cex4 RSTCP_ADDR=10.78.0.2/24 \
        "$RSTCP_BIN/http_get" 10.78.0.1 8081 / >/dev/null 2>"$WORK/http_get.log"
    cat "$WORK/http_get.log"
    expect_eq "http_get exit status" 1 "$rc"
    expect_grep "connect fails with ECONNREFUSED" 'connect 10\.78\.0\.1:8081: Connection refused' "$WORK/http_get.log"
}

# upload FILE DEV: uploads FILE with upload_client over DEV to the kernel
# sha server on 10.79.0.1:9000 and checks the reply.
upload() {
    local file=$1 dev=$2 tag=$3 rc size want
    size=$(stat -c %s "$file")
    want=$(sha256_of "$file")
    run_rc rc in_ns "$NS" 60 env RSTCP_TUN="$dev" RSTCP_ADDR=10.79.0.2/24 \
        "$RSTCP_BIN/upload_client" 10.79.0.1 9000 "$file" >"$WORK/reply-$tag.txt" 2>"$WORK/upload-$tag.log"
    cat "$WORK/upload-$tag.log"
    expect_eq "upload_client exit status ($tag)" 0 "$rc"
    expect_eq "kernel's reply ($tag)" "sha256 $want bytes $size" "$(cat "$WORK/reply-$tag.txt")"
    expect_grep "bytes sent reported ($tag)" "sent $size bytes, received" "$WORK/upload-$tag.log"
}

case_upload_2mib() {
    setup_case
    head -c 2097152 /dev/urandom >"$WORK/upload.bin"
    tun_create "$NS" cex5 10.79.0.1/24
    bg_in_ns "$NS" 90 "$WORK/sha_server.log" \
        python3 "$RSTCP_PEERS/sha_server.py" 10.79.0.1 9000 --count 1 --timeout 60
    local server=$BG_PID
    wait_log "$WORK/sha_server.log" '^listening' 10 || die "sha_server did not start"
    upload "$WORK/upload.bin" cex5 2mib
    local rc
    run_rc rc wait_pid "$server" 10
    expect_eq "kernel server exit status" 0 "$rc"
}

# An empty upload (connect, shut down at once), then a second process that
# attaches to the same TUN device after the first one has exited.
case_upload_empty_and_reattach() {
    setup_case
    : >"$WORK/empty.bin"
    head -c 300000 /dev/urandom >"$WORK/small.bin"
    tun_create "$NS" cex6 10.79.0.1/24
    bg_in_ns "$NS" 90 "$WORK/sha_server.log" \
        python3 "$RSTCP_PEERS/sha_server.py" 10.79.0.1 9000 --count 2 --timeout 60
    local server=$BG_PID
    wait_log "$WORK/sha_server.log" '^listening' 10 || die "sha_server did not start"
    upload "$WORK/empty.bin" cex6 empty
    upload "$WORK/small.bin" cex6 reattach
    local rc
    run_rc rc wait_pid "$server" 10
    expect_eq "kernel server exit status" 0 "$rc"
}

# 2 % of packets dropped in each direction on the TUN device (nftables in the
# namespace): the download must still arrive intact.
case_http_get_with_loss() {
    if ! command -v nft >/dev/null 2>&1; then
        echo "SKIP: nft not installed"
        exit 77
    fi
    setup_case
    start_http cex7 10.78.0.1
    # One TCP segment per packet on the kernel side: with GSO the egress
    # hook would see a few 64 kB super-packets instead of ~750 segments.
    ip -n "$NS" link set dev cex7 gso_max_segs 1
    # Loss in the device's ingress and egress hooks: a drop in the IP
    # output hook is reported to the kernel's TCP, which sends again at
    # once without counting a loss, so that direction would not be lossy.
    ip netns exec "$NS" nft -f - <<'EOF'
table netdev rstcp_loss {
    chain in {
        type filter hook ingress device "cex7" priority 0; policy accept;
        numgen random mod 1000 < 20 counter drop
    }
    chain out {
        type filter hook egress device "cex7" priority 0; policy accept;
        numgen random mod 1000 < 20 counter drop
    }
}
EOF
    local rc
    run_rc rc in_ns "$NS" 120 env RSTCP_TUN=cex7 RSTCP_ADDR=10.78.0.2/24 \
        "$RSTCP_BIN/http_get" 10.78.0.1 8080 /blob.bin >"$WORK/body.bin" 2>"$WORK/http_get.log"
    cat "$WORK/http_get.log"
    local dropped
    dropped=$(ip netns exec "$NS" nft list table netdev rstcp_loss \
        | awk '/counter packets/ { for (i = 1; i < NF; i++) if ($i == "packets") s += $(i + 1) } END { print s + 0 }')
    echo "packets dropped by nftables: $dropped"
    expect_eq "http_get exit status under loss" 0 "$rc"
    [ "$dropped" -gt 0 ] || die "nftables dropped no packet: the loss rule did not apply"
    expect_eq "body sha256 under loss" "$(sha256_of "$WORK/www/blob.bin")" "$(sha256_of "$WORK/body.bin")"
}

# The C program and the shell lines of the README's "Using it from C", run as
# written (in a scratch directory, with this case's namespace name).
case_readme_c_example() {
    setup_case
    local readme=$RSTCP_ROOT/README.md dir=$WORK/readme
    mkdir -p "$dir"
    awk '/^## Using it from C/ { on = 1 } on && /^```c$/ { grab = 1; next }
         grab && /^```$/ { exit } grab { print }' "$readme" >"$dir/example.c"
    awk '/^## Using it from C/ { on = 1 } on && /^```sh$/ { grab = 1; next }
         grab && /^```$/ { exit } grab { print }' "$readme" >"$dir/run.sh"
    [ -s "$dir/example.c" ] && [ -s "$dir/run.sh" ] || die "no C example or no commands in README.md"
    # `make` is the tree's (already built); the commands make and delete a
    # namespace of their own, named for this case (deleted at exit too).
    local ex=$NS-ex
    _LIB_NAMESPACES+=("$ex")
    sed -e '/^make /d' -e "s/rstcp-example/$ex/g" -e "s|example\.c|$dir/example.c|" \
        -e "s|-o example|-o $dir/example|" -e "s|\./example|$dir/example|" \
        "$dir/run.sh" >"$dir/run2.sh"
    local out rc=0
    out=$(cd "$RSTCP_ROOT" && bash -e "$dir/run2.sh" 2>&1) || rc=$?
    echo "$out"
    expect_eq "README commands' exit status" 0 "$rc"
    echo "$out" | grep -q '^got 6 bytes$' || die "the example did not print 'got 6 bytes'"
}

# --- the runner --------------------------------------------------------------

if [ "${1:-}" = --case ]; then
    "case_$2"
    exit 0
fi

need_root "$0" "$@"
for bin in echo_server upload_client http_get; do
    if [ ! -x "$RSTCP_BIN/$bin" ]; then
        echo "$RSTCP_BIN/$bin is missing: run 'cargo build --release && make -C c_examples' first" >&2
        exit 1
    fi
done

selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${CASES[@]}")

passed=0
failed=0
skipped=0
failed_names=()
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/rstcp-cex-logs.XXXXXX")
trap 'rm -rf "$LOGDIR"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "C examples against the Linux kernel (each case in its own network namespace)"
for name in "${selected[@]}"; do
    if ! declare -F "case_$name" >/dev/null; then
        echo "unknown case: $name (cases: ${CASES[*]})" >&2
        exit 2
    fi
    start=$(now)
    rc=0
    RSTCP_CEX_RUN=$$ timeout --foreground --kill-after=10 "$CASE_LIMIT" bash "$0" --case "$name" \
        >"$LOGDIR/$name.log" 2>&1 || rc=$?
    secs=$(elapsed "$start")
    case $rc in
    0)
        passed=$((passed + 1))
        printf 'PASS  %-36s %6ss\n' "$name" "$secs"
        ;;
    77)
        skipped=$((skipped + 1))
        printf 'SKIP  %-36s %s\n' "$name" "$(grep -m1 '^SKIP' "$LOGDIR/$name.log" || true)"
        ;;
    *)
        failed=$((failed + 1))
        failed_names+=("$name")
        [ "$rc" = 124 ] && echo "      (killed after ${CASE_LIMIT} s)"
        printf 'FAIL  %-36s %6ss  (exit %s)\n' "$name" "$secs" "$rc"
        sed 's/^/      | /' "$LOGDIR/$name.log"
        ;;
    esac
done

leftover=$(ip netns list | awk '{ print $1 }' | grep "^rstcp-cex-$$-" || true)
if [ -n "$leftover" ]; then
    echo "error: network namespaces left behind: $leftover" >&2
    failed=$((failed + 1))
fi

[ ${#failed_names[@]} -eq 0 ] || echo "failed: ${failed_names[*]}"
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" = 0 ]
