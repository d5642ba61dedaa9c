"""rstcp sockets with the interface of the standard library's socket.socket."""

from __future__ import annotations

import ctypes
import errno
import math
import os
import socket as _std
import time
import warnings
from typing import Any, Callable, Optional, Tuple, Union, overload

from . import _lib
from ._lib import lib

__all__ = [
    "socket",
    "create_connection",
    "create_server",
    "init",
    "getdefaulttimeout",
    "setdefaulttimeout",
]

Address = Tuple[str, int]

_default_timeout: Optional[float] = None

_GLOBAL_DEFAULT_TIMEOUT: Any = _std._GLOBAL_DEFAULT_TIMEOUT  # type: ignore[attr-defined]

_BLOCKING = (_lib.EAGAIN, _lib.EWOULDBLOCK)


def init(tun: Optional[str] = None, addr: Optional[str] = None, peer: Optional[str] = None) -> None:
    """Configures the stack before its first use: the TUN device's name, the
    stack's own address with prefix (``"10.77.0.2/24"``) and the kernel
    side's address on a device the library creates. ``None`` takes the
    environment's value (``RSTCP_TUN``, ``RSTCP_ADDR``, ``RSTCP_PEER``) or
    the default. Without this call the first socket call starts the stack
    from the environment. Raises OSError (EALREADY once the stack runs,
    EINVAL for a malformed value, EPERM / ENODEV for the device)."""

    def arg(v: Optional[str], what: str) -> Optional[bytes]:
        if v is None:
            return None
        if not isinstance(v, str):
            raise TypeError(f"{what} must be str or None, not {type(v).__name__}")
        if "\0" in v:
            raise ValueError(f"{what}: embedded null character")
        return v.encode()

    if lib.rs_init(arg(tun, "tun"), arg(addr, "addr"), arg(peer, "peer")) < 0:
        _lib.raise_errno()


