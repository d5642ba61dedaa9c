//! The C ABI: `rs_*` calls with the arguments, return values and errno of
//! the libc calls of the same names. `build.rs` turns this file's
//! signatures into `include/rstcp.h`.

pub mod guard;
pub mod netstat;
pub mod sockaddr;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::time::Duration;

use crate::api::options::SockOptName;
use crate::api::{self, MsgFlags, PollFd, Shutdown, SockOpt, Sockets};
use crate::error::{Error, Result};
use crate::runtime::config::parse_cidr;
use crate::runtime::RuntimeConfig;
use guard::call;

/// The largest socket type Linux knows (SOCK_PACKET, 10); past it, EINVAL.
const SOCK_MAX_TYPE: c_int = 10;

/// Flags socket() accepts besides the type.
const TYPE_FLAGS: c_int = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;

fn opt_str(p: *const c_char) -> Result<Option<String>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller passes a NUL-terminated string or NULL.
    let s = unsafe { CStr::from_ptr(p) };
    Ok(Some(s.to_str().map_err(|_| Error::Invalid)?.to_owned()))
}

/// Configures the stack before first use and starts it: TUN device name,
/// own address with prefix ("10.77.0.2/24") and the kernel side's address;
/// NULL means the environment's value or the default (a value given here
/// replaces a malformed variable). Returns 0, or -1 with errno (EALREADY
/// once the stack runs, EINVAL for malformed values, ENODEV / EPERM /
/// EBUSY when the device cannot be had — explained on stderr). After a
/// failed start, whether from rs_init or the first call, rs_init may be
/// called again.
#[no_mangle]
pub extern "C" fn rs_init(
    tun_name: *const c_char,
    addr_cidr: *const c_char,
    peer_addr: *const c_char,
) -> c_int {
    call("rs_init", || {
        let given = [
            (!tun_name.is_null()).then_some("RSTCP_TUN"),
            (!addr_cidr.is_null()).then_some("RSTCP_ADDR"),
            (!peer_addr.is_null()).then_some("RSTCP_PEER"),
        ];
        let skip: Vec<&str> = given.into_iter().flatten().collect();
        let mut cfg = RuntimeConfig::from_vars(|n| std::env::var(n).ok(), &skip)?;
        if let Some(t) = opt_str(tun_name)? {
            if t.is_empty() || t.len() > 15 {
                return Err(Error::Invalid);
            }
            cfg.tun = t;
        }
        if let Some(a) = opt_str(addr_cidr)? {
            (cfg.addr, cfg.prefix_len) = parse_cidr(&a)?;
        }
        if let Some(p) = opt_str(peer_addr)? {
            cfg.peer = Some(p.parse().map_err(|_| Error::Invalid)?);
        }
        api::init(cfg)?;
        Ok(0)
    })
}

/// socket(2): AF_INET + SOCK_STREAM (with SOCK_NONBLOCK / SOCK_CLOEXEC).
/// Returns an rstcp descriptor, not a kernel one; the first call starts
/// the stack.
#[no_mangle]
pub extern "C" fn rs_socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int {
    call("rs_socket", || {
        socket_args(domain, kind, protocol)?;
        socket_on(api::global()?, kind, None)
    })
}

/// The checks of [`rs_socket`]'s arguments, in Linux's order.
pub(crate) fn socket_args(domain: c_int, kind: c_int, protocol: c_int) -> Result<()> {
    if domain != libc::AF_INET {
        return Err(Error::AddressFamily);
    }
    // Linux's order: unknown flags or types past SOCK_PACKET are
    // EINVAL; a type IPv4 lacks is ESOCKTNOSUPPORT; one it has but
    // rstcp does not (UDP, raw) EPROTONOSUPPORT.
    let ty = kind & 0xf;
    if kind & !(0xf | TYPE_FLAGS) != 0 || ty > SOCK_MAX_TYPE {
        return Err(Error::Invalid);
    }
    if ty != libc::SOCK_STREAM {
        return Err(match ty {
            libc::SOCK_DGRAM | libc::SOCK_RAW => Error::ProtocolNotSupported,
            _ => Error::TypeNotSupported,
        });
    }
    if protocol != 0 && protocol != libc::IPPROTO_TCP {
        return Err(Error::ProtocolNotSupported);
    }
    Ok(())
}

