#!/usr/bin/env bash
# Tests `make install`: builds (make), installs into temporary directories,
# and checks what a user of the installed files gets. Needs no root and no
# network namespace: it only builds and links, and runs nothing but
# `rstcp-run` on /bin/true (which makes no socket). Needs cc, g++,
# pkg-config and readelf (Debian: gcc g++ pkg-config binutils).
#
#   bash scripts/install_test.sh
#
# 1. make install DESTDIR=<tmp>/stage PREFIX=/usr: the files and symlinks,
#    rstcp.pc's paths, libraries stripped of debug info but not of symbols,
#    then make uninstall removes them.
# 2. make install PREFIX=<tmp>/prefix: the C examples, a C file that
#    includes only rstcp.h (-std=c99 -pedantic -Wall -Wextra -Werror) and a
#    C++ file built with `pkg-config --cflags --libs rstcp` alone; their
#    NEEDED entry is the SONAME librstcp.so.0; one example linked against
#    librstcp.a with `pkg-config --static`; rstcp-run finds the installed
#    librstcp_preload.so.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$RSTCP_ROOT"

start=$(now)
for tool in cc g++ pkg-config readelf make; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "install_test.sh: '$tool' not found; install: gcc g++ pkg-config binutils make" >&2
        exit 1
    }
done

tmp=$(mktemp -d /tmp/rstcp-install.XXXXXX)
remove_tmp() { rm -rf "$tmp"; }
on_exit remove_tmp

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
major=${version%%.*}
soname=librstcp.so.$major

echo "--- make (cargo build --release)"
find_cargo
as_builder make --no-print-directory >/dev/null

