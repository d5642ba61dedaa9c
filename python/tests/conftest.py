"""Test setup: a private network namespace with rstcp's TUN device, and
kernel-side peers.

The test process (root) creates the namespace rstcp-py-<pid>, moves its
main thread into it (setns), and starts the stack there; the library
creates the TUN device ``rpy0`` (rstcp 10.91.0.2, kernel 10.91.0.1). Kernel
peers are threads of this process, so their sockets live in the namespace
too, as do the child processes the tests start. At the end the namespace's
name is deleted and the namespace goes with the process; nothing touches the
root namespace. Needs root; without it every test is skipped.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator, List, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYTHON_DIR)

sys.path.insert(0, PYTHON_DIR)
if not os.environ.get("RSTCP_LIB"):
    built = os.path.join(REPO, "target", "release", "librstcp.so")
    if os.path.exists(built):
        os.environ["RSTCP_LIB"] = built
# At exit the library waits for closing connections; the tests leave none
# worth waiting long for.
os.environ.setdefault("RSTCP_EXIT_LINGER_MS", "2000")

NS = f"rstcp-py-{os.getpid()}"
TUN = "rpy0"
KERNEL_IP = "10.91.0.1"
RSTCP_IP = "10.91.0.2"
CLONE_NEWNET = 0x40000000

_children_net = 0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


@pytest.fixture(scope="session", autouse=True)
def namespace() -> Iterator[str]:
    """The session's namespace, entered, with the stack started in it."""
    if os.geteuid() != 0:
        pytest.skip("needs root (a network namespace and a TUN device)")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("no /dev/net/tun")
    # A TERM (from `timeout`) unwinds like Ctrl-C, so the namespace goes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    _ip("netns", "add", NS)
    try:
        _setns(f"/run/netns/{NS}")
        _ip("link", "set", "lo", "up")
        import rstcp

        rstcp.init(tun=TUN, addr=f"{RSTCP_IP}/24")
        yield NS
    finally:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.setns(home, CLONE_NEWNET)
        finally:
            os.close(home)
            subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=10)


class KernelServer:
    """A kernel TCP listener on KERNEL_IP in a thread; ``handler(conn)``
    serves each connection in a thread of its own. Exceptions from handlers
    are raised again by close()."""

    def __init__(
        self, handler: Callable[[socket.socket], None], ip: str = KERNEL_IP, port: int = 0
    ) -> None:
        self.handler = handler
        self.listener = socket.create_server((ip, port))
        self.address = self.listener.getsockname()
        self.port = self.address[1]
        self.errors: List[BaseException] = []
        self.results: List[object] = []
        self._threads: List[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepting.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(20)
        try:
            with conn:
                r = self.handler(conn)
                if r is not None:
                    self.results.append(r)
        except BaseException as e:  # reported by close()
            self.errors.append(e)

    def close(self, wait: float = 20.0) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (Linux)
        except OSError:
            pass
        self.listener.close()
        self._accepting.join(wait)
        for t in self._threads:
            t.join(wait)
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> "KernelServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def kernel_server() -> Iterator[Callable[..., KernelServer]]:
    """Makes KernelServers that are closed (and checked) after the test."""
    made: List[KernelServer] = []

    def make(
        handler: Callable[[socket.socket], None], ip: str = KERNEL_IP, port: int = 0
    ) -> KernelServer:
        s = KernelServer(handler, ip, port)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def recv_all(conn: socket.socket) -> bytes:
    """Reads a kernel (or rstcp) socket to the end of the stream."""
    parts = []
    while True:
        b = conn.recv(1 << 16)
        if not b:
            return b"".join(parts)
        parts.append(b)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def child_net() -> tuple:
    """A fresh TUN device for a child process that runs rstcp itself (one
    device per process): made here with the kernel's address on it, in this
    session's namespace. Returns (device, kernel ip, rstcp address/prefix,
    rstcp ip)."""
    global _children_net
    _children_net += 1
    n = _children_net
    dev = f"rpyc{n}"
    kernel = f"10.92.{n}.1"
    _ip("tuntap", "add", "dev", dev, "mode", "tun")
    _ip("addr", "add", f"{kernel}/24", "dev", dev)
    _ip("link", "set", dev, "up")
    return dev, kernel, f"10.92.{n}.2/24", f"10.92.{n}.2"


def child_env(dev: str, addr: str) -> dict:
    env = dict(os.environ)
    env["RSTCP_TUN"] = dev
    env["RSTCP_ADDR"] = addr
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_line(proc: subprocess.Popen, prefix: str, timeout: float = 10.0) -> str:
    """Reads the child's stdout until a line starting with ``prefix``."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith(prefix):
            return line
    proc.kill()
    rest = proc.communicate(timeout=5)
    raise AssertionError(f"no line {prefix!r} from child: {seen!r} {rest!r}")


def connect_kernel(addr: tuple, timeout: Optional[float] = 10.0) -> socket.socket:
    """A kernel client connection, retried while the server starts."""
    deadline = time.monotonic() + (timeout or 10.0)
    while True:
        try:
            return socket.create_connection(addr, timeout=timeout)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