/// The end of [`rs_socket`] once the arguments are checked: a socket on
/// `s` under descriptor `fd` (or the lowest free), with `kind`'s
/// SOCK_NONBLOCK and SOCK_CLOEXEC.
pub(crate) fn socket_on(s: &Sockets, kind: c_int, fd: Option<c_int>) -> Result<c_int> {
    let fd = s.socket(kind & libc::SOCK_NONBLOCK != 0, fd)?;
    s.set_cloexec(fd, kind & libc::SOCK_CLOEXEC != 0)?;
    Ok(fd)
}

/// bind(2): to 0.0.0.0 or the stack's own address only (another is
/// EADDRNOTAVAIL).
///
/// # Safety
/// `addr` must be NULL or point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rs_bind(
    fd: c_int,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> c_int {
    // SAFETY: per this function's contract.
    call("rs_bind", || unsafe {
        bind_on(api::global()?, fd, addr, len)
    })
}

/// [`rs_bind`] on the sockets `s`.
///
/// # Safety
/// As for [`rs_bind`].
pub(crate) unsafe fn bind_on(
    s: &Sockets,
    fd: c_int,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> Result<c_int> {
    s.check_fd(fd)?;
    // SAFETY: per this function's contract.
    let a = unsafe { sockaddr::read(addr, len) }?;
    s.bind(fd, a).map(|_| 0)
}

/// listen(2): the backlog (1..=4096) bounds the SYN queue and the accept
/// queue each; a full SYN queue answers with SYN cookies.
#[no_mangle]
pub extern "C" fn rs_listen(fd: c_int, backlog: c_int) -> c_int {
    call("rs_listen", || {
        api::global()?.listen(fd, backlog).map(|_| 0)
    })
}

/// accept(2): the new descriptor is an rstcp descriptor.
///
/// # Safety
/// `addr` must be NULL or writable for `*len` bytes; `len` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn rs_accept(
    fd: c_int,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> c_int {
    // SAFETY: same contract.
    unsafe { rs_accept4(fd, addr, len, 0) }
}

/// accept4(2): `flags` may hold SOCK_NONBLOCK and SOCK_CLOEXEC.
///
/// # Safety
/// `addr` must be NULL or writable for `*len` bytes; `len` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn rs_accept4(
    fd: c_int,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: per this function's contract.
    call("rs_accept4", || unsafe {
        accept4_on(api::global()?, fd, addr, len, flags, None)
    })
}

/// [`rs_accept4`] on the sockets `s`; the new socket gets descriptor
/// `new_fd` if given (else the lowest free).
///
/// # Safety
/// As for [`rs_accept4`].
pub(crate) unsafe fn accept4_on(
    s: &Sockets,
    fd: c_int,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    flags: c_int,
    new_fd: Option<c_int>,
) -> Result<c_int> {
    s.check_fd(fd)?;
    if flags & !TYPE_FLAGS != 0 {
        return Err(Error::Invalid);
    }
    if !addr.is_null() && len.is_null() {
        return Err(Error::Fault);
    }
    let (nfd, peer) = s.accept(fd, flags & libc::SOCK_NONBLOCK != 0, new_fd)?;
    s.set_cloexec(nfd, flags & libc::SOCK_CLOEXEC != 0)?;
    // SAFETY: per this function's contract.
    if let Err(e) = unsafe { sockaddr::write(peer, addr, len) } {
        let _ = s.close(nfd);
        return Err(e);
    }
    Ok(nfd)
}