# soname_of FILE / needed_of FILE: the dynamic section's entries.
soname_of() { readelf -d "$1" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p'; }
needed_of() { readelf -d "$1" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'; }

echo "--- make install DESTDIR=$tmp/stage PREFIX=/usr"
make --no-print-directory install DESTDIR="$tmp/stage" PREFIX=/usr >"$tmp/install.log" ||
    { cat "$tmp/install.log" >&2; fail "make install"; }
stage=$tmp/stage/usr
for f in include/rstcp.h "lib/librstcp.so.$version" lib/librstcp.a \
    lib/librstcp_preload.so lib/pkgconfig/rstcp.pc bin/rstcp-run bin/rstcp-stat; do
    [ -f "$stage/$f" ] || fail "not installed: /usr/$f"
done
[ "$(readlink "$stage/lib/$soname")" = "librstcp.so.$version" ] || fail "$soname is not a symlink to librstcp.so.$version"
[ "$(readlink "$stage/lib/librstcp.so")" = "$soname" ] || fail "librstcp.so is not a symlink to $soname"
ok "header, librstcp.so.$version + $soname + librstcp.so, librstcp.a, librstcp_preload.so, rstcp-run, rstcp-stat, rstcp.pc"
"$stage/bin/rstcp-stat" -d "$tmp/no-processes" | grep -q '^PID ' || fail "installed rstcp-stat does not run"
ok "installed rstcp-stat runs (no processes: the header only)"
cmp -s include/rstcp.h "$stage/include/rstcp.h" || fail "installed rstcp.h differs from include/rstcp.h"
grep -qx 'prefix=/usr' "$stage/lib/pkgconfig/rstcp.pc" || fail "rstcp.pc: prefix is not /usr"
grep -qx 'libdir=${prefix}/lib' "$stage/lib/pkgconfig/rstcp.pc" || fail "rstcp.pc: libdir"
grep -qx "Version: $version" "$stage/lib/pkgconfig/rstcp.pc" || fail "rstcp.pc: Version"
ok "rstcp.pc: prefix=/usr, Version: $version (DESTDIR not in it)"
[ "$(soname_of "$stage/lib/librstcp.so.$version")" = "$soname" ] || fail "SONAME of librstcp.so is not $soname"
ok "SONAME $soname"
for f in "lib/librstcp.so.$version" lib/librstcp_preload.so bin/rstcp-run; do
    sections=$(readelf -S -W "$stage/$f")
    ! grep -qE '\.debug_(info|line)' <<<"$sections" || fail "$f still has debug info"
    grep -q '\.symtab' <<<"$sections" || fail "$f lost its symbol table"
done
sections=$(readelf -S -W "$stage/lib/librstcp.a")
! grep -qE '\.debug_(info|line)' <<<"$sections" || fail "librstcp.a still has debug info"
ok "no debug info, symbol tables kept ($(du -k "$stage/lib/librstcp.so.$version" | cut -f1) KiB for librstcp.so, $(du -k target/release/librstcp.so | cut -f1) KiB in target/release)"
make --no-print-directory uninstall DESTDIR="$tmp/stage" PREFIX=/usr >/dev/null
left=$(find "$tmp/stage" ! -type d)
[ -z "$left" ] || fail "left after make uninstall: $left"
ok "make uninstall removes every file"

prefix=$tmp/prefix
echo "--- make install PREFIX=$prefix"
# LDCONFIG=: leaves the system's loader cache alone.
make --no-print-directory install PREFIX="$prefix" LDCONFIG=: >"$tmp/install.log" ||
    { cat "$tmp/install.log" >&2; fail "make install"; }
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs rstcp) || fail "pkg-config does not know rstcp"
echo "pkg-config --cflags --libs rstcp: $flags"
[ "$(pkg-config --modversion rstcp)" = "$version" ] || fail "pkg-config --modversion"

out=$tmp/out
mkdir -p "$out"
# check_linked BIN: needs librstcp.so.<major> (no RUNPATH), which resolves
# to the installed library.
# (Outputs go through variables: with pipefail, grep -q ending a pipe early
# would fail the command before it.)
check_linked() {
    local name dynamic resolved
    name=$(basename "$1")
    dynamic=$(readelf -d "$1")
    grep -qF "Shared library: [$soname]" <<<"$dynamic" || fail "$name: NEEDED has no $soname"
    ! grep -qE 'RPATH|RUNPATH' <<<"$dynamic" || fail "$name: has an rpath"
    resolved=$(LD_LIBRARY_PATH=$prefix/lib ldd "$1")
    grep -qF "$soname => $prefix/lib/$soname" <<<"$resolved" ||
        fail "$name: $soname does not resolve to $prefix/lib"
}
for src in c_examples/*.c; do
    name=$(basename "$src" .c)
    # -pthread: echo_server's own threads.
    # shellcheck disable=SC2086
    cc -Wall -Wextra -Werror -O2 -pthread -o "$out/$name" "$src" $flags ||
        fail "$src does not build with pkg-config's flags"
    check_linked "$out/$name"
    ok "$name: built with pkg-config's flags alone, NEEDED $soname"
done

# The header alone: everything its declarations use comes with it.
cat >"$tmp/only_header.c" <<'EOF'
#include <rstcp.h>

int main(int argc, char **argv)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(7) };
    socklen_t len = sizeof sin;
    struct pollfd p = { .fd = -1, .events = POLLIN, .revents = 0 };
    char buf[4];
    ssize_t n;
    int fd;

    (void)argv;
    if (argc > 1) {
        fd = rs_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        rs_init(NULL, NULL, NULL);
        rs_bind(fd, (const struct sockaddr *)&sin, len);
        rs_listen(fd, 1);
        rs_accept(fd, (struct sockaddr *)&sin, &len);
        rs_accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        rs_connect(fd, (const struct sockaddr *)&sin, len);
        n = rs_send(fd, buf, sizeof buf, MSG_NOSIGNAL);
        n += rs_recv(fd, buf, sizeof buf, MSG_PEEK);
        rs_shutdown(fd, SHUT_WR);
        rs_getsockname(fd, (struct sockaddr *)&sin, &len);
        rs_getpeername(fd, (struct sockaddr *)&sin, &len);
        rs_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &fd, sizeof fd);
        rs_getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, buf, &len);
        rs_fcntl(fd, F_SETFL, O_NONBLOCK);
        rs_poll(&p, 1, 0);
        rs_close(fd);
        return (int)n;
    }
    return 0;
}
EOF
for std in c99 c11 gnu17; do
    # shellcheck disable=SC2086
    cc -std=$std -pedantic -Wall -Wextra -Werror -o "$out/only_header" "$tmp/only_header.c" $flags ||
        fail "a C file including only rstcp.h does not build with -std=$std"
done
check_linked "$out/only_header"
ok "a C file including only rstcp.h builds and links (-std=c99/c11/gnu17 -pedantic -Wall -Wextra -Werror)"

# C++: the extern "C" guard (without it the calls would not link).
cat >"$tmp/cxx.cpp" <<'EOF'
#include <rstcp.h>
#include <cerrno>
#include <cstdio>

int main(int argc, char **)
{
    if (argc > 1) {
        int fd = rs_socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in sin{};
        socklen_t len = sizeof sin;
        rs_getsockname(fd, reinterpret_cast<sockaddr *>(&sin), &len);
        pollfd p{fd, POLLIN, 0};
        rs_poll(&p, 1, 0);
        std::printf("%d %d\n", rs_close(fd), errno);
    }
    return 0;
}
EOF
for std in c++11 c++17; do
    # shellcheck disable=SC2086
    g++ -std=$std -pedantic -Wall -Wextra -Werror -o "$out/cxx" "$tmp/cxx.cpp" $flags ||
        fail "a C++ file including rstcp.h does not build with -std=$std"
done
check_linked "$out/cxx"
ok "C++ (g++ -std=c++11/c++17 -pedantic -Wall -Wextra -Werror) builds and links"

# Static: librstcp.a and what pkg-config --static adds for it.
static_libs=$(pkg-config --static --libs-only-l rstcp | sed 's/-lrstcp\b//')
# shellcheck disable=SC2046,SC2086
cc -Wall -Werror -O2 -o "$out/http_get_static" c_examples/http_get.c \
    $(pkg-config --cflags rstcp) "$prefix/lib/librstcp.a" $static_libs ||
    fail "http_get does not link against librstcp.a with pkg-config --static's libraries"
! grep -q rstcp <<<"$(needed_of "$out/http_get_static")" || fail "the static build still needs librstcp.so"
ok "http_get links against librstcp.a with pkg-config --static ($static_libs)"

# rstcp-run finds the shim in ../lib beside itself; /bin/true makes no socket.
preload=$("$prefix/bin/rstcp-run" sh -c 'echo "$LD_PRELOAD"')
[ "$preload" = "$prefix/lib/librstcp_preload.so" ] || fail "rstcp-run preloads '$preload'"
"$prefix/bin/rstcp-run" true || fail "rstcp-run true"
ok "installed rstcp-run preloads $prefix/lib/librstcp_preload.so"

echo "install_test.sh: passed in $(elapsed "$start") s"
