#!/usr/bin/env python3
"""A tiny HTTP server on rstcp: the standard library's
http.server.SimpleHTTPRequestHandler serves a directory over rstcp
sockets, a thread per connection.

    RSTCP_TUN=rt0 RSTCP_ADDR=10.77.0.2/24 python3 http_server.py [--port 8000] [--directory DIR]

Prints "serving HTTP on HOST:PORT"; with --count, exits after N connections.
"""

import argparse
import functools
import http.server
import os
import threading
import types

import rstcp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--directory", default=os.getcwd())
    ap.add_argument("--count", type=int, default=0, help="exit after this many connections")
    a = ap.parse_args()

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=a.directory)
    # What the handler reads of its server.
    server = types.SimpleNamespace(server_name="rstcp", server_port=a.port)

    def serve(conn: rstcp.socket, peer: tuple) -> None:
        with conn:
            try:
                handler(conn, peer, server)
                conn.shutdown(rstcp.SHUT_WR)
            except OSError:
                pass  # the client went away

    with rstcp.create_server(("", a.port)) as listener:
        host, port = listener.getsockname()
        print(f"serving HTTP on {host}:{port}", flush=True)
        threads = []
        while not a.count or len(threads) < a.count:
            conn, peer = listener.accept()
            t = threading.Thread(target=serve, args=(conn, peer))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
