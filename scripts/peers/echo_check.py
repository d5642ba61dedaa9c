#!/usr/bin/env python3
"""Kernel-side client for echo_server: opens one connection per size given,
all at once, sends that many random bytes, half-closes, reads the echo until
EOF and compares SHA-256 of what was sent and what came back.

    echo_check.py <ip> <port> <size> [<size> ...]

Retries connecting (ECONNREFUSED, EHOSTUNREACH, timeouts) for up to
--connect-wait seconds, since the server may still be starting. Prints one
line per connection; exits 0 only if every echo is identical.
"""
import argparse
import hashlib
import os
import socket
import sys
import threading
import time


def connect(ip, port, wait):
    deadline = time.monotonic() + wait
    while True:
        try:
            return socket.create_connection((ip, port), timeout=5)
        except OSError as e:
            if time.monotonic() >= deadline:
                raise
            last = e
            time.sleep(0.2)


def one(ip, port, size, wait, io_timeout, results, i):
    data = os.urandom(size)
    sent_hash = hashlib.sha256(data).hexdigest()
    res = {"size": size, "sent": sent_hash, "got": None, "got_len": 0, "error": None}
    results[i] = res
    try:
        s = connect(ip, port, wait)
        s.settimeout(io_timeout)
        err = []

        def writer():
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                err.append(e)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        h = hashlib.sha256()
        n = 0
        while True:
            try:
                b = s.recv(65536)
            except OSError as e:
                raise OSError(f"{e} after receiving {n} of {size} bytes") from e
            if not b:
                break
            h.update(b)
            n += len(b)
        t.join(io_timeout)
        s.close()
        if err:
            raise err[0]
        res["got"] = h.hexdigest()
        res["got_len"] = n
    except OSError as e:
        res["error"] = f"{type(e).__name__}: {e}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ip")
    ap.add_argument("port", type=int)
    ap.add_argument("sizes", type=int, nargs="+")
    ap.add_argument("--connect-wait", type=float, default=10.0)
    ap.add_argument("--io-timeout", type=float, default=30.0)
    a = ap.parse_args()
    results = [None] * len(a.sizes)
    threads = [
        threading.Thread(target=one, args=(a.ip, a.port, size, a.connect_wait, a.io_timeout, results, i))
        for i, size in enumerate(a.sizes)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = True
    for r in results:
        if r["error"]:
            ok = False
            print(f"  FAIL {r['size']} bytes: {r['error']}")
        elif r["got"] != r["sent"] or r["got_len"] != r["size"]:
            ok = False
            print(f"  FAIL sent {r['size']} bytes sha256 {r['sent'][:16]}…, "
                  f"got {r['got_len']} bytes sha256 {r['got'][:16]}…")
        else:
            print(f"  ok   {r['size']} bytes echoed, sha256 {r['sent'][:16]}… both ways")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
