#!/usr/bin/env bash
# The demo: rstcp's three C examples talking TCP with the Linux kernel, and
# an unmodified curl on rstcp through the LD_PRELOAD shim.
#
#   bash scripts/demo.sh     as root, or it runs itself again with sudo
#                            (SKIP_BUILD=1 to skip the build step)
#
# Everything runs inside one network namespace that this script creates
# (rstcp-demo-<pid>) and deletes at the end, also on failure or Ctrl-C.
# Inside it, each rstcp program gets its own TUN device; the kernel side of
# each device is the peer:
#
#   1. echo_server on rstcp (10.77.0.2, TUN rsdemo0, created by the library)
#      <- three kernel TCP clients (python3) at once; echoes checked by SHA-256
#   2. http_get on rstcp (10.78.0.2, TUN rsdemo1)
#      -> kernel `python3 -m http.server` on 10.78.0.1 serving a 1 MiB file
#   3. upload_client on rstcp (10.79.0.2, TUN rsdemo2)
#      -> kernel python3 server on 10.79.0.1 that answers with the SHA-256
#         of what it received (2 MiB)
#   4. curl, unmodified, under rstcp-run (10.80.0.2, TUN rsdemo3)
#      -> kernel `python3 -m http.server` on 10.80.0.1 serving 20 MiB
#
# Exit status 0 only if all four steps pass. Set RSTCP_LOG=debug for the
# library's log in the step logs, which are kept (and printed) on failure.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root "$0" "$@"
ensure_packages "${DEMO_PACKAGES[@]}"
build

NS=rstcp-demo-$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rstcp-demo.XXXXXX")
PASSED=0
FAILED=0

keep_work_on_failure() {
    if [ "$1" = 0 ] && [ "$FAILED" = 0 ]; then
        rm -rf "$WORK"
    else
        echo "Logs and files kept in $WORK"
    fi
}
on_exit keep_work_on_failure

pass() { PASSED=$((PASSED + 1)); echo "      => PASS"; }
fail() { FAILED=$((FAILED + 1)); echo "      => FAIL: $*"; }

echo
echo "rstcp demo: network namespace $NS (deleted at exit), work files in $WORK"
ns_create "$NS"

# ---------------------------------------------------------------------------
echo
echo "[1/4] echo_server on rstcp 10.77.0.2:7777 (TUN rsdemo0, made by the library)"
echo "      <- 3 kernel TCP clients at once from 10.77.0.1, 4 KiB / 16 KiB / 64 KiB each"
step1() {
    local log=$WORK/echo_server.log out=$WORK/echo_clients.log rc
    bg_in_ns "$NS" 60 "$log" env RSTCP_TUN=rsdemo0 RSTCP_ADDR=10.77.0.2/24 \
        "$RSTCP_BIN/echo_server" 7777 3
    local server=$BG_PID
    if ! wait_dev "$NS" rsdemo0 10; then
        show_log echo_server "$log"
        fail "TUN device rsdemo0 did not appear within 10 s"
        return
    fi
    if ! wait_ping "$NS" 10.77.0.2 10; then
        show_log echo_server "$log"
        fail "10.77.0.2 did not answer ping within 10 s"
        return
    fi
    echo "      rsdemo0 is up and 10.77.0.2 answers ping"
    rc=0
    in_ns "$NS" 60 python3 "$RSTCP_PEERS/echo_check.py" --io-timeout 40 10.77.0.2 7777 4096 16384 65536 \
        >"$out" 2>&1 || rc=$?
    sed 's/^  /      /' "$out"
    local server_rc=0
    wait_pid "$server" 20 || server_rc=$?
    grep '^conn ' "$log" | sed 's/^/      echo_server: /' || true
    if [ "$rc" != 0 ]; then
        show_log echo_server "$log"
        fail "an echo differed or a client failed (exit $rc)"
    elif [ "$server_rc" != 0 ]; then
        show_log echo_server "$log"
        fail "echo_server exited with status $server_rc"
    elif [ "$(grep -c '^conn .*: echoed [0-9]* bytes$' "$log")" != 3 ]; then
        show_log echo_server "$log"
        fail "echo_server did not report 3 clean connections"
    else
        pass
    fi
}
step1

