//! packetdrill's function table (`struct packetdrill_interface`), in its
//! field order, and the functions that fill it. Each call takes the
//! [`Instance`] from `userdata`, answers as the libc call of the same name
//! (-1 with the calling thread's errno on failure) and never lets a panic
//! out; the socket calls share their argument handling with the `rs_*`
//! C ABI (the `*_on` functions of [`crate::ffi`]).

use std::ffi::{c_int, c_long, c_longlong, c_uint, c_ulong, c_void};
use std::os::fd::RawFd;
use std::time::Duration;

use libc::{iovec, msghdr, nfds_t, pollfd, size_t, sockaddr, socklen_t, ssize_t, timeval};

use super::Instance;
use crate::error::{Error, Result};
use crate::ffi;
use crate::ffi::guard::{call_with, set_errno};
use crate::rs_log;
use crate::sys;

type U = *mut c_void;

// The shapes of the table's calls (after userdata).
type Io<B> = unsafe extern "C" fn(U, c_int, B, size_t) -> ssize_t;
type IoFlags<B> = unsafe extern "C" fn(U, c_int, B, size_t, c_int) -> ssize_t;
type IoAddr<B, A, L> = unsafe extern "C" fn(U, c_int, B, size_t, c_int, A, L) -> ssize_t;
type IoVec = unsafe extern "C" fn(U, c_int, *const iovec, c_int) -> ssize_t;
type IoMsg<M> = unsafe extern "C" fn(U, c_int, M, c_int) -> ssize_t;
type Addr<A, L> = unsafe extern "C" fn(U, c_int, A, L) -> c_int;
type Opt<V, L> = unsafe extern "C" fn(U, c_int, c_int, c_int, V, L) -> c_int;
type Arg<T> = unsafe extern "C" fn(U, T) -> c_int;
type Args2 = unsafe extern "C" fn(U, c_int, c_int) -> c_int;

/// The table packetdrill hands to `packetdrill_interface_init` (zeroed) and
/// then calls through. Its layout is packetdrill's ABI: 33 pointers, in
/// this order; every function takes `userdata` first.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)] // the fields are the calls of the same names
pub struct Interface {
    /// Handed back as the first argument of every call.
    pub userdata: U,
    pub free: Option<unsafe extern "C" fn(U)>,
    pub socket: Option<unsafe extern "C" fn(U, c_int, c_int, c_int) -> c_int>,
    pub bind: Option<Addr<*const sockaddr, socklen_t>>,
    pub listen: Option<Args2>,
    pub accept: Option<Addr<*mut sockaddr, *mut socklen_t>>,
    pub connect: Option<Addr<*const sockaddr, socklen_t>>,
    pub read: Option<Io<*mut c_void>>,
    pub readv: Option<IoVec>,
    pub recv: Option<IoFlags<*mut c_void>>,
    pub recvfrom: Option<IoAddr<*mut c_void, *mut sockaddr, *mut socklen_t>>,
    pub recvmsg: Option<IoMsg<*mut msghdr>>,
    pub write: Option<Io<*const c_void>>,
    pub writev: Option<IoVec>,
    pub send: Option<IoFlags<*const c_void>>,
    pub sendto: Option<IoAddr<*const c_void, *const sockaddr, socklen_t>>,
    pub sendmsg: Option<IoMsg<*const msghdr>>,
    /// C-variadic in packetdrill's declaration; on x86-64 and aarch64 Linux
    /// the one optional argument arrives where a fixed fourth one would.
    pub fcntl: Option<unsafe extern "C" fn(U, c_int, c_int, c_long) -> c_int>,
    /// C-variadic too (see `fcntl`); the argument is an `int *` or absent.
    pub ioctl: Option<unsafe extern "C" fn(U, c_int, c_ulong, *mut c_int) -> c_int>,
    pub close: Option<Arg<c_int>>,
    pub shutdown: Option<Args2>,
    pub getsockopt: Option<Opt<*mut c_void, *mut socklen_t>>,
    pub setsockopt: Option<Opt<*const c_void, socklen_t>>,
    pub poll: Option<unsafe extern "C" fn(U, *mut pollfd, nfds_t, c_int) -> c_int>,
    /// One IP datagram from packetdrill: 0, or -1 on error.
    pub netdev_send: Option<unsafe extern "C" fn(U, *const c_void, size_t) -> c_int>,
    /// One IP datagram the stack sent (`*count`: capacity in, length out)
    /// and its time in gettimeofday's microseconds; `*count` 0 means none
    /// is coming.
    pub netdev_receive:
        Option<unsafe extern "C" fn(U, *mut c_void, *mut size_t, *mut c_longlong) -> c_int>,
    pub usleep: Option<unsafe extern "C" fn(U, c_uint) -> c_int>,
    pub gettimeofday: Option<unsafe extern "C" fn(U, *mut timeval, *mut c_void) -> c_int>,
    pub epoll_create: Option<Arg<c_int>>,
    pub epoll_ctl: Option<unsafe extern "C" fn(U, c_int, c_int, c_int, *mut c_void) -> c_int>,
    pub epoll_wait: Option<unsafe extern "C" fn(U, c_int, *mut c_void, c_int, c_int) -> c_int>,
    pub pipe: Option<Arg<*mut c_int>>,
    pub splice:
        Option<unsafe extern "C" fn(U, c_int, *mut i64, c_int, *mut i64, size_t, c_uint) -> c_int>,
}

