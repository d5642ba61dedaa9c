#!/usr/bin/env python3
"""An echo server on rstcp: one thread serves every connection, waiting with
rstcp.selectors.RstcpSelector on non-blocking sockets.

    RSTCP_TUN=rt0 RSTCP_ADDR=10.77.0.2/24 python3 echo_server.py [PORT] [--count N]

Prints "listening on HOST:PORT", then a line per connection when it ends;
with --count, exits after N connections.
"""

import argparse
import selectors

import rstcp
from rstcp.selectors import RstcpSelector


class Connection:
    """A client's socket and the echo it has not taken yet."""

    def __init__(self, sock: rstcp.socket, peer: tuple) -> None:
        self.sock = sock
        self.peer = peer
        self.pending = bytearray()
        self.echoed = 0
        self.peer_done = False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int, nargs="?", default=7)
    ap.add_argument("--count", type=int, default=0, help="exit after this many connections")
    a = ap.parse_args()

    listener = rstcp.create_server(("", a.port))
    listener.setblocking(False)
    sel = RstcpSelector()
    sel.register(listener, selectors.EVENT_READ)
    host, port = listener.getsockname()
    print(f"listening on {host}:{port}", flush=True)
    served = 0

    def finish(c: Connection, how: str) -> None:
        nonlocal served
        sel.unregister(c.sock)
        c.sock.close()
        served += 1
        print(f"{c.peer[0]}:{c.peer[1]}: echoed {c.echoed} bytes, {how}", flush=True)

    while not a.count or served < a.count:
        for key, events in sel.select():
            if key.data is None:
                try:
                    sock, peer = listener.accept()
                except BlockingIOError:
                    continue
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ, Connection(sock, peer))
                continue
            c = key.data
            try:
                if events & selectors.EVENT_READ and not c.peer_done:
                    data = c.sock.recv(65536)
                    if data:
                        c.pending += data
                    else:
                        c.peer_done = True
                if c.pending:
                    n = c.sock.send(c.pending)
                    del c.pending[:n]
                    c.echoed += n
            except BlockingIOError:
                pass
            except OSError as e:
                finish(c, f"failed: {e}")
                continue
            if c.peer_done and not c.pending:
                finish(c, "clean")
            elif c.pending:
                # Wait for room while holding back reading: the echo is the
                # back-pressure on the client.
                sel.modify(c.sock, selectors.EVENT_WRITE, c)
            else:
                sel.modify(c.sock, selectors.EVENT_READ, c)
    listener.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
