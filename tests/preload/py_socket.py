#!/usr/bin/env python3
"""Python's socket, select and selectors modules against a TCP echo server.

    python3 py_socket.py <peer_ip> <echo_port> [<own_ip>]

Meant to run unmodified under librstcp_preload.so, and just as well on plain
kernel sockets. The peer echoes every byte and closes after our SHUT_WR;
echo_port+1 must have no listener. With <own_ip>, every connected socket's
local address must be <own_ip> (proof that the socket went through rstcp).
Prints "PASS <name>" or "FAIL <name>: <reason>" per check, then
"N passed, M failed"; exits 0 only if everything passed.

Python runs a socket with a timeout as a non-blocking fd plus poll(), and one
without a timeout as plain blocking syscalls; both paths are exercised.
"""
import errno
import faulthandler
import hashlib
import os
import random
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time

WAIT = 10.0  # bound on every wait that expects something to happen


class Fail(Exception):
    pass


def usage():
    sys.exit(f"usage: {sys.argv[0]} <peer_ip> <echo_port> [<own_ip>]")


if len(sys.argv) not in (3, 4):
    usage()
PEER, PORT = sys.argv[1], int(sys.argv[2])
OWN = sys.argv[3] if len(sys.argv) == 4 else None

opened = []  # closed after each check, so a failing check can just raise
_seed = 0


def payload(n):
    """Distinct pseudo-random bytes per call, so data crossing between
    connections or arriving twice cannot compare equal."""
    global _seed
    _seed += 1
    return random.Random(_seed).randbytes(n)


def same(want, got):
    if hashlib.sha256(want).digest() != hashlib.sha256(got).digest():
        at = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
        raise Fail(f"echo differs at byte {at} (sent {len(want)}, got {len(got)})")


def check_names(s):
    local, peer = s.getsockname(), s.getpeername()
    if OWN and local[0] != OWN:
        raise Fail(f"local address {local[0]}, expected {OWN} (socket not on rstcp?)")
    if peer != (PEER, PORT):
        raise Fail(f"getpeername {peer}, expected {(PEER, PORT)}")


def connect():
    s = socket.create_connection((PEER, PORT), timeout=WAIT)
    opened.append(s)
    check_names(s)
    return s


