#!/usr/bin/env python3
"""Kernel-side upload receiver: accepts connections one after another, reads
each until the client half-closes, answers "sha256 <hex> bytes <n>\n" and
closes. Exits after --count connections (default 1) or --timeout seconds.

    sha_server.py <bind_ip> <port> [--count N] [--timeout S]

Prints "listening" on stdout once the socket listens, and one line per
connection.
"""
import argparse
import hashlib
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ip")
    ap.add_argument("port", type=int)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.ip, a.port))
    ls.listen(8)
    ls.settimeout(a.timeout)
    print("listening", flush=True)
    for _ in range(a.count):
        c, peer = ls.accept()
        c.settimeout(a.timeout)
        h = hashlib.sha256()
        n = 0
        while True:
            b = c.recv(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
        c.sendall(f"sha256 {h.hexdigest()} bytes {n}\n".encode())
        c.close()
        print(f"{peer[0]}:{peer[1]} sent {n} bytes sha256 {h.hexdigest()}", flush=True)
    ls.close()


if __name__ == "__main__":
    try:
        main()
    except OSError as e:
        print(f"sha_server: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