/// connect(2): EINPROGRESS for non-blocking sockets; completion shows as
/// POLLOUT (or POLLERR) and in SO_ERROR.
///
/// # Safety
/// `addr` must be NULL or point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rs_connect(
    fd: c_int,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> c_int {
    // SAFETY: per this function's contract.
    call("rs_connect", || unsafe {
        connect_on(api::global()?, fd, addr, len)
    })
}

/// [`rs_connect`] on the sockets `s`.
///
/// # Safety
/// As for [`rs_connect`].
pub(crate) unsafe fn connect_on(
    s: &Sockets,
    fd: c_int,
    addr: *const libc::sockaddr,
    len: libc::socklen_t,
) -> Result<c_int> {
    s.check_fd(fd)?;
    // SAFETY: per this function's contract.
    match unsafe { sockaddr::read_connect(addr, len) }? {
        sockaddr::ConnectTo::Unspec => s.disconnect(fd).map(|_| 0),
        sockaddr::ConnectTo::Inet(a) => {
            // A connected socket says so whatever the address (Linux).
            s.connect_precheck(fd)?;
            s.connect(fd, a?).map(|_| 0)
        }
    }
}

fn raise_sigpipe(e: Error, flags: c_int) -> Error {
    if e == Error::BrokenPipe && flags & libc::MSG_NOSIGNAL == 0 {
        // SAFETY: raising a signal in our own process, as the kernel would.
        unsafe {
            libc::raise(libc::SIGPIPE);
        }
    }
    e
}

/// send(2): MSG_DONTWAIT and MSG_NOSIGNAL honoured, MSG_OOB refused
/// (EOPNOTSUPP); EPIPE raises SIGPIPE unless MSG_NOSIGNAL, as the kernel does.
///
/// # Safety
/// `buf` must be NULL or point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rs_send(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
) -> libc::ssize_t {
    // SAFETY: per this function's contract.
    call("rs_send", || unsafe {
        send_on(api::global()?, fd, buf, len, flags)
    })
}

/// [`rs_send`] on the sockets `s`.
///
/// # Safety
/// As for [`rs_send`].
pub(crate) unsafe fn send_on(
    s: &Sockets,
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
) -> Result<libc::ssize_t> {
    s.check_fd(fd)?;
    if flags & libc::MSG_OOB != 0 {
        return Err(Error::OperationNotSupported);
    }
    if len == 0 || buf.is_null() {
        // The socket's state speaks first (EPIPE before EFAULT).
        s.send(fd, &[], MsgFlags::default())
            .map_err(|e| raise_sigpipe(e, flags))?;
        return if len == 0 { Ok(0) } else { Err(Error::Fault) };
    }
    // SAFETY: non-null, and the caller promises len readable bytes.
    let data =
        unsafe { std::slice::from_raw_parts(buf as *const u8, len.min(isize::MAX as usize)) };
    let f = MsgFlags {
        dont_wait: flags & libc::MSG_DONTWAIT != 0,
        ..MsgFlags::default()
    };
    s.send(fd, data, f)
        .map(|n| n as libc::ssize_t)
        .map_err(|e| raise_sigpipe(e, flags))
}

/// recv(2): MSG_PEEK, MSG_DONTWAIT and MSG_WAITALL honoured, MSG_OOB
/// refused (EINVAL); 0 at end of stream.
///
/// # Safety
/// `buf` must be NULL or point to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn rs_recv(
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
) -> libc::ssize_t {
    // SAFETY: per this function's contract.
    call("rs_recv", || unsafe {
        recv_on(api::global()?, fd, buf, len, flags)
    })
}

/// [`rs_recv`] on the sockets `s`.
///
/// # Safety
/// As for [`rs_recv`].
pub(crate) unsafe fn recv_on(
    s: &Sockets,
    fd: c_int,
    buf: *mut c_void,
    len: usize,
    flags: c_int,
) -> Result<libc::ssize_t> {
    s.check_fd(fd)?;
    if flags & libc::MSG_OOB != 0 {
        return Err(Error::Invalid);
    }
    let f = MsgFlags {
        dont_wait: flags & libc::MSG_DONTWAIT != 0,
        peek: flags & libc::MSG_PEEK != 0,
        wait_all: flags & libc::MSG_WAITALL != 0,
    };
    if len == 0 {
        return s.recv(fd, &mut [], f).map(|n| n as libc::ssize_t);
    }
    if buf.is_null() {
        return Err(Error::Fault);
    }
    // SAFETY: non-null, and the caller promises len writable bytes.
    let out =
        unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, len.min(isize::MAX as usize)) };
    s.recv(fd, out, f).map(|n| n as libc::ssize_t)
}