def _check_timeout(value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    if not isinstance(value, (int, float)):
        raise TypeError("Timeout value must be int, float or None")
    t = float(value)
    if t < 0 or math.isnan(t):
        raise ValueError("Timeout value out of range")
    return t


def getdefaulttimeout() -> Optional[float]:
    """The timeout new rstcp sockets get (None: blocking), as
    socket.getdefaulttimeout() does for kernel sockets."""
    return _default_timeout


def setdefaulttimeout(timeout: Optional[float]) -> None:
    """Sets the timeout new rstcp sockets get."""
    global _default_timeout
    _default_timeout = _check_timeout(timeout)


def _timed_out() -> _std.timeout:
    return _std.timeout("timed out")


def _to_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            return value.__index__()
        except AttributeError:
            raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None
    return value


class socket:
    """A TCP socket of the rstcp stack, used like socket.socket.

    ``fileno()`` is an rstcp descriptor, not a kernel one: wait on it with
    :class:`rstcp.selectors.RstcpSelector`, not with the select or
    selectors modules.
    """

    def __init__(
        self,
        family: int = _std.AF_INET,
        type: int = _std.SOCK_STREAM,
        proto: int = 0,
        fileno: Optional[int] = None,
    ) -> None:
        self._fd = -1
        self._io_refs = 0
        self._closed = False
        self._timeout: Optional[float] = None
        if fileno is None:
            family = _to_int(family, "family")
            type = _to_int(type, "type")
            proto = _to_int(proto, "proto")
            fd = lib.rs_socket(family, type, proto)
            if fd < 0:
                _lib.raise_errno()
        else:
            fd = _to_int(fileno, "fileno")
            if fd < 0:
                raise ValueError("negative file descriptor")
            kind = ctypes.c_int(0)
            size = ctypes.c_uint32(4)
            # An rstcp descriptor, or EBADF.
            if lib.rs_getsockopt(fd, _std.SOL_SOCKET, _std.SO_TYPE, ctypes.byref(kind), size) < 0:
                _lib.raise_errno()
            family, type = _std.AF_INET, kind.value
        self._fd = fd
        self._family = family
        self._type = type & ~(_std.SOCK_NONBLOCK | _std.SOCK_CLOEXEC)
        self._proto = proto
        if type & _std.SOCK_NONBLOCK:
            self.settimeout(0.0)
        else:
            self.settimeout(_default_timeout)

    # --- attributes --------------------------------------------------------

    @property
    def family(self) -> _std.AddressFamily:
        """The address family: AF_INET."""
        return _std.AddressFamily(self._family)

    @property
    def type(self) -> _std.SocketKind:
        """The socket type: SOCK_STREAM."""
        return _std.SocketKind(self._type)

    @property
    def proto(self) -> int:
        """The protocol number given when the socket was made."""
        return self._proto

    @property
    def timeout(self) -> Optional[float]:
        """The timeout in seconds (None: blocking, 0.0: non-blocking)."""
        return self._timeout

    def fileno(self) -> int:
        """The rstcp descriptor, or -1 once closed. Not a kernel descriptor."""
        return self._fd

    def __repr__(self) -> str:
        s = (
            f"<rstcp.socket fd={self._fd}, family={self.family!s}, "
            f"type={self.type!s}, proto={self._proto}"
        )
        if self._fd >= 0:
            for what, get in (("laddr", self.getsockname), ("raddr", self.getpeername)):
                try:
                    s += f", {what}={get()}"
                except OSError:
                    pass
        return s + ">"

    def __enter__(self) -> "socket":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._closed:
            self.close()

    def __getstate__(self) -> None:
        raise TypeError(f"cannot pickle {self.__class__.__name__!r} object")

    def __del__(self) -> None:
        # As socket.socket: an unclosed socket is closed, with a warning.
        fd = getattr(self, "_fd", -1)
        if fd < 0:
            return
        what = repr(self)
        self._fd = -1
        try:
            warnings.warn(f"unclosed {what}", ResourceWarning, stacklevel=2, source=self)
        finally:
            if lib is not None:  # None late in interpreter shutdown
                lib.rs_close(fd)

    # --- the retry loops ---------------------------------------------------

    def _fileno_checked(self) -> int:
        if self._fd < 0:
            _lib.raise_errno(errno.EBADF)
        return self._fd

    def _wait(self, events: int, deadline: Optional[float]) -> None:
        """Waits with rs_poll until ``events`` (or an error) is signalled on
        the socket, until ``deadline`` (time.monotonic(); None: forever).
        Raises TimeoutError once it passes; signals as PEP 475 says."""
        pfd = _lib.PollFd(self._fileno_checked(), events, 0)
        while True:
            if deadline is None:
                ms = -1
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _timed_out()
                ms = min(int(math.ceil(left * 1000)), 2**31 - 1)
            pfd.revents = 0
            r = lib.rs_poll(ctypes.byref(pfd), 1, ms)
            if r < 0:
                err = ctypes.get_errno()
                if err == _lib.EINTR:
                    _lib.check_signals()
                    continue
                _lib.raise_errno(err)
            if r > 0:
                if pfd.revents & _std_POLLNVAL:
                    _lib.raise_errno(errno.EBADF)
                return

    def _call(self, events: int, func: Callable[..., int], *args: Any) -> int:
        """Calls ``func(fd, *args)`` the way CPython's socket module calls a
        system call: retried after EINTR once the signal handlers ran (an
        exception from one propagates), and with a timeout the socket is
        non-blocking inside and rs_poll waits for ``events`` until the
        deadline, which gives TimeoutError."""
        fd = self._fileno_checked()
        timeout = self._timeout
        deadline = None if not timeout else time.monotonic() + timeout
        while True:
            r = func(fd, *args)
            if r >= 0:
                return r
            err = ctypes.get_errno()
            if err == _lib.EINTR:
                _lib.check_signals()
                continue
            if deadline is not None and err in _BLOCKING:
                self._wait(events, deadline)
                continue
            _lib.raise_errno(err)

    def _set_nonblocking(self, on: bool) -> None:
        fd = self._fileno_checked()
        flags = lib.rs_fcntl(fd, _F_GETFL, 0)
        if flags < 0:
            _lib.raise_errno()
        want = (flags | os.O_NONBLOCK) if on else (flags & ~os.O_NONBLOCK)
        if want != flags and lib.rs_fcntl(fd, _F_SETFL, want) < 0:
            _lib.raise_errno()

    # --- timeouts ----------------------------------------------------------

    def settimeout(self, value: Optional[float]) -> None:
        """None: calls block; 0.0: non-blocking (BlockingIOError instead of
        waiting); a positive number: calls wait at most that many seconds,
        then raise TimeoutError (socket.timeout)."""
        t = _check_timeout(value)
        self._set_nonblocking(t is not None)
        self._timeout = t

    def gettimeout(self) -> Optional[float]:
        """The timeout in seconds, or None."""
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        """setblocking(True) is settimeout(None), setblocking(False) is
        settimeout(0.0)."""
        self.settimeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        """False when the socket has a timeout of 0.0."""
        return self._timeout != 0.0

    # --- connections -------------------------------------------------------

    def bind(self, address: Address) -> None:
        """Binds to ``(host, port)``: the stack's address or "" (any)."""
        sa = _lib.sockaddr(address)
        if lib.rs_bind(self._fileno_checked(), sa, _lib.SOCKADDR_LEN) < 0:
            _lib.raise_errno()

    def listen(self, backlog: Optional[int] = None) -> None:
        """Listens; ``backlog`` defaults to min(SOMAXCONN, 128)."""
        if backlog is None:
            backlog = min(_std.SOMAXCONN, 128)
        backlog = max(_to_int(backlog, "backlog"), 0)
        if lib.rs_listen(self._fileno_checked(), min(backlog, 2**31 - 1)) < 0:
            _lib.raise_errno()

    def _accept(self) -> Tuple[int, Address]:
        buf = ctypes.create_string_buffer(_lib.SOCKADDR_LEN)
        size = ctypes.c_uint32(_lib.SOCKADDR_LEN)
        fd = self._call(_std_POLLIN, lib.rs_accept4, buf, ctypes.byref(size), _std.SOCK_CLOEXEC)
        return fd, _lib.parse_sockaddr(buf)

    def accept(self) -> Tuple["socket", Address]:
        """Waits for a connection: ``(new socket, (peer host, peer port))``.
        The new socket has the default timeout (getdefaulttimeout()), as
        with the socket module."""
        fd, addr = self._accept()
        try:
            conn = socket(self._family, self._type, self._proto, fileno=fd)
        except BaseException:
            lib.rs_close(fd)
            raise
        return conn, addr

    def _connect(self, address: Address) -> int:
        """connect(); 0 or the errno of the failure (signals and timeouts
        raise)."""
        sa = _lib.sockaddr(address)
        fd = self._fileno_checked()
        if lib.rs_connect(fd, sa, _lib.SOCKADDR_LEN) == 0:
            return 0
        err = ctypes.get_errno()
        if err == _lib.EINTR:
            # The handshake goes on: wait for it unless non-blocking (PEP 475).
            _lib.check_signals()
            if self._timeout == 0.0:
                return err
        elif not (err == _lib.EINPROGRESS and self._timeout):
            return err
        timeout = self._timeout
        self._wait(_std_POLLOUT, None if timeout is None else time.monotonic() + timeout)
        return self.getsockopt(_std.SOL_SOCKET, _std.SO_ERROR)

    def connect(self, address: Address) -> None:
        """Connects to ``(host, port)``. Raises ConnectionRefusedError,
        TimeoutError (with a timeout), BlockingIOError (EINPROGRESS, when
        non-blocking), …"""
        err = self._connect(address)
        if err:
            _lib.raise_errno(err)

    def connect_ex(self, address: Address) -> int:
        """Like connect(), but returns the errno instead of raising (0 on
        success; EINPROGRESS when non-blocking). A timeout returns EAGAIN,
        as the socket module's connect_ex does."""
        try:
            return self._connect(address)
        except _std.timeout:
            return _lib.EAGAIN

    def getsockname(self) -> Address:
        """The local ``(host, port)``."""
        return self._name(lib.rs_getsockname)

    def getpeername(self) -> Address:
        """The peer's ``(host, port)``; OSError ENOTCONN when not connected."""
        return self._name(lib.rs_getpeername)

    def _name(self, func: Callable[..., int]) -> Address:
        buf = ctypes.create_string_buffer(_lib.SOCKADDR_LEN)
        size = ctypes.c_uint32(_lib.SOCKADDR_LEN)
        if func(self._fileno_checked(), buf, ctypes.byref(size)) < 0:
            _lib.raise_errno()
        return _lib.parse_sockaddr(buf)

    # --- data --------------------------------------------------------------

    def send(self, data: Any, flags: int = 0) -> int:
        """Sends what of ``data`` fits now (at least one byte when blocking);
        returns how many bytes. BrokenPipeError after the peer went away or
        shutdown(SHUT_WR); SIGPIPE is never raised."""
        addr, n, keep = _lib.buffer_address(data, writable=False)
        flags = _to_int(flags, "flags") | _std.MSG_NOSIGNAL
        r = self._call(_std_POLLOUT, lib.rs_send, addr, n, flags)
        del keep
        return r

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Sends all of ``data``. With a timeout, that is the time for all of
        it. On an error it is unknown how much was sent."""
        addr, n, keep = _lib.buffer_address(data, writable=False)
        flags = _to_int(flags, "flags") | _std.MSG_NOSIGNAL
        timeout = self._timeout
        deadline = None if not timeout else time.monotonic() + timeout
        sent = 0
        fd = self._fileno_checked()
        while True:
            r = lib.rs_send(fd, addr + sent, n - sent, flags)
            if r >= 0:
                sent += r
                if sent >= n:
                    break
                # A partial send may be a signal's doing: its handler runs now.
                _lib.check_signals()
                continue
            err = ctypes.get_errno()
            if err == _lib.EINTR:
                _lib.check_signals()
            elif deadline is not None and err in _BLOCKING:
                self._wait(_std_POLLOUT, deadline)
            else:
                _lib.raise_errno(err)
        del keep

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receives up to ``bufsize`` bytes; b"" at the end of the stream."""
        bufsize = _to_int(bufsize, "bufsize")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        buf = ctypes.create_string_buffer(bufsize)
        n = self._call(_std_POLLIN, lib.rs_recv, buf, bufsize, _to_int(flags, "flags"))
        return buf.raw[:n]

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receives into a writable buffer (up to ``nbytes``, or its size);
        returns how many bytes (0 at the end of the stream)."""
        nbytes = _to_int(nbytes, "nbytes")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        addr, size, keep = _lib.buffer_address(buffer, writable=True)
        if nbytes == 0:
            nbytes = size
        elif nbytes > size:
            raise ValueError("buffer too small for requested bytes")
        r = self._call(_std_POLLIN, lib.rs_recv, addr, nbytes, _to_int(flags, "flags"))
        del keep
        return r

    def shutdown(self, how: int) -> None:
        """SHUT_RD, SHUT_WR (sends FIN: the peer reads the end of the
        stream) or SHUT_RDWR."""
        if lib.rs_shutdown(self._fileno_checked(), _to_int(how, "how")) < 0:
            _lib.raise_errno()

    # --- options -----------------------------------------------------------

    def setsockopt(self, level: int, optname: int, value: Any, optlen: Optional[int] = None) -> None:
        """setsockopt(level, optname, int or bytes-like) or
        setsockopt(level, optname, None, optlen), as the socket module."""
        fd = self._fileno_checked()
        level = _to_int(level, "level")
        optname = _to_int(optname, "optname")
        if value is None:
            if optlen is None:
                raise TypeError("setsockopt() takes an int or bytes-like value, or None with optlen")
            r = lib.rs_setsockopt(fd, level, optname, None, _to_int(optlen, "optlen"))
        elif isinstance(value, int):
            v = ctypes.c_int(value)
            r = lib.rs_setsockopt(fd, level, optname, ctypes.byref(v), 4)
        else:
            addr, n, keep = _lib.buffer_address(value, writable=False)
            r = lib.rs_setsockopt(fd, level, optname, addr, n)
            del keep
        if r < 0:
            _lib.raise_errno()

    @overload
    def getsockopt(self, level: int, optname: int) -> int: ...

    @overload
    def getsockopt(self, level: int, optname: int, buflen: int) -> bytes: ...

    def getsockopt(self, level: int, optname: int, buflen: Optional[int] = None) -> Union[int, bytes]:
        """An int option, or with ``buflen`` the option's bytes (at most
        that many), as the socket module."""
        fd = self._fileno_checked()
        level = _to_int(level, "level")
        optname = _to_int(optname, "optname")
        if buflen is None:
            v = ctypes.c_int(0)
            size = ctypes.c_uint32(4)
            if lib.rs_getsockopt(fd, level, optname, ctypes.byref(v), ctypes.byref(size)) < 0:
                _lib.raise_errno()
            return v.value
        buflen = _to_int(buflen, "buflen")
        if not 0 < buflen <= 1024:
            raise OSError("getsockopt buflen out of range")
        buf = ctypes.create_string_buffer(buflen)
        size = ctypes.c_uint32(buflen)
        if lib.rs_getsockopt(fd, level, optname, buf, ctypes.byref(size)) < 0:
            _lib.raise_errno()
        return buf.raw[: size.value]

    # --- closing and files -------------------------------------------------

    def close(self) -> None:
        """Closes the socket (once every makefile() object is closed too).
        The connection closes in the background: the data sent still goes
        out, then FIN."""
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _real_close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0 and lib.rs_close(fd) < 0:
            err = ctypes.get_errno()
            if err != errno.ECONNRESET:
                _lib.raise_errno(err)

    def detach(self) -> int:
        """Marks the socket closed without closing its descriptor, and
        returns the descriptor."""
        self._closed = True
        fd, self._fd = self._fd, -1
        return fd

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def makefile(
        self,
        mode: str = "r",
        buffering: Optional[int] = None,
        *,
        encoding: Optional[str] = None,
        errors: Optional[str] = None,
        newline: Optional[str] = None,
    ) -> Any:
        """A file object over the socket, exactly as socket.socket.makefile
        (modes "r", "w", "b"; the socket closes when it and every file are
        closed)."""
        make = _std.socket.makefile
        return make(self, mode, buffering, encoding=encoding, errors=errors, newline=newline)  # type: ignore


_F_GETFL = 3
_F_SETFL = 4
_std_POLLIN = 0x001
_std_POLLOUT = 0x004
_std_POLLNVAL = 0x020


def create_connection(
    address: Tuple[str, int],
    timeout: Optional[float] = _GLOBAL_DEFAULT_TIMEOUT,
    source_address: Optional[Address] = None,
) -> socket:
    """Connects an rstcp socket to ``(host, port)`` and returns it, as
    socket.create_connection: ``timeout`` applies to the connect and stays
    the socket's timeout; ``source_address`` binds first."""
    host, port = address
    sock = socket()
    try:
        if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
            sock.settimeout(timeout)
        if source_address is not None:
            sock.bind(source_address)
        sock.connect((host, port))
        return sock
    except BaseException:
        sock.close()
        raise


def create_server(
    address: Address, *, backlog: Optional[int] = None, reuse_port: bool = False
) -> socket:
    """A listening rstcp socket bound to ``address`` with SO_REUSEADDR, as
    socket.create_server (IPv4 only; reuse_port is not supported)."""
    if reuse_port:
        raise ValueError("SO_REUSEPORT not supported by rstcp")
    sock = socket()
    try:
        sock.setsockopt(_std.SOL_SOCKET, _std.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise
