#!/usr/bin/env python3
"""Kernel-side TCP echo server for the preload tests: echoes every byte of
every connection (a thread each) and, after the client half-closes, sends
the rest of the echo and closes.

    echo_server.py <bind_ip> <port> [--timeout S] [--delay MS]

Prints "listening" on stdout once it listens; exits after --timeout seconds
(default 120) so a failed test never leaves it behind.
"""
import argparse
import socket
import sys
import threading
import time


def serve(conn, delay):
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                conn.sendall(data)
        except ConnectionError:
            pass  # the client closed with unread data: nothing to echo to


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ip")
    ap.add_argument("port", type=int)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--delay", type=float, default=0.0, help="ms before each echo")
    a = ap.parse_args()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.ip, a.port))
    srv.listen(64)
    threading.Timer(a.timeout, lambda: sys.exit(0)).start()
    print("listening", flush=True)
    srv.settimeout(a.timeout)
    try:
        while True:
            conn, _ = srv.accept()
            conn.settimeout(None)
            threading.Thread(target=serve, args=(conn, a.delay / 1000), daemon=True).start()
    except socket.timeout:
        pass


if __name__ == "__main__":
    main()