def bound_blocking(s):
    """No Python timeout (plain blocking syscalls), but the kernel-style
    SO_RCVTIMEO/SO_SNDTIMEO keep every call bounded."""
    s.settimeout(None)
    tv = struct.pack("ll", int(WAIT), 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def echo(s, data, half_close=False):
    """Sends from a helper thread while this one receives: the echo of a large
    payload would otherwise deadlock against our own unread data."""
    errors = []

    def send():
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except BaseException as e:
            errors.append(e)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    buf = bytearray(len(data) + 1)
    view, got = memoryview(buf), 0
    while got < len(data) or half_close:
        try:
            n = s.recv_into(view[got:])
        except (TimeoutError, BlockingIOError):  # BlockingIOError: SO_RCVTIMEO expired
            raise Fail(f"timed out after {got} of {len(data)} bytes"
                       + (", no EOF after SHUT_WR" if got == len(data) else ""))
        if n == 0:
            break
        got += n
        if got > len(data):
            raise Fail("echo longer than what was sent")
    sender.join(WAIT)
    if errors:
        raise errors[0]
    if got < len(data):
        raise Fail(f"EOF after {got} of {len(data)} bytes")
    same(data, bytes(view[:got]))


# ---- checks ---------------------------------------------------------------

def t_create_connection():
    s = connect()
    if s.gettimeout() != WAIT:
        raise Fail(f"gettimeout {s.gettimeout()}")
    echo(s, payload(1 << 20))


def t_timeout():
    s = connect()
    s.settimeout(0.5)
    if s.gettimeout() != 0.5:
        raise Fail(f"gettimeout {s.gettimeout()}, expected 0.5")
    t0 = time.monotonic()
    try:
        data = s.recv(100)
        raise Fail(f"recv returned {data!r} though nothing was sent")
    except TimeoutError:  # socket.timeout is an alias
        pass
    dt = time.monotonic() - t0
    if not 0.4 <= dt < 3:
        raise Fail(f"0.5 s timeout took {dt:.2f} s")
    s.settimeout(WAIT)
    echo(s, payload(1000))


def t_nonblocking():
    s = connect()
    s.setblocking(False)
    if s.gettimeout() != 0.0:
        raise Fail(f"gettimeout {s.gettimeout()} after setblocking(False)")
    try:
        s.recv(100)
        raise Fail("recv on an idle non-blocking socket returned")
    except BlockingIOError:
        pass
    c = socket.socket()
    opened.append(c)
    c.setblocking(False)
    r = c.connect_ex((PEER, PORT))
    if r not in (0, errno.EINPROGRESS):
        raise Fail(f"connect_ex: {errno.errorcode.get(r, r)}")
    _, w, _ = select.select([], [c], [], WAIT)
    if c not in w:
        raise Fail("select: connect did not complete")
    err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err != 0:
        raise Fail(f"SO_ERROR {errno.errorcode.get(err, err)}")
    check_names(c)
    c.settimeout(WAIT)
    echo(c, payload(70000))


def t_refused():
    try:
        opened.append(socket.create_connection((PEER, PORT + 1), timeout=WAIT))
        raise Fail("create_connection to the closed port succeeded")
    except ConnectionRefusedError:
        pass
    s = socket.socket()
    opened.append(s)
    bound_blocking(s)
    try:
        s.connect((PEER, PORT + 1))
        raise Fail("blocking connect to the closed port succeeded")
    except ConnectionRefusedError:
        pass


class Conn:
    """One non-blocking connection streaming its payload and its echo."""

    def __init__(self, size):
        self.sock = connect()
        self.sock.setblocking(False)
        self.out, self.sent, self.got = payload(size), 0, 0
        self.buf = bytearray(size + 1)

    def writing(self):
        return self.sent < len(self.out)

    def done(self):
        return self.got == len(self.out)

    def on_write(self):
        try:
            self.sent += self.sock.send(self.out[self.sent:self.sent + 65536])
        except BlockingIOError:
            pass

    def on_read(self):
        try:
            n = self.sock.recv_into(memoryview(self.buf)[self.got:])
        except BlockingIOError:
            return
        if n == 0:
            raise Fail(f"EOF after {self.got} of {len(self.out)} bytes")
        self.got += n
        if self.got > len(self.out):
            raise Fail("echo longer than what was sent")

    def verify(self):
        same(self.out, bytes(self.buf[:self.got]))


SIZES = [1, 1000, 65536, 300000, 1 << 20]


def t_select():
    conns = [Conn(n) for n in SIZES]
    while not all(c.done() for c in conns):
        rl = [c.sock for c in conns if not c.done()]
        wl = [c.sock for c in conns if c.writing()]
        r, w, _ = select.select(rl, wl, [], WAIT)
        if not r and not w:
            raise Fail(f"select timed out; echoed {[c.got for c in conns]} of {SIZES}")
        for c in conns:
            if c.sock in w:
                c.on_write()
            if c.sock in r:
                c.on_read()
    for c in conns:
        c.verify()


def t_selectors():
    sel = selectors.DefaultSelector()
    if not isinstance(sel, selectors.EpollSelector):
        raise Fail(f"DefaultSelector is {type(sel).__name__}, not EpollSelector")
    try:
        conns = [Conn(n) for n in SIZES]
        for c in conns:
            sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        while sel.get_map():
            events = sel.select(WAIT)
            if not events:
                raise Fail(f"selector timed out; echoed {[c.got for c in conns]} of {SIZES}")
            for key, mask in events:
                c = key.data
                if mask & selectors.EVENT_WRITE:
                    if not c.writing():
                        raise Fail("EVENT_WRITE after it was removed")
                    c.on_write()
                    if not c.writing():
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                if mask & selectors.EVENT_READ:
                    c.on_read()
                    if c.done():
                        sel.unregister(c.sock)
        for c in conns:
            c.verify()
    finally:
        sel.close()


def t_makefile():
    s = connect()
    with s.makefile("rwb") as f:
        lines = [b"%d %s\n" % (i, payload(20 * i + 1).hex().encode()) for i in range(50)]
        for line in lines[:10]:  # one line at a time
            f.write(line)
            f.flush()
            if f.readline() != line:
                raise Fail("readline returned something else")
        f.write(b"".join(lines[10:]))  # all at once, then read line by line
        f.flush()
        for line in lines[10:]:
            if f.readline() != line:
                raise Fail("readline returned something else")


def interrupted_recv(s, arm, disarm, exc):
    """A recv with nothing coming, interrupted by a signal whose handler raises
    exc; then the connection must still work."""
    arm()
    t0 = time.monotonic()
    try:
        data = s.recv(100)
        raise Fail(f"recv returned {data!r} instead of being interrupted")
    except exc:
        pass
    except OSError as e:
        raise Fail(f"recv not interrupted: {e!r} after {time.monotonic() - t0:.2f} s")
    finally:
        disarm()
    dt = time.monotonic() - t0
    if dt >= 3:
        raise Fail(f"interrupted only after {dt:.2f} s")
    s.settimeout(WAIT)
    echo(s, payload(5000))


def t_sigint():
    s = connect()
    bound_blocking(s)  # blocked in the recv syscall itself
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))

    def disarm():
        timer.cancel()
        try:
            timer.join()
        except KeyboardInterrupt:  # a late signal must not leak into other checks
            pass
        signal.signal(signal.SIGINT, old)

    interrupted_recv(s, timer.start, disarm, KeyboardInterrupt)