/// close(2) for rstcp descriptors (libc's close must not be given them):
/// a connection closes in the background (FIN, TIME-WAIT); SO_LINGER as on
/// Linux; threads blocked on the descriptor wake with EBADF.
#[no_mangle]
pub extern "C" fn rs_close(fd: c_int) -> c_int {
    call("rs_close", || {
        if api::in_forked_child() {
            // The descriptor is the parent's: forget this copy, send nothing.
            return Ok(0);
        }
        api::global()?.close(fd).map(|_| 0)
    })
}

/// shutdown(2): SHUT_RD, SHUT_WR (sends FIN) or SHUT_RDWR.
#[no_mangle]
pub extern "C" fn rs_shutdown(fd: c_int, how: c_int) -> c_int {
    call("rs_shutdown", || shutdown_on(api::global()?, fd, how))
}

/// [`rs_shutdown`] on the sockets `s`.
pub(crate) fn shutdown_on(s: &Sockets, fd: c_int, how: c_int) -> Result<c_int> {
    s.check_fd(fd)?;
    let how = match how {
        libc::SHUT_RD => Shutdown::Read,
        libc::SHUT_WR => Shutdown::Write,
        libc::SHUT_RDWR => Shutdown::Both,
        _ => return Err(Error::Invalid),
    };
    s.shutdown(fd, how).map(|_| 0)
}

/// getsockname(2).
///
/// # Safety
/// `addr` must be writable for `*len` bytes; `len` must be valid.
#[no_mangle]
pub unsafe extern "C" fn rs_getsockname(
    fd: c_int,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> c_int {
    call("rs_getsockname", || {
        let s = api::global()?;
        let a = s.local_addr(fd)?;
        // SAFETY: per this function's contract.
        unsafe { sockaddr::write_always(a, addr, len) }.map(|_| 0)
    })
}

/// getpeername(2).
///
/// # Safety
/// `addr` must be writable for `*len` bytes; `len` must be valid.
#[no_mangle]
pub unsafe extern "C" fn rs_getpeername(
    fd: c_int,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
) -> c_int {
    call("rs_getpeername", || {
        let s = api::global()?;
        let a = s.peer_addr(fd)?;
        // SAFETY: per this function's contract.
        unsafe { sockaddr::write_always(a, addr, len) }.map(|_| 0)
    })
}

/// Linux's TCP_CA_NAME_MAX: the size of a congestion-control name.
const CA_NAME_MAX: usize = 16;

fn option_name(level: c_int, name: c_int) -> Result<SockOptName> {
    Ok(match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => SockOptName::ReuseAddr,
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => SockOptName::KeepAlive,
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => SockOptName::RecvBuffer,
        (libc::SOL_SOCKET, libc::SO_LINGER) => SockOptName::Linger,
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => SockOptName::SendBuffer,
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => SockOptName::RecvTimeout,
        (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => SockOptName::SendTimeout,
        (libc::SOL_SOCKET, libc::SO_ERROR) => SockOptName::Error,
        (libc::SOL_SOCKET, libc::SO_TYPE) => SockOptName::Type,
        (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => SockOptName::AcceptConn,
        (libc::SOL_SOCKET, libc::SO_BUSY_POLL) => SockOptName::BusyPoll,
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => SockOptName::NoDelay,
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => SockOptName::MaxSeg,
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE) => SockOptName::KeepIdle,
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL) => SockOptName::KeepInterval,
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) => SockOptName::KeepCount,
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => SockOptName::UserTimeout,
        (libc::IPPROTO_TCP, libc::TCP_INFO) => SockOptName::Info,
        (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => SockOptName::Congestion,
        _ => return Err(Error::NoProtocolOption),
    })
}

