"""Loading librstcp.so and calling its ``rs_*`` functions through ctypes.

The library is found at ``$RSTCP_LIB`` if that is set, else next to this
package (``rstcp/librstcp.so``), else on the dynamic linker's search path
(``LD_LIBRARY_PATH``, ``ldconfig``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket as _std
import struct
from typing import Any, Callable, List, NoReturn, Optional, Tuple

__all__ = [
    "lib",
    "lib_path",
    "raise_errno",
    "check_signals",
    "sockaddr",
    "parse_sockaddr",
    "buffer_address",
    "PollFd",
]

_SOCKADDR_IN = struct.Struct("=H2s4s8x")  # family (host order), port, address
SOCKADDR_LEN = _SOCKADDR_IN.size  # 16


class PollFd(ctypes.Structure):
    """``struct pollfd``."""

    _fields_ = [
        ("fd", ctypes.c_int),
        ("events", ctypes.c_short),
        ("revents", ctypes.c_short),
    ]


def _candidates() -> List[str]:
    explicit = os.environ.get("RSTCP_LIB")
    if explicit:
        return [explicit]
    found = []
    beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), "librstcp.so")
    if os.path.exists(beside):
        found.append(beside)
    found.append("librstcp.so")  # dlopen's own search: LD_LIBRARY_PATH, ld.so.cache
    other = ctypes.util.find_library("rstcp")
    if other and other != "librstcp.so":
        found.append(other)
    return found


def _load() -> Tuple[ctypes.CDLL, str]:
    errors = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path, use_errno=True), path
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError(
        "rstcp: cannot load librstcp.so (set RSTCP_LIB to its path, e.g. "
        "target/release/librstcp.so after `cargo build --release`): " + "; ".join(errors)
    )


lib, lib_path = _load()

_c_int = ctypes.c_int
_ptr = ctypes.c_void_p
_socklen_p = ctypes.POINTER(ctypes.c_uint32)

for _name, _res, _args in [
    ("rs_init", _c_int, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]),
    ("rs_socket", _c_int, [_c_int, _c_int, _c_int]),
    ("rs_bind", _c_int, [_c_int, _ptr, ctypes.c_uint32]),
    ("rs_listen", _c_int, [_c_int, _c_int]),
    ("rs_accept4", _c_int, [_c_int, _ptr, _socklen_p, _c_int]),
    ("rs_connect", _c_int, [_c_int, _ptr, ctypes.c_uint32]),
    ("rs_send", ctypes.c_ssize_t, [_c_int, _ptr, ctypes.c_size_t, _c_int]),
    ("rs_recv", ctypes.c_ssize_t, [_c_int, _ptr, ctypes.c_size_t, _c_int]),
    ("rs_close", _c_int, [_c_int]),
    ("rs_shutdown", _c_int, [_c_int, _c_int]),
    ("rs_getsockname", _c_int, [_c_int, _ptr, _socklen_p]),
    ("rs_getpeername", _c_int, [_c_int, _ptr, _socklen_p]),
    ("rs_setsockopt", _c_int, [_c_int, _c_int, _c_int, _ptr, ctypes.c_uint32]),
    ("rs_getsockopt", _c_int, [_c_int, _c_int, _c_int, _ptr, _socklen_p]),
    ("rs_fcntl", _c_int, [_c_int, _c_int, _c_int]),
    ("rs_poll", _c_int, [ctypes.POINTER(PollFd), ctypes.c_ulong, _c_int]),
]:
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def raise_errno(err: Optional[int] = None) -> NoReturn:
    """Raises the OSError subclass for ``err`` (default: the C errno of
    the last ``rs_*`` call on this thread), as the socket module does."""
    if err is None:
        err = ctypes.get_errno()
    raise OSError(err, os.strerror(err))


def _no_check() -> int:
    return 0


_py_check_signals: Callable[[], int]
try:
    _py_check_signals = ctypes.pythonapi.PyErr_CheckSignals
    _py_check_signals.argtypes = []
    _py_check_signals.restype = ctypes.c_int
except (AttributeError, ValueError):  # not CPython
    _py_check_signals = _no_check


def check_signals() -> None:
    """Runs the Python signal handlers that are due, after a call ended with
    EINTR: an exception a handler raises (KeyboardInterrupt for Ctrl-C)
    propagates from here. ``ctypes.pythonapi`` holds the GIL and raises the
    error PyErr_CheckSignals leaves set."""
    _py_check_signals()


def _ipv4(host: Any) -> bytes:
    if not isinstance(host, str):
        if isinstance(host, (bytes, bytearray)):
            host = bytes(host).decode("idna")
        else:
            raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if host == "":
        return b"\0\0\0\0"
    if host == "<broadcast>":
        return b"\xff\xff\xff\xff"
    try:
        return _std.inet_pton(_std.AF_INET, host)
    except OSError:
        # A name: the system's resolver answers (through the kernel's network).
        return _std.inet_aton(_std.gethostbyname(host))


def sockaddr(address: Any) -> "ctypes.Array[ctypes.c_char]":
    """A ``struct sockaddr_in`` for ``(host, port)``, as the socket module
    takes it (a name is resolved with the system's resolver)."""
    if not isinstance(address, tuple):
        raise TypeError(f"AF_INET address must be tuple, not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    host, port = address
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 0xFFFF:
        raise OverflowError("connect(): port must be 0-65535.")
    raw = _SOCKADDR_IN.pack(_std.AF_INET, port.to_bytes(2, "big"), _ipv4(host))
    return ctypes.create_string_buffer(raw, SOCKADDR_LEN)


def parse_sockaddr(buf: "ctypes.Array[ctypes.c_char]") -> Tuple[str, int]:
    """``(host, port)`` from a ``struct sockaddr_in``."""
    _family, port, addr = _SOCKADDR_IN.unpack(buf.raw[:SOCKADDR_LEN])
    return _std.inet_ntop(_std.AF_INET, addr), int.from_bytes(port, "big")


def buffer_address(data: Any, writable: bool) -> Tuple[int, int, Any]:
    """``(address, length, keep)`` of a bytes-like object's memory, without
    copying it (a read-only buffer other than ``bytes`` is copied once);
    ``keep`` must stay referenced while the address is used. Raises
    TypeError for objects that are not bytes-like (or not writable when
    ``writable``)."""
    if not writable and isinstance(data, bytes):
        addr = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
        return (addr or 0), len(data), data
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    n = view.nbytes
    if view.readonly:
        if writable:
            raise TypeError("buffer is not writable")
        return buffer_address(view.tobytes(), False)
    if n == 0:
        return 0, 0, view
    arr = (ctypes.c_char * n).from_buffer(view)
    return ctypes.addressof(arr), n, arr


# errno values the retry loops look at.
EINTR = errno.EINTR
EAGAIN = errno.EAGAIN
EWOULDBLOCK = errno.EWOULDBLOCK
EINPROGRESS = errno.EINPROGRESS