const _: () = assert!(std::mem::size_of::<Interface>() == 33 * std::mem::size_of::<usize>());

impl Interface {
    /// Every entry filled; `instance` becomes the userdata (None: every
    /// socket and packet call fails with EIO).
    pub fn new(instance: Option<Box<Instance>>) -> Interface {
        Interface {
            userdata: instance.map_or(std::ptr::null_mut(), |b| Box::into_raw(b).cast()),
            free: Some(free),
            socket: Some(socket),
            bind: Some(bind),
            listen: Some(listen),
            accept: Some(accept),
            connect: Some(connect),
            read: Some(read),
            readv: Some(readv),
            recv: Some(recv),
            recvfrom: Some(recvfrom),
            recvmsg: Some(recvmsg),
            write: Some(write),
            writev: Some(writev),
            send: Some(send),
            sendto: Some(sendto),
            sendmsg: Some(sendmsg),
            fcntl: Some(fcntl),
            ioctl: Some(ioctl),
            close: Some(close),
            shutdown: Some(shutdown),
            getsockopt: Some(getsockopt),
            setsockopt: Some(setsockopt),
            poll: Some(poll),
            netdev_send: Some(netdev_send),
            netdev_receive: Some(netdev_receive),
            usleep: Some(usleep),
            gettimeofday: Some(gettimeofday),
            epoll_create: Some(epoll_create),
            epoll_ctl: Some(epoll_ctl),
            epoll_wait: Some(epoll_wait),
            pipe: Some(pipe),
            splice: Some(splice),
        }
    }
}

/// Runs `f` on the instance behind `u`: -1 and errno on error, EIO (and
/// the instance's stack marked failed) on a panic.
fn with<T: From<i8>>(u: U, name: &str, f: impl FnOnce(&Instance) -> Result<T>) -> T {
    // SAFETY: u is NULL or the Instance that init boxed, alive until free.
    let Some(inst) = (unsafe { (u as *const Instance).as_ref() }) else {
        set_errno(Error::Io.errno());
        return T::from(-1);
    };
    call_with(name, || inst.sockets().shared().fail(), || f(inst))
}

/// A socket's descriptor number: an eventfd of its own, so that the
/// number is open in the process as packetdrill expects. `f` makes the
/// socket under that number; if it fails, the eventfd is closed.
fn with_placeholder(f: impl FnOnce(RawFd) -> Result<c_int>) -> Result<c_int> {
    let fd = sys::eventfd().map_err(|e| match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) => Error::TooManyFiles,
        _ => Error::NoBuffers,
    })?;
    f(fd).inspect_err(|_| sys::close(fd))
}

unsafe extern "C" fn free(u: U) {
    if u.is_null() {
        return;
    }
    // SAFETY: u is the Instance init boxed; packetdrill frees it once,
    // after its last call. Dropping it stops the I/O thread.
    let r = std::panic::catch_unwind(|| drop(unsafe { Box::from_raw(u as *mut Instance) }));
    if r.is_err() {
        rs_log!(Error, "packetdrill: internal error (panic) in free");
    }
}