/// setsockopt(2): SO_REUSEADDR, SO_KEEPALIVE, SO_RCVBUF, SO_SNDBUF,
/// SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER, TCP_NODELAY, TCP_KEEPIDLE,
/// TCP_KEEPINTVL, TCP_KEEPCNT, TCP_MAXSEG (88..=32767, or 0 to clear; for
/// connections made after it), TCP_USER_TIMEOUT (milliseconds, 0 = off),
/// TCP_CONGESTION ("cubic", the default, or "reno"; another name is
/// ENOENT); others give ENOPROTOOPT.
///
/// # Safety
/// `val` must be NULL or point to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rs_setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: libc::socklen_t,
) -> c_int {
    // SAFETY: per this function's contract.
    call("rs_setsockopt", || unsafe {
        setsockopt_on(api::global()?, fd, level, name, val, len)
    })
}

/// [`rs_setsockopt`] on the sockets `s`.
///
/// # Safety
/// As for [`rs_setsockopt`].
pub(crate) unsafe fn setsockopt_on(
    s: &Sockets,
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: libc::socklen_t,
) -> Result<c_int> {
    s.local_addr(fd)?; // EBADF before anything else, as the kernel checks
    let which = option_name(level, name)?;
    if val.is_null() {
        return Err(Error::Fault);
    }
    let opt = match which {
        SockOptName::Linger => {
            if (len as usize) < std::mem::size_of::<libc::linger>() {
                return Err(Error::Invalid);
            }
            // SAFETY: len covers a struct linger.
            let l = unsafe { std::ptr::read_unaligned(val as *const libc::linger) };
            SockOpt::Linger((l.l_onoff != 0).then(|| Duration::from_secs(l.l_linger.max(0) as u64)))
        }
        SockOptName::Congestion => {
            // Linux reads at most TCP_CA_NAME_MAX - 1 bytes, up to a NUL.
            if len < 1 {
                return Err(Error::Invalid);
            }
            let n = (len as usize).min(CA_NAME_MAX - 1);
            // SAFETY: val points to len >= n readable bytes.
            let bytes = unsafe { std::slice::from_raw_parts(val as *const u8, n) };
            let name = bytes.split(|&b| b == 0).next().unwrap_or_default();
            let alg = std::str::from_utf8(name)
                .ok()
                .and_then(crate::tcp::Algorithm::from_name)
                .ok_or(Error::NotFound)?;
            SockOpt::Congestion(alg)
        }
        SockOptName::RecvTimeout | SockOptName::SendTimeout => {
            if (len as usize) < std::mem::size_of::<libc::timeval>() {
                return Err(Error::Invalid);
            }
            // SAFETY: len covers a timeval.
            let tv = unsafe { std::ptr::read_unaligned(val as *const libc::timeval) };
            // Linux: tv_usec out of range is EDOM; a negative time
            // means no timeout.
            if !(0..1_000_000).contains(&tv.tv_usec) {
                return Err(Error::OutOfDomain);
            }
            let d = if tv.tv_sec < 0 {
                Duration::ZERO
            } else {
                Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
            };
            let d = (!d.is_zero()).then_some(d);
            if which == SockOptName::RecvTimeout {
                SockOpt::RecvTimeout(d)
            } else {
                SockOpt::SendTimeout(d)
            }
        }
        _ => {
            if (len as usize) < std::mem::size_of::<c_int>() {
                return Err(Error::Invalid);
            }
            // SAFETY: len covers an int.
            let v = unsafe { std::ptr::read_unaligned(val as *const c_int) };
            match which {
                SockOptName::ReuseAddr => SockOpt::ReuseAddr(v != 0),
                SockOptName::KeepAlive => SockOpt::KeepAlive(v != 0),
                SockOptName::NoDelay => SockOpt::NoDelay(v != 0),
                SockOptName::RecvBuffer => SockOpt::RecvBuffer(v.max(0) as usize),
                // Linux's limits: 1..=32767 seconds, 1..=127 probes.
                SockOptName::KeepIdle | SockOptName::KeepInterval if !(1..=32767).contains(&v) => {
                    return Err(Error::Invalid)
                }
                SockOptName::KeepCount if !(1..=127).contains(&v) => return Err(Error::Invalid),
                SockOptName::KeepIdle => SockOpt::KeepIdle(Duration::from_secs(v as u64)),
                SockOptName::KeepInterval => SockOpt::KeepInterval(Duration::from_secs(v as u64)),
                SockOptName::KeepCount => SockOpt::KeepCount(v as u32),
                SockOptName::SendBuffer => SockOpt::SendBuffer(v.max(0) as usize),
                SockOptName::UserTimeout if v < 0 => return Err(Error::Invalid),
                SockOptName::UserTimeout => {
                    SockOpt::UserTimeout((v > 0).then(|| Duration::from_millis(v as u64)))
                }
                SockOptName::MaxSeg if v < 0 => return Err(Error::Invalid),
                SockOptName::MaxSeg => SockOpt::MaxSeg(v as usize),
                SockOptName::BusyPoll if v < 0 => return Err(Error::Invalid),
                SockOptName::BusyPoll => SockOpt::BusyPoll(Duration::from_micros(v as u64)),
                _ => return Err(Error::NoProtocolOption),
            }
        }
    };
    s.set_option(fd, opt).map(|_| 0)
}

