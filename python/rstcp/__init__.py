"""rstcp from Python: TCP sockets of the rstcp user-space stack, with the
interface of the standard library's ``socket.socket``.

    import rstcp
    with rstcp.create_connection(("10.77.0.1", 7)) as s:
        s.sendall(b"hello")
        print(s.recv(100))

The library (librstcp.so) is loaded from ``$RSTCP_LIB``, else next to this
package, else the dynamic linker's search path. The stack starts on first
use, configured from the environment (``RSTCP_TUN``, ``RSTCP_ADDR``, …) or
by :func:`rstcp.init`. Errors raise the socket module's exceptions
(OSError subclasses by errno; TimeoutError, i.e. socket.timeout, when a
timeout expires).
"""

from socket import (
    AF_INET,
    IPPROTO_TCP,
    MSG_DONTWAIT,
    MSG_NOSIGNAL,
    MSG_PEEK,
    MSG_WAITALL,
    SHUT_RD,
    SHUT_RDWR,
    SHUT_WR,
    SO_ACCEPTCONN,
    SO_ERROR,
    SO_KEEPALIVE,
    SO_LINGER,
    SO_RCVBUF,
    SO_RCVTIMEO,
    SO_REUSEADDR,
    SO_SNDBUF,
    SO_SNDTIMEO,
    SO_TYPE,
    SOCK_CLOEXEC,
    SOCK_NONBLOCK,
    SOCK_STREAM,
    SOL_SOCKET,
    SOMAXCONN,
    TCP_CONGESTION,
    TCP_INFO,
    TCP_KEEPCNT,
    TCP_KEEPIDLE,
    TCP_KEEPINTVL,
    TCP_MAXSEG,
    TCP_NODELAY,
    TCP_USER_TIMEOUT,
    timeout,
)

from . import _socket, selectors
from ._lib import lib_path
from ._netstat import SockInfo, netstat
from ._socket import (
    create_connection,
    create_server,
    getdefaulttimeout,
    init,
    setdefaulttimeout,
    socket,
)

error = OSError

__version__ = "0.1.0"

__all__ = _socket.__all__ + ["selectors", "lib_path", "error", "timeout", "netstat", "SockInfo"]
__all__ += sorted(name for name in dir() if name.isupper())
