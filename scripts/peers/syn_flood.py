#!/usr/bin/env python3
"""Sends COUNT spoofed TCP SYNs to DST:PORT from random hosts of SUBNET
(a /24 given as its first three octets), through a raw socket, as fast as it
can. For the SYN-flood test, inside the test's own network namespace only.

    syn_flood.py <dst_ip> <port> <subnet_prefix e.g. 10.77.0> <count>

Prints "sent N" when done.
"""
import random
import socket
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def syn(src, dst, sport, dport, seq):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0, 64, 6,
                     0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def main():
    dst, port, prefix, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = 0
    for _ in range(count):
        # Hosts .100-.250 of the test subnet: nobody is there to answer.
        src = "%s.%d" % (prefix, random.randint(100, 250))
        pkt = syn(src, dst, random.randint(1024, 65535), port, random.getrandbits(32))
        try:
            s.sendto(pkt, (dst, 0))
            sent += 1
        except OSError:
            pass  # a full device queue: that SYN is lost, like on a wire
    print("sent", sent, flush=True)


if __name__ == "__main__":
    main()