/// Entries that run an `rs_*` implementation (`ffi::*_on`) on this
/// instance's sockets: `name(arguments) -> type = implementation(its arguments)`.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $imp:ident($($pass:expr),*);)*) => {$(
        unsafe extern "C" fn $name(u: U, $($arg: $ty),*) -> $ret {
            // SAFETY: packetdrill passes the arguments of the libc call.
            with(u, stringify!($name), |i| unsafe { ffi::$imp(i.sockets(), $($pass),*) })
        }
    )*};
}

// read and write are recv and send without flags; a connected stream
// socket ignores sendto's address, as Linux's TCP does.
forward! {
    bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int = bind_on(fd, addr, len);
    connect(fd: c_int, a: *const sockaddr, len: socklen_t) -> c_int = connect_on(fd, a, len);
    read(fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t = recv_on(fd, buf, len, 0);
    recv(fd: c_int, buf: *mut c_void, len: size_t, flags: c_int) -> ssize_t =
        recv_on(fd, buf, len, flags);
    write(fd: c_int, buf: *const c_void, len: size_t) -> ssize_t = send_on(fd, buf, len, 0);
    send(fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t =
        send_on(fd, buf, len, flags);
    sendto(
        fd: c_int, buf: *const c_void, len: size_t, flags: c_int,
        _addr: *const sockaddr, _addr_len: socklen_t
    ) -> ssize_t = send_on(fd, buf, len, flags);
    getsockopt(
        fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t
    ) -> c_int = getsockopt_on(fd, level, name, val, len);
    setsockopt(
        fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t
    ) -> c_int = setsockopt_on(fd, level, name, val, len);
    poll(fds: *mut pollfd, n: nfds_t, timeout_ms: c_int) -> c_int = poll_on(fds, n, timeout_ms);
}

unsafe extern "C" fn socket(u: U, domain: c_int, kind: c_int, protocol: c_int) -> c_int {
    with(u, "socket", |i| {
        ffi::socket_args(domain, kind, protocol)?;
        with_placeholder(|fd| ffi::socket_on(i.sockets(), kind, Some(fd)))
    })
}

unsafe extern "C" fn listen(u: U, fd: c_int, backlog: c_int) -> c_int {
    with(u, "listen", |i| i.sockets().listen(fd, backlog).map(|_| 0))
}

unsafe extern "C" fn accept(u: U, fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    with(u, "accept", |i| {
        with_placeholder(|nfd| {
            // SAFETY: packetdrill passes the arguments of accept(2).
            unsafe { ffi::accept4_on(i.sockets(), fd, addr, len, 0, Some(nfd)) }
        })
    })
}

unsafe extern "C" fn recvfrom(
    u: U,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addr_len: *mut socklen_t,
) -> ssize_t {
    with(u, "recvfrom", |i| {
        // SAFETY: packetdrill passes the arguments of recvfrom(2).
        let n = unsafe { ffi::recv_on(i.sockets(), fd, buf, len, flags) }?;
        // A stream socket names no sender: Linux sets the length to 0.
        if !addr.is_null() && !addr_len.is_null() {
            // SAFETY: non-null, and packetdrill's.
            unsafe { *addr_len = 0 };
        }
        Ok(n)
    })
}

/// The buffers of an iovec array (readv, writev, recvmsg, sendmsg).
struct Buffers<'a> {
    v: &'a [iovec],
    total: usize,
}

impl Buffers<'_> {
    /// EBADF for an unknown `fd` first, as the kernel checks; then EINVAL
    /// for a negative count, more than IOV_MAX (1024) entries or a total
    /// past `isize::MAX`, EFAULT for a NULL array or base with a length.
    ///
    /// # Safety
    /// `iov` is NULL or points to `n` iovecs, which outlive the value.
    unsafe fn new(i: &Instance, fd: c_int, iov: *const iovec, n: usize) -> Result<Self> {
        i.sockets().check_fd(fd)?;
        if n > 1024 {
            return Err(Error::Invalid);
        }
        if n == 0 {
            return Ok(Buffers { v: &[], total: 0 });
        }
        if iov.is_null() {
            return Err(Error::Fault);
        }
        // SAFETY: per the contract.
        let v = unsafe { std::slice::from_raw_parts(iov, n) };
        let mut total = 0usize;
        for e in v {
            if e.iov_base.is_null() && e.iov_len > 0 {
                return Err(Error::Fault);
            }
            total = total
                .checked_add(e.iov_len)
                .filter(|&t| t <= isize::MAX as usize)
                .ok_or(Error::Invalid)?;
        }
        Ok(Buffers { v, total })
    }

    /// recv into the buffers.
    ///
    /// # Safety
    /// The buffers are writable.
    unsafe fn recv(&self, i: &Instance, fd: c_int, flags: c_int) -> Result<ssize_t> {
        let mut buf = vec![0u8; self.total];
        let to = buf.as_mut_ptr().cast();
        // SAFETY: buf holds total writable bytes.
        let got = unsafe { ffi::recv_on(i.sockets(), fd, to, self.total, flags) }?;
        let mut rest = &buf[..got as usize];
        for e in self.v {
            let k = e.iov_len.min(rest.len());
            // SAFETY: the base is writable for its length (contract).
            unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), e.iov_base.cast(), k) };
            rest = &rest[k..];
        }
        Ok(got)
    }

    /// send from the buffers.
    ///
    /// # Safety
    /// The buffers are readable.
    unsafe fn send(&self, i: &Instance, fd: c_int, flags: c_int) -> Result<ssize_t> {
        let mut buf: Vec<u8> = Vec::with_capacity(self.total);
        for e in self.v.iter().filter(|e| e.iov_len > 0) {
            // SAFETY: the base is readable for its length (contract).
            buf.extend_from_slice(unsafe {
                std::slice::from_raw_parts(e.iov_base.cast(), e.iov_len)
            });
        }
        // SAFETY: buf holds total readable bytes.
        unsafe { ffi::send_on(i.sockets(), fd, buf.as_ptr().cast(), self.total, flags) }
    }
}