class Alarm(Exception):
    pass


def t_sigalrm():
    s = connect()  # with a timeout: blocked in poll()

    def on_alarm(signum, frame):
        raise Alarm()

    old = signal.signal(signal.SIGALRM, on_alarm)

    def disarm():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)

    interrupted_recv(s, lambda: signal.setitimer(signal.ITIMER_REAL, 0.3), disarm, Alarm)


def t_half_close():
    s = connect()
    bound_blocking(s)
    echo(s, payload(300000), half_close=True)
    if s.recv(10) != b"":
        raise Fail("second recv after EOF did not return b''")
    try:
        s.send(b"x")
        raise Fail("send after SHUT_WR succeeded")
    except BrokenPipeError:
        pass


def t_tcp_info():
    # tcpi_state is the first byte of struct tcp_info; 1 is ESTABLISHED.
    s = connect()
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    if info[0] != 1:
        raise Fail(f"tcpi_state {info[0]} on an established connection")
    echo(s, payload(1000), half_close=True)


def t_subprocess():
    # subprocess uses vfork (the child shares our memory, runs no atfork
    # handler, and closes every descriptor it does not pass on): our open
    # connection must come through untouched.
    import subprocess
    s = connect()
    echo(s, payload(5000))
    subprocess.run(["true"], check=True, close_fds=True)
    echo(s, payload(70000), half_close=True)


CHECKS = [
    ("create_connection_1MB", t_create_connection),
    ("settimeout_recv", t_timeout),
    ("nonblocking", t_nonblocking),
    ("connect_refused", t_refused),
    ("select_many", t_select),
    ("selectors_epoll_many", t_selectors),
    ("makefile_readline", t_makefile),
    ("sigint_interrupts_recv", t_sigint),
    ("sigalrm_interrupts_recv", t_sigalrm),
    ("half_close", t_half_close),
    ("tcp_info_state", t_tcp_info),
    ("subprocess_keeps_connection", t_subprocess),
]


def main():
    faulthandler.dump_traceback_later(60, exit=True)  # global watchdog
    passed = failed = 0
    for name, fn in CHECKS:
        try:
            fn()
            print(f"PASS {name}", flush=True)
            passed += 1
        except BaseException as e:  # KeyboardInterrupt included
            print(f"FAIL {name}: {e if isinstance(e, Fail) else repr(e)}", flush=True)
            failed += 1
        finally:
            while opened:
                opened.pop().close()
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
