"""The example scripts, each in a child process with a TUN device of its
own, against kernel peers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from conftest import PYTHON_DIR, child_env, child_net, connect_kernel, recv_all, sha, wait_line

EXAMPLES = os.path.join(PYTHON_DIR, "examples")


@pytest.fixture
def run_example():
    """run_example(script, *args, stdin=False, net=None): the example as a
    child on a TUN device of its own (``net`` from child_net(), or a fresh
    one); returns (process, kernel ip, rstcp ip). Killed at the end if still
    running."""
    children = []

    def run(script, *args, stdin=False, net=None):
        dev, kernel_ip, addr, rstcp_ip = net or child_net()
        p = subprocess.Popen(
            [sys.executable, os.path.join(EXAMPLES, script), *args],
            env=child_env(dev, addr),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        children.append(p)
        return p, kernel_ip, rstcp_ip

    yield run
    for p in children:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)


def test_echo_server_example(run_example):
    p, _, ip = run_example("echo_server.py", "7007", "--count", "3")
    wait_line(p, b"listening on")
    payloads = [b"", b"x", os.urandom(1 << 20)]
    echoes = {}

    def client(i):
        with connect_kernel((ip, 7007)) as c:
            threading.Thread(target=lambda: (c.sendall(payloads[i]), c.shutdown(socket.SHUT_WR))).start()
            echoes[i] = recv_all(c)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    for i, data in enumerate(payloads):
        assert sha(echoes[i]) == sha(data), i
    assert out.count(b"clean") == 3


def test_echo_client_example(run_example, kernel_server):
    data = os.urandom(700000)

    def echo(conn):
        while True:
            b = conn.recv(65536)
            if not b:
                return
            conn.sendall(b)

    net = child_net()
    kernel_server(echo, ip=net[1], port=7008)
    p, _, _ = run_example("echo_client.py", net[1], "7008", stdin=True, net=net)
    out, err = p.communicate(data, timeout=30)
    assert p.returncode == 0, err
    assert sha(out) == sha(data)
    assert b"sent 700000 bytes, received 700000" in err


def test_http_server_example(run_example, tmp_path):
    blob = os.urandom(1 << 20)
    (tmp_path / "blob.bin").write_bytes(blob)
    p, _, ip = run_example("http_server.py", "--port", "8088", "--directory", str(tmp_path), "--count", "2")
    wait_line(p, b"serving HTTP on")
    with urllib.request.urlopen(f"http://{ip}:8088/blob.bin", timeout=20) as r:
        assert r.status == 200
        assert sha(r.read()) == sha(blob)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{ip}:8088/missing", timeout=20)
    assert e.value.code == 404
    e.value.close()
    _, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert b'"GET /blob.bin HTTP/1.1" 200' in err
