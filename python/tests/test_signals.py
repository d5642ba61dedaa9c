"""Signals during blocked calls: Ctrl-C raises KeyboardInterrupt, a handler's
exception propagates, and a handler that returns lets the call go on
(PEP 475)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import rstcp
from conftest import RSTCP_IP, child_env, child_net, wait_line


class Boom(Exception):
    pass


@pytest.fixture
def signal_main_later():
    """signal_main_later(seconds): SIGUSR1 to the main thread after that
    long; the handler records it and raises Boom if asked to."""
    calls = []
    state = {"raise": True}

    def handler(signum, frame):
        calls.append(signum)
        if state["raise"]:
            raise Boom()

    old = signal.signal(signal.SIGUSR1, handler)
    timers = []
    main = threading.get_ident()

    def fire(raise_):
        state["raise"] = raise_
        signal.pthread_kill(main, signal.SIGUSR1)

    def later(seconds, raise_=True):
        t = threading.Timer(seconds, fire, (raise_,))
        timers.append(t)
        t.start()
        return calls

    yield later
    for t in timers:
        t.cancel()
        t.join()
    signal.signal(signal.SIGUSR1, old)


@pytest.fixture
def silent_peer(kernel_server):
    """A kernel peer that sends ``hold["data"]`` once ``hold["go"]`` is set."""
    go = threading.Event()
    hold = {"go": go, "data": b""}

    def serve(conn):
        go.wait(10)
        if hold["data"]:
            conn.sendall(hold["data"])
        conn.recv(10)

    hold["server"] = kernel_server(serve)
    yield hold
    go.set()


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["blocking", "timeout"])
def test_handler_exception_ends_a_blocked_recv(signal_main_later, silent_peer, timeout):
    with rstcp.create_connection(silent_peer["server"].address, timeout=timeout) as s:
        calls = signal_main_later(0.2)
        t0 = time.monotonic()
        with pytest.raises(Boom):
            s.recv(10)
        assert calls and time.monotonic() - t0 < 3


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["blocking", "timeout"])
def test_recv_goes_on_after_a_handler_returns(signal_main_later, silent_peer, timeout):
    silent_peer["data"] = b"late data"
    threading.Timer(0.5, silent_peer["go"].set).start()
    with rstcp.create_connection(silent_peer["server"].address, timeout=timeout) as s:
        calls = signal_main_later(0.2, raise_=False)
        assert s.recv(100) == b"late data"
        assert calls == [signal.SIGUSR1]


def test_handler_exception_ends_accept_and_select(signal_main_later):
    with rstcp.create_server((RSTCP_IP, 0)) as ls:
        signal_main_later(0.2)
        with pytest.raises(Boom):
            ls.accept()
        sel = rstcp.selectors.RstcpSelector()
        sel.register(ls, rstcp.selectors.EVENT_READ)
        signal_main_later(0.2)
        with pytest.raises(Boom):
            sel.select()
        calls = signal_main_later(0.1, raise_=False)
        assert sel.select(0.4) == []
        assert calls


def test_signals_during_a_blocking_connect(signal_main_later):
    # No host answers there: the connect waits until a handler raises.
    with rstcp.socket() as s:
        calls = signal_main_later(0.1, raise_=False)
        signal_main_later(0.4)
        t0 = time.monotonic()
        with pytest.raises(Boom):
            s.connect(("10.91.0.77", 80))
        assert len(calls) == 2 and time.monotonic() - t0 < 3


CHILD = textwrap.dedent(
    """
    import sys, rstcp
    what, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = rstcp.create_connection((host, port))
    print("connected", flush=True)
    try:
        if what == "recv":
            s.recv(10)
        else:
            sel = rstcp.selectors.RstcpSelector()
            sel.register(s, rstcp.selectors.EVENT_READ)
            sel.select()
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(3)
    print("not interrupted", flush=True)
    """
)


@pytest.mark.parametrize("what", ["recv", "select"])
def test_ctrl_c_interrupts_a_child_blocked_in_rstcp(kernel_server, what):
    dev, kernel_ip, addr, _ = child_net()
    done = threading.Event()
    srv = kernel_server(lambda conn: done.wait(15), ip=kernel_ip)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, what, kernel_ip, str(srv.port)],
        env=child_env(dev, addr),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_line(child, "connected")
        time.sleep(0.2)
        os.kill(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=10)
        assert child.returncode == 3, (out, err)
        assert out.strip() == "KeyboardInterrupt"
    finally:
        done.set()
        if child.poll() is None:
            child.kill()
            child.wait()
