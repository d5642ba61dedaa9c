#!/usr/bin/env python3
"""An echo client on rstcp: sends standard input (or a file) to an echo
server, half-closes, and writes what comes back to standard output.

    RSTCP_TUN=rt0 RSTCP_ADDR=10.77.0.2/24 python3 echo_client.py HOST PORT [FILE] < data

Sending runs in a second thread, so a large input cannot fill both
directions' buffers and stall.
"""

import argparse
import sys
import threading
import time

import rstcp


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("file", nargs="?", help="what to send (default: standard input)")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()

    src = open(a.file, "rb") if a.file else sys.stdin.buffer
    t0 = time.monotonic()
    sent = 0
    with rstcp.create_connection((a.host, a.port), timeout=a.timeout) as s:

        def send() -> None:
            nonlocal sent
            for chunk in iter(lambda: src.read(65536), b""):
                s.sendall(chunk)
                sent += len(chunk)
            s.shutdown(rstcp.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        received = 0
        out = sys.stdout.buffer
        for data in iter(lambda: s.recv(65536), b""):
            out.write(data)
            received += len(data)
        out.flush()
        sender.join()
    print(f"sent {sent} bytes, received {received} in {time.monotonic() - t0:.3f} s", file=sys.stderr)
    return 0 if sent == received else 1


if __name__ == "__main__":
    sys.exit(main())
