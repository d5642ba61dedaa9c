//! The one error type of the crate, mapped one-to-one to errno at the FFI edge.

use std::fmt;

/// Everything a socket call can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// EBADF: not a descriptor of ours, or already closed.
    BadDescriptor,
    /// EFAULT: a null or unusable pointer.
    Fault,
    /// EINVAL: an argument or a call that makes no sense in this state.
    Invalid,
    /// EAFNOSUPPORT: not AF_INET.
    AddressFamily,
    /// EPROTONOSUPPORT: an unsupported protocol.
    ProtocolNotSupported,
    /// ESOCKTNOSUPPORT / EPROTOTYPE-like: an unsupported socket type.
    TypeNotSupported,
    /// EADDRINUSE: the local address is taken.
    AddressInUse,
    /// EADDRNOTAVAIL: the local address is not ours, or no ephemeral port is free.
    AddressNotAvailable,
    /// EISCONN: already connected.
    IsConnected,
    /// ENOTCONN: not connected.
    NotConnected,
    /// EOPNOTSUPP: the operation is not supported on this socket.
    OperationNotSupported,
    /// EALREADY: a connect is already under way.
    Already,
    /// EINPROGRESS: a non-blocking connect has started.
    InProgress,
    /// EAGAIN: would block.
    WouldBlock,
    /// ECONNREFUSED: the peer answered with RST.
    ConnectionRefused,
    /// ECONNRESET: the connection was reset.
    ConnectionReset,
    /// ETIMEDOUT: retransmissions gave up.
    TimedOut,
    /// EPIPE: writing after the write side was shut down.
    BrokenPipe,
    /// ENOPROTOOPT: an unknown socket option.
    NoProtocolOption,
    /// EMFILE: the descriptor table is full.
    TooManyFiles,
    /// ENOBUFS: out of buffer space.
    NoBuffers,
    /// ENETUNREACH: no route to the destination.
    NetworkUnreachable,
    /// EHOSTUNREACH: the host cannot be reached.
    HostUnreachable,
    /// EINTR: interrupted.
    Interrupted,
    /// EIO: an internal failure (for instance a caught panic, or the I/O thread stopped).
    Io,
    /// ENODEV: the TUN device could not be opened.
    NoDevice,
    /// EPERM: not permitted (for instance creating a TUN device without CAP_NET_ADMIN).
    Permission,
    /// EACCES: binding a privileged port, or similar.
    Access,
    /// ECONNABORTED: a failed connect whose error was already reported.
    ConnectionAborted,
    /// EDOM: a value out of its domain (a timeval with tv_usec ≥ 10^6).
    OutOfDomain,
    /// ENOENT: no such thing (an unknown TCP_CONGESTION algorithm).
    NotFound,
    /// EBUSY: a resource another process holds (the TUN device).
    Busy,
}

impl Error {
    /// The errno value libc would report.
    pub fn errno(self) -> i32 {
        use Error::*;
        match self {
            BadDescriptor => libc::EBADF,
            Fault => libc::EFAULT,
            Invalid => libc::EINVAL,
            AddressFamily => libc::EAFNOSUPPORT,
            ProtocolNotSupported => libc::EPROTONOSUPPORT,
            TypeNotSupported => libc::ESOCKTNOSUPPORT,
            AddressInUse => libc::EADDRINUSE,
            AddressNotAvailable => libc::EADDRNOTAVAIL,
            IsConnected => libc::EISCONN,
            NotConnected => libc::ENOTCONN,
            OperationNotSupported => libc::EOPNOTSUPP,
            Already => libc::EALREADY,
            InProgress => libc::EINPROGRESS,
            WouldBlock => libc::EAGAIN,
            ConnectionRefused => libc::ECONNREFUSED,
            ConnectionReset => libc::ECONNRESET,
            TimedOut => libc::ETIMEDOUT,
            BrokenPipe => libc::EPIPE,
            NoProtocolOption => libc::ENOPROTOOPT,
            TooManyFiles => libc::EMFILE,
            NoBuffers => libc::ENOBUFS,
            NetworkUnreachable => libc::ENETUNREACH,
            HostUnreachable => libc::EHOSTUNREACH,
            Interrupted => libc::EINTR,
            Io => libc::EIO,
            NoDevice => libc::ENODEV,
            Permission => libc::EPERM,
            Access => libc::EACCES,
            ConnectionAborted => libc::ECONNABORTED,
            OutOfDomain => libc::EDOM,
            NotFound => libc::ENOENT,
            Busy => libc::EBUSY,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = unsafe { std::ffi::CStr::from_ptr(libc::strerror(self.errno())) };
        write!(f, "{}", text.to_string_lossy())
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        std::io::Error::from_raw_os_error(e.errno())
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