/// getsockopt(2): the options of rs_setsockopt plus SO_ERROR (read and
/// clear), SO_TYPE, SO_ACCEPTCONN, TCP_MAXSEG, TCP_INFO (Linux's
/// `struct tcp_info`, truncated to `*len`; untracked fields zero) and
/// TCP_CONGESTION (the name, NUL-padded to 16 bytes, truncated to `*len`).
///
/// # Safety
/// `val` must be writable for `*len` bytes; `len` must be valid.
#[no_mangle]
pub unsafe extern "C" fn rs_getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut libc::socklen_t,
) -> c_int {
    // SAFETY: per this function's contract.
    call("rs_getsockopt", || unsafe {
        getsockopt_on(api::global()?, fd, level, name, val, len)
    })
}

/// [`rs_getsockopt`] on the sockets `s`.
///
/// # Safety
/// As for [`rs_getsockopt`].
pub(crate) unsafe fn getsockopt_on(
    s: &Sockets,
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut libc::socklen_t,
) -> Result<c_int> {
    s.local_addr(fd)?;
    // Linux: a level neither the socket, IP nor TCP knows is EOPNOTSUPP
    // for getsockopt (setsockopt says ENOPROTOOPT).
    if ![libc::SOL_SOCKET, libc::IPPROTO_TCP, libc::IPPROTO_IP].contains(&level) {
        return Err(Error::OperationNotSupported);
    }
    let which = option_name(level, name)?;
    if len.is_null() {
        return Err(Error::Fault);
    }
    // SAFETY: len is non-null and valid per the contract.
    let room = unsafe { *len } as i32;
    if room < 0 {
        return Err(Error::Invalid);
    }
    // NULL is fine for a zero length: nothing is written.
    if val.is_null() && room > 0 {
        return Err(Error::Fault);
    }
    let int = |v: c_int| -> Result<c_int> {
        let n = (room as usize).min(std::mem::size_of::<c_int>());
        // SAFETY: writing n <= *len bytes to the caller's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(&v as *const c_int as *const u8, val as *mut u8, n);
            *len = n as libc::socklen_t;
        }
        Ok(0)
    };
    let timeval = |d: Option<Duration>| -> Result<c_int> {
        let d = d.unwrap_or_default();
        let tv = libc::timeval {
            tv_sec: d.as_secs() as libc::time_t,
            tv_usec: d.subsec_micros() as libc::suseconds_t,
        };
        let n = (room as usize).min(std::mem::size_of::<libc::timeval>());
        // SAFETY: writing n <= *len bytes to the caller's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(
                &tv as *const libc::timeval as *const u8,
                val as *mut u8,
                n,
            );
            *len = n as libc::socklen_t;
        }
        Ok(0)
    };
    let linger = |l: Option<Duration>| -> Result<c_int> {
        let v = libc::linger {
            l_onoff: l.is_some() as c_int,
            l_linger: l
                .map(|d| d.as_secs().min(i32::MAX as u64) as c_int)
                .unwrap_or(0),
        };
        let n = (room as usize).min(std::mem::size_of::<libc::linger>());
        // SAFETY: writing n <= *len bytes to the caller's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(
                &v as *const libc::linger as *const u8,
                val as *mut u8,
                n,
            );
            *len = n as libc::socklen_t;
        }
        Ok(0)
    };
    match s.get_option(fd, which)? {
        SockOpt::Linger(l) => linger(l),
        SockOpt::ReuseAddr(b)
        | SockOpt::KeepAlive(b)
        | SockOpt::NoDelay(b)
        | SockOpt::AcceptConn(b) => int(b as c_int),
        SockOpt::RecvBuffer(n) | SockOpt::SendBuffer(n) | SockOpt::MaxSeg(n) => {
            int(n.min(c_int::MAX as usize) as c_int)
        }
        SockOpt::Error(e) | SockOpt::Type(e) => int(e),
        SockOpt::KeepIdle(d) | SockOpt::KeepInterval(d) => {
            int(d.as_secs().min(i32::MAX as u64) as c_int)
        }
        SockOpt::KeepCount(n) => int(n.min(i32::MAX as u32) as c_int),
        SockOpt::RecvTimeout(d) | SockOpt::SendTimeout(d) => timeval(d),
        SockOpt::UserTimeout(d) => {
            int(d.map_or(0, |d| d.as_millis().min(i32::MAX as u128) as c_int))
        }
        SockOpt::BusyPoll(d) => int(d.as_micros().min(i32::MAX as u128) as c_int),
        SockOpt::Congestion(a) => {
            let mut name = [0u8; CA_NAME_MAX];
            name[..a.name().len()].copy_from_slice(a.name().as_bytes());
            let n = (room as usize).min(CA_NAME_MAX);
            // SAFETY: writing n <= *len bytes to the caller's buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(name.as_ptr(), val as *mut u8, n);
                *len = n as libc::socklen_t;
            }
            Ok(0)
        }
        SockOpt::Info(i) => {
            let v = linux_tcp_info(&i);
            let n = (room as usize).min(std::mem::size_of::<libc::tcp_info>());
            // SAFETY: writing n <= *len bytes to the caller's buffer.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    &v as *const libc::tcp_info as *const u8,
                    val as *mut u8,
                    n,
                );
                *len = n as libc::socklen_t;
            }
            Ok(0)
        }
    }
}

