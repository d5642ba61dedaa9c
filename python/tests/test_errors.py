"""Failures raise the socket module's exceptions: refused, reset, broken
pipe, timeouts; and bad input raises, never crashes."""

from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

import rstcp
from conftest import KERNEL_IP, PYTHON_DIR, RSTCP_IP, recv_all

# On the stack's subnet, but no host: the kernel drops what goes there.
SILENT_IP = "10.91.0.77"


def closed_port() -> int:
    """A kernel port with no listener (the kernel answers RST)."""
    s = socket.socket()
    s.bind((KERNEL_IP, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connection_refused():
    port = closed_port()
    with rstcp.socket() as s:
        with pytest.raises(ConnectionRefusedError) as e:
            s.connect((KERNEL_IP, port))
        assert e.value.errno == errno.ECONNREFUSED
    with pytest.raises(ConnectionRefusedError):
        rstcp.create_connection((KERNEL_IP, port), timeout=5)
    with rstcp.socket() as s:
        assert s.connect_ex((KERNEL_IP, port)) == errno.ECONNREFUSED


def test_connect_timeout():
    with rstcp.socket() as s:
        s.settimeout(0.3)
        t0 = time.monotonic()
        with pytest.raises(socket.timeout) as e:
            s.connect((SILENT_IP, 80))
        took = time.monotonic() - t0
        assert isinstance(e.value, TimeoutError)
        assert 0.25 < took < 3, took
    with rstcp.socket() as s:
        s.settimeout(0.1)
        assert s.connect_ex((SILENT_IP, 80)) == errno.EAGAIN


def test_recv_accept_and_sendall_timeouts(kernel_server):
    hold = threading.Event()
    srv = kernel_server(lambda conn: hold.wait(10))
    try:
        with rstcp.create_connection(srv.address, timeout=0.2) as s:
            assert s.gettimeout() == 0.2 and s.timeout == 0.2
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                s.recv(10)
            assert 0.15 < time.monotonic() - t0 < 3
            # The peer reads nothing: windows and buffers fill, then the
            # deadline of the whole sendall passes.
            s.settimeout(0.5)
            with pytest.raises(TimeoutError):
                s.sendall(b"x" * (64 << 20))
    finally:
        hold.set()
    with rstcp.create_server((RSTCP_IP, 0)) as ls:
        ls.settimeout(0.2)
        with pytest.raises(socket.timeout):
            ls.accept()


def test_so_rcvtimeo_on_a_blocking_socket(kernel_server):
    hold = threading.Event()
    srv = kernel_server(lambda conn: hold.wait(10))
    try:
        with rstcp.create_connection(srv.address) as s:
            assert s.gettimeout() is None
            s.setsockopt(rstcp.SOL_SOCKET, rstcp.SO_RCVTIMEO, struct.pack("ll", 0, 200000))
            # As with a kernel socket: the option's expiry is EAGAIN.
            with pytest.raises(BlockingIOError) as e:
                s.recv(10)
            assert e.value.errno == errno.EAGAIN
    finally:
        hold.set()


def test_reset_by_peer(kernel_server):
    got = threading.Event()

    def abort(conn):
        conn.recv(10)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        got.set()

    srv = kernel_server(abort)
    with rstcp.create_connection(srv.address, timeout=5) as s:
        s.sendall(b"hi")
        assert got.wait(5)
        with pytest.raises(ConnectionResetError) as e:
            while s.recv(10):
                pass
        assert e.value.errno == errno.ECONNRESET
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            s.send(b"more")


def test_broken_pipe_after_shutdown(kernel_server):
    srv = kernel_server(recv_all)
    with rstcp.create_connection(srv.address, timeout=5) as s:
        s.shutdown(rstcp.SHUT_WR)
        with pytest.raises(BrokenPipeError):
            s.sendall(b"x")


def test_non_blocking_use(kernel_server):
    srv = kernel_server(lambda conn: conn.sendall(conn.recv(100)))
    with rstcp.socket(type=rstcp.SOCK_STREAM | rstcp.SOCK_NONBLOCK) as s:
        assert s.gettimeout() == 0.0 and not s.getblocking()
        assert s.type == socket.SOCK_STREAM
        with pytest.raises(BlockingIOError) as e:
            s.connect(srv.address)
        assert e.value.errno == errno.EINPROGRESS
        sel = rstcp.selectors.RstcpSelector()
        sel.register(s, rstcp.selectors.EVENT_WRITE, "w")
        ready = sel.select(5)
        assert [(k.data, ev) for k, ev in ready] == [("w", rstcp.selectors.EVENT_WRITE)]
        assert s.getsockopt(rstcp.SOL_SOCKET, rstcp.SO_ERROR) == 0
        with pytest.raises(BlockingIOError):
            s.recv(10)
        assert s.send(b"echo me") == 7
        sel.modify(s, rstcp.selectors.EVENT_READ, "r")
        assert sel.select(5)[0][0].data == "r"
        assert s.recv(100) == b"echo me"
        sel.close()
        s.setblocking(True)
        assert s.getblocking() and s.gettimeout() is None
        assert s.recv(100) == b""


def test_non_blocking_send_fills_up(kernel_server):
    hold = threading.Event()
    srv = kernel_server(lambda conn: hold.wait(10))
    try:
        with rstcp.create_connection(srv.address) as s:
            s.setblocking(False)
            total = 0
            chunk = b"y" * 65536
            with pytest.raises(BlockingIOError):
                for _ in range(4096):
                    total += s.send(chunk)
            assert total > 0
    finally:
        hold.set()


def test_selector_with_several_sockets(kernel_server):
    def double(conn):
        conn.sendall(conn.recv(100) * 2)
        recv_all(conn)

    srv = kernel_server(double)
    sel = rstcp.selectors.RstcpSelector()
    socks = [rstcp.create_connection(srv.address, timeout=5) for _ in range(3)]
    try:
        for i, s in enumerate(socks):
            sel.register(s, rstcp.selectors.EVENT_READ, i)
        assert len(sel.get_map()) == 3 and sel.get_map()[socks[1]].data == 1
        assert sel.select(0) == []
        socks[2].sendall(b"ab")
        ready = sel.select(5)
        assert [k.data for k, _ in ready] == [2]
        assert socks[2].recv(10) == b"abab"
        with pytest.raises(KeyError):
            sel.register(socks[0], rstcp.selectors.EVENT_READ)
        with pytest.raises(ValueError), rstcp.socket() as other:
            sel.register(other, 0)
        t0 = time.monotonic()
        assert sel.select(0.1) == []
        assert time.monotonic() - t0 >= 0.09
        socks[0].close()
        assert sel.unregister(socks[0]).data == 0
        with pytest.raises(ValueError):  # closed and not registered: as selectors
            sel.unregister(socks[0])
    finally:
        for s in socks:
            s.close()
        sel.close()


def test_close_wakes_a_blocked_reader(kernel_server):
    hold = threading.Event()
    srv = kernel_server(lambda conn: hold.wait(10))
    try:
        s = rstcp.create_connection(srv.address)
        caught = []

        def reader():
            try:
                s.recv(10)
            except OSError as e:
                caught.append(e)

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.2)
        fd = s.fileno()
        s.close()
        t.join(5)
        assert not t.is_alive()
        assert caught and caught[0].errno == errno.EBADF, (fd, caught)
    finally:
        hold.set()


def test_closed_socket_raises_ebadf():
    s = rstcp.socket()
    s.close()
    s.close()  # twice is fine
    assert s.fileno() == -1
    for call in (
        lambda: s.recv(1),
        lambda: s.send(b"x"),
        lambda: s.sendall(b"x"),
        lambda: s.connect((KERNEL_IP, 1)),
        lambda: s.bind(("", 0)),
        lambda: s.listen(),
        lambda: s.accept(),
        lambda: s.shutdown(rstcp.SHUT_RDWR),
        lambda: s.getsockname(),
        lambda: s.settimeout(1),
        lambda: s.setsockopt(rstcp.SOL_SOCKET, rstcp.SO_REUSEADDR, 1),
        lambda: s.getsockopt(rstcp.SOL_SOCKET, rstcp.SO_ERROR),
    ):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EBADF
    with pytest.raises(OSError) as e:
        rstcp.socket(fileno=4000)
    assert e.value.errno == errno.EBADF


# (what, call on a fresh unconnected socket, exception, errno or None)
BAD_CALLS = [
    ("address not a tuple", lambda s: s.connect("10.91.0.1:80"), TypeError, None),
    ("port a string", lambda s: s.connect((KERNEL_IP, "80")), TypeError, None),
    ("address too short", lambda s: s.connect((KERNEL_IP,)), TypeError, None),
    ("host an int", lambda s: s.connect((80, KERNEL_IP)), TypeError, None),
    ("port too large", lambda s: s.connect((KERNEL_IP, 70000)), OverflowError, None),
    ("unknown name", lambda s: s.connect(("no.such.host.invalid", 80)), OSError, None),
    ("bind elsewhere", lambda s: s.bind(("10.1.2.3", 0)), OSError, errno.EADDRNOTAVAIL),
    ("send str", lambda s: s.send("text"), TypeError, None),
    ("sendall int", lambda s: s.sendall(12), TypeError, None),
    ("recv negative", lambda s: s.recv(-1), ValueError, None),
    ("recv str", lambda s: s.recv("10"), TypeError, None),
    ("recv_into bytes", lambda s: s.recv_into(b"read-only"), TypeError, None),
    ("recv_into too much", lambda s: s.recv_into(bytearray(4), 10), ValueError, None),
    ("timeout negative", lambda s: s.settimeout(-1), ValueError, None),
    ("timeout str", lambda s: s.settimeout("1"), TypeError, None),
    ("option value str", lambda s: s.setsockopt(rstcp.SOL_SOCKET, rstcp.SO_REUSEADDR, "yes"), TypeError, None),
    ("unknown option", lambda s: s.setsockopt(rstcp.SOL_SOCKET, 9999, 1), OSError, errno.ENOPROTOOPT),
    ("buflen too big", lambda s: s.getsockopt(rstcp.SOL_SOCKET, rstcp.SO_TYPE, 4096), OSError, None),
    ("shutdown how", lambda s: s.shutdown(99), OSError, errno.EINVAL),
    ("peer unconnected", lambda s: s.getpeername(), OSError, errno.ENOTCONN),
    ("recv unconnected", lambda s: s.recv(10), OSError, errno.ENOTCONN),
    ("accept unlistening", lambda s: s.accept(), OSError, errno.EINVAL),
    ("makefile mode", lambda s: s.makefile("rx"), ValueError, None),
    ("family", lambda s: rstcp.socket(socket.AF_INET6), OSError, errno.EAFNOSUPPORT),
    ("type", lambda s: rstcp.socket(type=socket.SOCK_DGRAM), OSError, errno.EPROTONOSUPPORT),
    ("family str", lambda s: rstcp.socket("inet"), TypeError, None),
    ("init again", lambda s: rstcp.init(tun="other0"), OSError, errno.EALREADY),
    ("init int", lambda s: rstcp.init(tun=5), TypeError, None),
]


@pytest.mark.parametrize("what,call,exc,err", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_raise(what, call, exc, err):
    with rstcp.socket() as s:
        with pytest.raises(exc) as e:
            call(s)
        if err is not None:
            assert e.value.errno == err


def test_a_missing_library_is_an_import_error(tmp_path):
    env = dict(os.environ, RSTCP_LIB=str(tmp_path / "nothing.so"), PYTHONPATH=PYTHON_DIR)
    r = subprocess.run(
        [sys.executable, "-c", "import rstcp"], env=env, capture_output=True, text=True, timeout=20
    )
    assert r.returncode == 1
    assert "ImportError: rstcp: cannot load librstcp.so" in r.stderr


def test_an_unclosed_socket_is_closed_with_a_warning():
    s = rstcp.socket()
    fd = s.fileno()
    with pytest.warns(ResourceWarning, match=f"unclosed <rstcp.socket fd={fd}"):
        del s
    with pytest.raises(OSError) as e:
        rstcp.socket(fileno=fd)  # the descriptor was closed
    assert e.value.errno == errno.EBADF


def test_non_blocking_connect_refused_shows_in_so_error():
    port = closed_port()
    with rstcp.socket() as s:
        s.setblocking(False)
        assert s.connect_ex((KERNEL_IP, port)) == errno.EINPROGRESS
        sel = rstcp.selectors.RstcpSelector()
        sel.register(s, rstcp.selectors.EVENT_WRITE)
        assert sel.select(5)
        assert s.getsockopt(rstcp.SOL_SOCKET, rstcp.SO_ERROR) == errno.ECONNREFUSED
        assert s.getsockopt(rstcp.SOL_SOCKET, rstcp.SO_ERROR) == 0  # read and cleared
        sel.close()
