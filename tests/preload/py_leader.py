"""Under the shim: 100 requests awaited in epoll (selectors) and 100 in
poll(), against a kernel echo server that answers after a millisecond.
The thread waiting is the one that waits on the TUN device, so it takes
the answers in itself: the stack's counter of packets taken in by callers
(read with rstcp-stat -s) must have grown by about one per answer.

    py_leader.py <echo_ip> <echo_port> <rstcp-stat>
"""
import os
import select
import selectors
import socket
import subprocess
import sys


def taken_in(stat):
    out = subprocess.run(
        [stat, "-s", "-p", str(os.getpid())], capture_output=True, text=True, check=True
    ).stdout
    for line in out.splitlines():
        number, _, name = line.strip().partition(" ")
        if name == "packets received by callers":
            return int(number)
    raise SystemExit("no packets_received_by_callers in:\n" + out)


def exchange(s, wait):
    for i in range(100):
        msg = bytes([i]) * 100
        s.sendall(msg)
        got = b""
        while len(got) < 100:
            wait()
            got += s.recv(100 - len(got))
        assert got == msg, (i, got)


def main():
    host, port, stat = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    passed = 0
    for name, wait in [("epoll", None), ("poll", None)]:
        if name == "epoll":
            sel = selectors.EpollSelector()
            sel.register(s, selectors.EVENT_READ)
            wait = sel.select
        else:
            p = select.poll()
            p.register(s, select.POLLIN)
            wait = p.poll
        before = taken_in(stat)
        exchange(s, wait)
        taken = taken_in(stat) - before
        ok = taken >= 90
        print(f"{name}: {taken} of 100 answers taken in by the waiting thread", flush=True)
        if not ok:
            print(f"FAIL {name}", flush=True)
        passed += ok
    s.close()
    print(f"py_leader: {passed} passed, {2 - passed} failed", flush=True)


if __name__ == "__main__":
    main()
