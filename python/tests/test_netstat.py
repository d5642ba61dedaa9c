"""rstcp.netstat(): this process's sockets, as rs_netstat and rstcp-stat
see them."""

from __future__ import annotations

import rstcp
from conftest import KERNEL_IP, RSTCP_IP


def _peer(conn):
    # Stays connected until the client's last word, so the connection is
    # ESTABLISHED while the table is read.
    conn.sendall(b"unread")
    got = b""
    while not got.endswith(b"bye"):
        data = conn.recv(100)
        if not data:
            break
        got += data


def test_netstat_lists_a_listener_and_a_connection_with_its_figures(kernel_server):
    srv = kernel_server(_peer)
    with rstcp.create_server((RSTCP_IP, 0)) as ls, rstcp.create_connection(srv.address) as s:
        s.sendall(b"hello")
        # The kernel's "unread" arrives; nobody reads it.
        sel = rstcp.selectors.RstcpSelector()
        sel.register(s, rstcp.selectors.EVENT_READ)
        assert sel.select(5)
        rows = {r.fd: r for r in rstcp.netstat()}
        lr = rows[ls.fileno()]
        assert (lr.state, lr.local) == ("LISTEN", ls.getsockname())
        cr = rows[s.fileno()]
        assert cr.state == "ESTABLISHED"
        assert cr.peer == (KERNEL_IP, srv.port)
        assert cr.local == s.getsockname()
        assert cr.recv_q == 6
        assert cr.snd_mss > 0 and cr.snd_cwnd > 0 and cr.rto_us >= 200_000
        # Read before closing: a close with unread data resets (as Linux).
        assert s.recv(6) == b"unread"
        s.sendall(b"bye")
    # Closed: gone from the table, or left finishing without a descriptor.
    assert all(r.fd != -1 or r.state != "LISTEN" for r in rstcp.netstat())
