"""This process's rstcp sockets, as ``ss -tn`` lists the kernel's: the
table ``rs_netstat`` fills (and ``rstcp-stat`` shows for every process)."""

from __future__ import annotations

import ctypes
import socket as _std
from typing import List, NamedTuple, Tuple

from ._lib import lib, raise_errno

__all__ = ["SockInfo", "netstat", "STATES"]

#: Linux's TCP state numbers (as in ``tcp_info``) by name.
STATES = {
    1: "ESTABLISHED",
    2: "SYN-SENT",
    3: "SYN-RECEIVED",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "CLOSED",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
}


class _SockaddrIn(ctypes.Structure):
    _fields_ = [
        ("family", ctypes.c_uint16),
        ("port", ctypes.c_uint16),  # network byte order
        ("addr", ctypes.c_uint8 * 4),
        ("zero", ctypes.c_uint8 * 8),
    ]

    def pair(self) -> Tuple[str, int]:
        return _std.inet_ntoa(bytes(self.addr)), _std.ntohs(self.port)


class _RsSockInfo(ctypes.Structure):
    """``struct rs_sockinfo`` of rstcp.h."""

    _fields_ = [
        ("fd", ctypes.c_int),
        ("state", ctypes.c_int),
        ("recv_q", ctypes.c_uint32),
        ("send_q", ctypes.c_uint32),
        ("local", _SockaddrIn),
        ("peer", _SockaddrIn),
        ("rtt_us", ctypes.c_uint32),
        ("rttvar_us", ctypes.c_uint32),
        ("min_rtt_us", ctypes.c_uint32),
        ("rto_us", ctypes.c_uint32),
        ("snd_mss", ctypes.c_uint32),
        ("snd_cwnd", ctypes.c_uint32),
        ("snd_ssthresh", ctypes.c_uint32),
        ("unacked", ctypes.c_uint32),
        ("sacked", ctypes.c_uint32),
        ("lost", ctypes.c_uint32),
        ("total_retrans", ctypes.c_uint32),
    ]


class SockInfo(NamedTuple):
    """One socket: its rstcp descriptor (-1 for none: in an accept queue,
    or closed and finishing), its state, queues, addresses and the
    TCP_INFO figures of a connection (zero otherwise)."""

    fd: int
    state: str
    recv_q: int
    send_q: int
    local: Tuple[str, int]
    peer: Tuple[str, int]
    rtt_us: int
    rttvar_us: int
    min_rtt_us: int
    rto_us: int
    snd_mss: int
    snd_cwnd: int
    snd_ssthresh: int
    unacked: int
    sacked: int
    lost: int
    total_retrans: int


lib.rs_netstat.restype = ctypes.c_int
lib.rs_netstat.argtypes = [ctypes.POINTER(_RsSockInfo), ctypes.c_int]


def netstat() -> List[SockInfo]:
    """Every socket of this process's stack, ordered by descriptor."""
    room = 16
    while True:
        rows = (_RsSockInfo * room)()
        n = lib.rs_netstat(rows, room)
        if n < 0:
            raise_errno()
        if n <= room:
            break
        room = n + 16  # sockets came meanwhile: ask again with room
    out = []
    for r in rows[:n]:
        out.append(
            SockInfo(
                r.fd,
                STATES.get(r.state, str(r.state)),
                r.recv_q,
                r.send_q,
                r.local.pair(),
                r.peer.pair(),
                r.rtt_us,
                r.rttvar_us,
                r.min_rtt_us,
                r.rto_us,
                r.snd_mss,
                r.snd_cwnd,
                r.snd_ssthresh,
                r.unacked,
                r.sacked,
                r.lost,
                r.total_retrans,
            )
        )
    return out
