#!/usr/bin/env python3
"""Crafted TCP segments from a raw socket, for the attack tests. Inside the
test's own network namespace only, to the stack's address there.

    raw_tcp.py flood <dst_ip> <port> <subnet_prefix e.g. 10.77.0> <count>
        COUNT spoofed SYNs from random hosts .100-.250 of the subnet, which
        do not exist (nobody answers their SYN|ACKs). Prints "sent N".
    raw_tcp.py send <src_ip> <sport> <dst_ip> <dport> <seq> <ack> <flags> [<payload_len> [<tsval>]]
        One segment; FLAGS is a string of S (SYN), A (ACK), R (RST),
        F (FIN), P (PSH); with TSVAL it carries a timestamp option (that
        value, echo 0). Prints "sent 1".
"""
import random
import socket
import struct
import sys

FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def segment(src, dst, sport, dport, seq, ack, flags, payload=b"", tsval=None):
    options = b"" if tsval is None else struct.pack("!BBBBII", 1, 1, 8, 10, tsval & 0xFFFFFFFF, 0)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (5 + len(options) // 4) << 4, flags, 65535, 0, 0) + options + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0, 64, 6,
                     0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    if sys.argv[1] == "flood":
        dst, port, prefix, count = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
        sent = 0
        for _ in range(count):
            src = "%s.%d" % (prefix, random.randint(100, 250))
            pkt = segment(src, dst, random.randint(1024, 65535), port, random.getrandbits(32), 0,
                          FLAG_BITS["S"])
            try:
                s.sendto(pkt, (dst, 0))
                sent += 1
            except OSError:
                pass  # a full device queue: that SYN is lost, like on a wire
        print("sent", sent, flush=True)
    elif sys.argv[1] == "send":
        src, sport, dst, dport = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
        seq, ack = int(sys.argv[6]), int(sys.argv[7])
        flags = sum(FLAG_BITS[c] for c in sys.argv[8])
        payload = b"X" * (int(sys.argv[9]) if len(sys.argv) > 9 else 0)
        tsval = int(sys.argv[10]) if len(sys.argv) > 10 else None
        s.sendto(segment(src, dst, sport, dport, seq, ack, flags, payload, tsval), (dst, 0))
        print("sent 1", flush=True)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