# ---------------------------------------------------------------------------
echo
echo "[2/4] http_get on rstcp 10.78.0.2 (TUN rsdemo1)"
echo "      -> kernel 'python3 -m http.server' on 10.78.0.1:8080, GET /blob.bin (1 MiB)"
step2() {
    local www=$WORK/www log=$WORK/http_server.log got=$WORK/http_body.bin err=$WORK/http_get.log
    mkdir -p "$www"
    head -c 1048576 /dev/urandom >"$www/blob.bin"
    tun_create "$NS" rsdemo1 10.78.0.1/24
    bg_in_ns "$NS" 90 "$log" python3 -m http.server --bind 10.78.0.1 --directory "$www" 8080
    if ! wait_listen "$NS" 10.78.0.1 8080 10; then
        show_log http.server "$log"
        fail "http.server did not listen on 10.78.0.1:8080 within 10 s"
        return
    fi
    local rc=0 t0
    t0=$(now)
    in_ns "$NS" 60 env RSTCP_TUN=rsdemo1 RSTCP_ADDR=10.78.0.2/24 \
        "$RSTCP_BIN/http_get" 10.78.0.1 8080 /blob.bin >"$got" 2>"$err" || rc=$?
    local secs
    secs=$(elapsed "$t0")
    sed 's/^/      /' "$err"
    local want have size
    want=$(sha256_of "$www/blob.bin")
    have=$(sha256_of "$got")
    size=$(stat -c %s "$got")
    echo "      served   sha256 $want  1048576 bytes"
    echo "      received sha256 $have  $size bytes in $secs s ($(mbits "$size" "$secs"))"
    if [ "$rc" != 0 ]; then
        show_log http.server "$log"
        fail "http_get exited with status $rc"
    elif [ "$want" != "$have" ]; then
        fail "the body differs from the file"
    else
        pass
    fi
}
step2

# ---------------------------------------------------------------------------
echo
echo "[3/4] upload_client on rstcp 10.79.0.2 (TUN rsdemo2)"
echo "      -> kernel python3 server on 10.79.0.1:9000 that answers with the SHA-256 it received (2 MiB)"
step3() {
    local file=$WORK/upload.bin log=$WORK/sha_server.log reply=$WORK/upload_reply.txt err=$WORK/upload_client.log
    head -c 2097152 /dev/urandom >"$file"
    tun_create "$NS" rsdemo2 10.79.0.1/24
    bg_in_ns "$NS" 90 "$log" python3 "$RSTCP_PEERS/sha_server.py" 10.79.0.1 9000 --count 1 --timeout 60
    local server=$BG_PID
    if ! wait_log "$log" '^listening' 10; then
        show_log sha_server "$log"
        fail "the kernel server did not start within 10 s"
        return
    fi
    local rc=0 t0 secs
    t0=$(now)
    in_ns "$NS" 60 env RSTCP_TUN=rsdemo2 RSTCP_ADDR=10.79.0.2/24 \
        "$RSTCP_BIN/upload_client" 10.79.0.1 9000 "$file" >"$reply" 2>"$err" || rc=$?
    secs=$(elapsed "$t0")
    wait_pid "$server" 10 || true
    sed 's/^/      /' "$err"
    local want
    want=$(sha256_of "$file")
    echo "      sent     sha256 $want  2097152 bytes in $secs s ($(mbits 2097152 "$secs"))"
    echo "      kernel's reply: $(head -c 200 "$reply")"
    if [ "$rc" != 0 ]; then
        show_log sha_server "$log"
        fail "upload_client exited with status $rc"
    elif [ "$(cat "$reply")" != "sha256 $want bytes 2097152" ]; then
        show_log sha_server "$log"
        fail "the kernel received something else"
    else
        pass
    fi
}
step3

# ---------------------------------------------------------------------------
echo
echo "[4/4] curl (unmodified) under rstcp-run, on rstcp 10.80.0.2 (TUN rsdemo3)"
echo "      -> kernel 'python3 -m http.server' on 10.80.0.1:8080, GET /big.bin (20 MiB)"
step4() {
    local www=$WORK/www4 log=$WORK/http_server4.log got=$WORK/curl_body.bin err=$WORK/curl.log
    mkdir -p "$www"
    head -c 20971520 /dev/urandom >"$www/big.bin"
    tun_create "$NS" rsdemo3 10.80.0.1/24
    bg_in_ns "$NS" 90 "$log" python3 -m http.server --bind 10.80.0.1 --directory "$www" 8080
    if ! wait_listen "$NS" 10.80.0.1 8080 10; then
        show_log http.server "$log"
        fail "http.server did not listen on 10.80.0.1:8080 within 10 s"
        return
    fi
    local rc=0 t0 secs
    t0=$(now)
    in_ns "$NS" 60 "$RSTCP_ROOT/target/release/rstcp-run" --tun rsdemo3 --addr 10.80.0.2/24 -- \
        curl -sS -o "$got" http://10.80.0.1:8080/big.bin 2>"$err" || rc=$?
    secs=$(elapsed "$t0")
    sed 's/^/      /' "$err"
    local want have
    want=$(sha256_of "$www/big.bin")
    have=$(sha256_of "$got")
    echo "      served   sha256 $want  20971520 bytes"
    echo "      received sha256 $have in $secs s ($(mbits "$(stat -c %s "$got" 2>/dev/null || echo 0)" "$secs"))"
    grep -o '10\.80\.0\.2 - - .*"GET /big.bin[^"]*"' "$log" | sed 's/^/      http.server log: /' || true
    if [ "$rc" != 0 ]; then
        show_log http.server "$log"
        fail "curl under rstcp-run exited with status $rc"
    elif [ "$want" != "$have" ]; then
        fail "the body differs from the file"
    elif ! grep -q '^10\.80\.0\.2 - - ' "$log"; then
        show_log http.server "$log"
        fail "the request did not come from rstcp's address"
    else
        pass
    fi
}
step4

# ---------------------------------------------------------------------------
echo
echo "Summary: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