/// The stack's TCP_INFO in Linux's `struct tcp_info` layout (fields the
/// stack does not track are zero).
fn linux_tcp_info(i: &crate::tcp::TcpInfo) -> libc::tcp_info {
    // SAFETY: tcp_info is plain integers; all-zero is a valid value.
    let mut v: libc::tcp_info = unsafe { std::mem::zeroed() };
    v.tcpi_state = i.state;
    v.tcpi_ca_state = i.ca_state;
    v.tcpi_retransmits = i.retransmits;
    v.tcpi_probes = i.probes;
    v.tcpi_backoff = i.retransmits;
    v.tcpi_options = i.options;
    v.tcpi_snd_rcv_wscale = (i.snd_wscale & 0xf) | (i.rcv_wscale << 4);
    v.tcpi_rto = i.rto;
    v.tcpi_snd_mss = i.snd_mss;
    v.tcpi_rcv_mss = i.rcv_mss;
    v.tcpi_unacked = i.unacked;
    v.tcpi_sacked = i.sacked;
    v.tcpi_last_data_sent = i.last_data_sent;
    v.tcpi_last_ack_recv = i.last_ack_recv;
    v.tcpi_pmtu = i.pmtu;
    v.tcpi_rtt = i.rtt;
    v.tcpi_rttvar = i.rttvar;
    v.tcpi_snd_ssthresh = i.snd_ssthresh;
    v.tcpi_snd_cwnd = i.snd_cwnd;
    v.tcpi_advmss = i.advmss;
    v.tcpi_rcv_space = i.rcv_space;
    v.tcpi_total_retrans = i.total_retrans;
    v.tcpi_segs_out = i.segs_out;
    v.tcpi_lost = i.lost;
    v.tcpi_min_rtt = i.min_rtt;
    v.tcpi_notsent_bytes = i.notsent_bytes;
    v.tcpi_snd_wnd = i.snd_wnd;
    v
}

