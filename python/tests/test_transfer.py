"""Data both ways between rstcp sockets and kernel peers, byte for byte."""

from __future__ import annotations

import os
import socket
import threading

import rstcp
from conftest import KERNEL_IP, RSTCP_IP, connect_kernel, recv_all, sha

MB = 1 << 20


def test_upload_to_kernel_is_byte_exact(kernel_server):
    data = os.urandom(3 * MB + 123)

    def receive(conn):
        got = recv_all(conn)
        conn.sendall(f"{sha(got)} {len(got)}".encode())

    srv = kernel_server(receive)
    with rstcp.create_connection(srv.address, timeout=20) as s:
        s.sendall(data)
        s.shutdown(rstcp.SHUT_WR)
        reply = recv_all(s)
    assert reply.decode() == f"{sha(data)} {len(data)}"


def test_download_from_kernel_into_buffer(kernel_server):
    data = os.urandom(4 * MB + 7)
    srv = kernel_server(lambda conn: conn.sendall(data))
    buf = bytearray(len(data) + 10)
    view = memoryview(buf)
    got = 0
    with rstcp.create_connection(srv.address) as s:
        while True:
            n = s.recv_into(view[got:], min(65536, len(buf) - got))
            if n == 0:
                break
            got += n
    assert got == len(data)
    assert sha(bytes(buf[:got])) == sha(data)


def test_rstcp_server_echoes_to_kernel_client():
    data = os.urandom(2 * MB + 5)
    with rstcp.create_server(("", 0)) as ls:
        host, port = ls.getsockname()
        assert (host, port) == ("0.0.0.0", port) and port > 0
        result = {}

        def client():
            with connect_kernel((RSTCP_IP, port)) as c:
                result["local"] = c.getsockname()
                sender = threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR)))
                sender.start()
                result["echo"] = recv_all(c)
                sender.join()

        t = threading.Thread(target=client)
        t.start()
        conn, peer = ls.accept()
        with conn:
            assert isinstance(conn, rstcp.socket)
            assert peer == result.get("local", peer)
            assert peer[0] == KERNEL_IP
            assert conn.getpeername() == peer
            assert conn.getsockname() == (RSTCP_IP, port)
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                conn.sendall(chunk)
        t.join(30)
    assert sha(result["echo"]) == sha(data)


def test_half_close_both_ways(kernel_server):
    def peer(conn):
        # rstcp shuts its sending side: we read the end, then still answer.
        got = recv_all(conn)
        conn.sendall(b"after your FIN: " + got)
        conn.shutdown(socket.SHUT_WR)
        # Our FIN is out; rstcp may still send.
        return recv_all(conn)

    srv = kernel_server(peer)
    with rstcp.create_connection(srv.address, timeout=10) as s:
        s.sendall(b"ping")
        s.shutdown(rstcp.SHUT_WR)
        assert recv_all(s) == b"after your FIN: ping"
        assert s.recv(10) == b""
        try:
            s.send(b"more")
        except BrokenPipeError:
            pass  # SHUT_WR forbids sending: what a kernel socket says too
        else:
            raise AssertionError("send after SHUT_WR did not raise BrokenPipeError")
    srv.close()
    assert srv.results == [b""]


def test_kernel_half_closes_and_rstcp_still_sends(kernel_server):
    def peer(conn):
        conn.sendall(b"request")
        conn.shutdown(socket.SHUT_WR)
        return recv_all(conn)

    srv = kernel_server(peer)
    reply = os.urandom(300000)
    with rstcp.create_connection(srv.address, timeout=10) as s:
        assert recv_all(s) == b"request"
        s.sendall(reply)
    srv.close()
    assert srv.results == [reply]


def test_makefile_lines_and_binary(kernel_server):
    def peer(conn):
        f = conn.makefile("rwb")
        for line in f:
            f.write(line.upper())
            f.flush()
        f.close()

    srv = kernel_server(peer)
    with rstcp.create_connection(srv.address, timeout=10) as s:
        f = s.makefile("rw", encoding="ascii", newline="\n")
        for word in ("alpha", "beta", "gamma"):
            f.write(word + "\n")
            f.flush()
            assert f.readline() == word.upper() + "\n"
        s.close()  # the file keeps the socket open
        assert s.fileno() != -1
        f.write("delta\n")
        f.flush()
        assert f.readline() == "DELTA\n"
        f.close()
        assert s.fileno() == -1


def test_options_and_names(kernel_server):
    srv = kernel_server(lambda conn: recv_all(conn))
    with rstcp.socket() as s:
        assert s.family == socket.AF_INET and s.type == socket.SOCK_STREAM
        s.setsockopt(rstcp.IPPROTO_TCP, rstcp.TCP_NODELAY, 1)
        assert s.getsockopt(rstcp.IPPROTO_TCP, rstcp.TCP_NODELAY) == 1
        s.setsockopt(rstcp.SOL_SOCKET, rstcp.SO_RCVBUF, 1 << 20)
        assert s.getsockopt(rstcp.SOL_SOCKET, rstcp.SO_RCVBUF) > 0
        s.setsockopt(rstcp.IPPROTO_TCP, rstcp.TCP_CONGESTION, b"reno")
        assert s.getsockopt(rstcp.IPPROTO_TCP, rstcp.TCP_CONGESTION, 16).rstrip(b"\0") == b"reno"
        assert s.getsockopt(rstcp.SOL_SOCKET, rstcp.SO_TYPE) == socket.SOCK_STREAM
        s.connect(srv.address)
        assert s.getpeername() == srv.address
        host, port = s.getsockname()
        assert host == RSTCP_IP and port > 0
        info = s.getsockopt(rstcp.IPPROTO_TCP, rstcp.TCP_INFO, 104)
        assert len(info) == 104 and info[0] == 1  # TCP_ESTABLISHED
        assert "rstcp.socket" in repr(s) and "raddr=" in repr(s)
        assert s.getsockopt(rstcp.SOL_SOCKET, rstcp.SO_ERROR) == 0


def test_flags_and_buffer_types(kernel_server):
    import array

    words = array.array("i", range(1000))
    srv = kernel_server(lambda conn: conn.sendall(recv_all(conn)))
    with rstcp.create_connection(srv.address, timeout=10) as s:
        s.sendall(memoryview(words))  # 4000 bytes, item size 4
        s.sendall(memoryview(b"0123456789")[2:6])  # read-only slice
        s.sendall(bytearray(b"tail"))
        s.shutdown(rstcp.SHUT_WR)
        assert s.recv(4, rstcp.MSG_PEEK) == words.tobytes()[:4]
        got = s.recv(4000, rstcp.MSG_WAITALL)
        assert got == words.tobytes()
        back = array.array("b", bytes(8))
        assert s.recv_into(back, 8, rstcp.MSG_WAITALL) == 8
        assert back.tobytes() == b"2345tail"
        assert s.recv(10) == b""