fn iov_count(n: c_int) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::Invalid)
}

unsafe extern "C" fn readv(u: U, fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    with(u, "readv", |i| {
        // SAFETY: packetdrill passes the arguments of readv(2).
        unsafe { Buffers::new(i, fd, iov, iov_count(n)?)?.recv(i, fd, 0) }
    })
}

unsafe extern "C" fn writev(u: U, fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    with(u, "writev", |i| {
        // SAFETY: packetdrill passes the arguments of writev(2).
        unsafe { Buffers::new(i, fd, iov, iov_count(n)?)?.send(i, fd, 0) }
    })
}

unsafe extern "C" fn recvmsg(u: U, fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    with(u, "recvmsg", |i| {
        // SAFETY: packetdrill passes the arguments of recvmsg(2).
        let m = unsafe { msg.as_mut() }.ok_or(Error::Fault)?;
        // SAFETY: the message's iovecs are packetdrill's.
        let n = unsafe { Buffers::new(i, fd, m.msg_iov, m.msg_iovlen)?.recv(i, fd, flags) }?;
        // No sender address, no control messages, no flags: as Linux's
        // TCP for plain data.
        if !m.msg_name.is_null() {
            m.msg_namelen = 0;
        }
        m.msg_controllen = 0;
        m.msg_flags = 0;
        Ok(n)
    })
}

unsafe extern "C" fn sendmsg(u: U, fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    with(u, "sendmsg", |i| {
        // SAFETY: packetdrill passes the arguments of sendmsg(2).
        let m = unsafe { msg.as_ref() }.ok_or(Error::Fault)?;
        // SAFETY: the message's iovecs are packetdrill's.
        unsafe { Buffers::new(i, fd, m.msg_iov, m.msg_iovlen)?.send(i, fd, flags) }
    })
}

unsafe extern "C" fn fcntl(u: U, fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    // Commands without an argument leave `arg` undefined; fcntl_on reads
    // it only for those that take one (an int).
    with(u, "fcntl", |i| {
        ffi::fcntl_on(i.sockets(), fd, cmd, arg as c_int)
    })
}