/// fcntl(2) for F_GETFL / F_SETFL (O_NONBLOCK) and F_GETFD / F_SETFD;
/// other commands are EINVAL (no F_DUPFD: there is no rs_dup).
#[no_mangle]
pub extern "C" fn rs_fcntl(fd: c_int, cmd: c_int, arg: c_int) -> c_int {
    call("rs_fcntl", || fcntl_on(api::global()?, fd, cmd, arg))
}

/// [`rs_fcntl`] on the sockets `s`.
pub(crate) fn fcntl_on(s: &Sockets, fd: c_int, cmd: c_int, arg: c_int) -> Result<c_int> {
    match cmd {
        libc::F_GETFL => Ok(libc::O_RDWR
            | if s.nonblocking(fd)? {
                libc::O_NONBLOCK
            } else {
                0
            }),
        libc::F_SETFL => s
            .set_nonblocking(fd, arg & libc::O_NONBLOCK != 0)
            .map(|_| 0),
        libc::F_GETFD => Ok(if s.cloexec(fd)? { libc::FD_CLOEXEC } else { 0 }),
        libc::F_SETFD => s.set_cloexec(fd, arg & libc::FD_CLOEXEC != 0).map(|_| 0),
        _ => {
            s.nonblocking(fd)?;
            Err(Error::Invalid)
        }
    }
}

/// poll(2) over rstcp descriptors only: kernel descriptors cannot be
/// waited on here (a number rstcp did not hand out reports POLLNVAL).
///
/// # Safety
/// `fds` must be NULL (with `n` = 0) or point to `n` pollfd structs.
#[no_mangle]
pub unsafe extern "C" fn rs_poll(
    fds: *mut libc::pollfd,
    n: libc::nfds_t,
    timeout_ms: c_int,
) -> c_int {
    // SAFETY: per this function's contract.
    call("rs_poll", || unsafe {
        poll_on(api::global()?, fds, n, timeout_ms)
    })
}

/// [`rs_poll`] on the sockets `s`.
///
/// # Safety
/// As for [`rs_poll`].
pub(crate) unsafe fn poll_on(
    s: &Sockets,
    fds: *mut libc::pollfd,
    n: libc::nfds_t,
    timeout_ms: c_int,
) -> Result<c_int> {
    if n > 65536 {
        return Err(Error::Invalid);
    }
    if fds.is_null() && n > 0 {
        return Err(Error::Fault);
    }
    let raw: &mut [libc::pollfd] = if n == 0 {
        &mut []
    } else {
        // SAFETY: non-null and n entries per the contract.
        unsafe { std::slice::from_raw_parts_mut(fds, n as usize) }
    };
    let mut set: Vec<PollFd> = raw
        .iter()
        .map(|p| PollFd {
            fd: p.fd,
            events: p.events,
            revents: 0,
        })
        .collect();
    let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
    let ready = s.poll(&mut set, timeout)?;
    for (r, p) in raw.iter_mut().zip(set.iter()) {
        r.revents = p.revents;
    }
    Ok(ready as c_int)
}