unsafe extern "C" fn ioctl(u: U, fd: c_int, request: c_ulong, arg: *mut c_int) -> c_int {
    with(u, "ioctl", |i| {
        let s = i.sockets();
        s.check_fd(fd)?;
        match request as libc::Ioctl {
            // SIOCINQ is FIONREAD: bytes ready to read.
            libc::FIONREAD => {
                let n = s.pending_bytes(fd)?;
                // SAFETY: NULL or packetdrill's int.
                let out = unsafe { arg.as_mut() }.ok_or(Error::Fault)?;
                *out = n.min(c_int::MAX as usize) as c_int;
                Ok(0)
            }
            libc::FIONBIO => {
                // SAFETY: NULL or packetdrill's int.
                let on = unsafe { arg.as_ref() }.ok_or(Error::Fault)?;
                s.set_nonblocking(fd, *on != 0).map(|_| 0)
            }
            _ => Err(Error::Invalid),
        }
    })
}

unsafe extern "C" fn close(u: U, fd: c_int) -> c_int {
    with(u, "close", |i| {
        i.sockets().close(fd)?;
        sys::close(fd); // the placeholder
        Ok(0)
    })
}

unsafe extern "C" fn shutdown(u: U, fd: c_int, how: c_int) -> c_int {
    with(u, "shutdown", |i| ffi::shutdown_on(i.sockets(), fd, how))
}

unsafe extern "C" fn netdev_send(u: U, buf: *const c_void, len: size_t) -> c_int {
    with(u, "netdev_send", |i| {
        if buf.is_null() {
            return Err(Error::Fault);
        }
        // SAFETY: packetdrill's datagram of len bytes.
        i.inject(unsafe { std::slice::from_raw_parts(buf.cast(), len) });
        Ok(0)
    })
}

/// The next datagram the stack sends. packetdrill calls again at once,
/// for ever, after -1, so when nothing is coming (or the stack failed) the
/// answer is an empty packet instead: packetdrill fails the line that
/// waits for one.
unsafe extern "C" fn netdev_receive(
    u: U,
    buf: *mut c_void,
    count: *mut size_t,
    time_usecs: *mut c_longlong,
) -> c_int {
    if buf.is_null() || count.is_null() || time_usecs.is_null() {
        set_errno(Error::Fault.errno());
        return -1;
    }
    let r = with(u, "netdev_receive", |i| {
        // SAFETY: non-null, packetdrill's; buf holds *count bytes.
        unsafe {
            let sent = i.next_sent().ok_or(Error::WouldBlock)?;
            let n = sent.packet.len().min(*count);
            std::ptr::copy_nonoverlapping(sent.packet.as_ptr(), buf.cast(), n);
            *count = n;
            *time_usecs = sent.time_usecs;
        }
        Ok(0)
    });
    if r < 0 {
        rs_log!(Info, "packetdrill: the stack sends nothing more");
        // SAFETY: non-null, packetdrill's.
        unsafe { *count = 0 };
    }
    0
}

unsafe extern "C" fn usleep(_u: U, usecs: c_uint) -> c_int {
    std::thread::sleep(Duration::from_micros(usecs.into()));
    0
}

unsafe extern "C" fn gettimeofday(_u: U, tv: *mut timeval, tz: *mut c_void) -> c_int {
    // SAFETY: packetdrill's timeval and timezone (NULL).
    unsafe { libc::gettimeofday(tv, tz.cast()) }
}

fn unsupported(u: U, name: &str) -> c_int {
    with(u, name, |_| Err(Error::OperationNotSupported))
}

unsafe extern "C" fn epoll_create(u: U, _size: c_int) -> c_int {
    unsupported(u, "epoll_create")
}

unsafe extern "C" fn epoll_ctl(
    u: U,
    _epfd: c_int,
    _op: c_int,
    _fd: c_int,
    _ev: *mut c_void,
) -> c_int {
    unsupported(u, "epoll_ctl")
}

unsafe extern "C" fn epoll_wait(
    u: U,
    _epfd: c_int,
    _events: *mut c_void,
    _max: c_int,
    _timeout: c_int,
) -> c_int {
    unsupported(u, "epoll_wait")
}

unsafe extern "C" fn pipe(u: U, _fds: *mut c_int) -> c_int {
    unsupported(u, "pipe")
}

unsafe extern "C" fn splice(
    u: U,
    _fd_in: c_int,
    _off_in: *mut i64,
    _fd_out: c_int,
    _off_out: *mut i64,
    _len: size_t,
    _flags: c_uint,
) -> c_int {
    unsupported(u, "splice")
}
