//! Differential test: one sequence of socket calls, run once on the Linux
//! kernel's own sockets (libc) and once on rstcp's C ABI (`rs_*`), compared
//! step by step.
//!
//! rstcp promises "the same arguments, return values and errno values as the
//! libc calls of the same names" (DESIGN.md). Instead of writing down what
//! Linux does, every step runs on both and the results are compared: errno,
//! and the return value — exactly where it means something (byte counts,
//! poll counts and revents, fcntl flags, option values, address lengths and
//! families), only as "a descriptor" for socket and accept. Most steps are
//! misuse, in the order Linux checks it. A table of every step is printed;
//! the test fails listing each step whose results differ.
//!
//! Both runs happen in the namespace `common::run_cases` makes. Kernel
//! sockets talk to kernel peers on loopback (127.0.0.1); rstcp sockets
//! (10.77.0.2) talk to kernel peers at 10.77.0.1 across the TUN device. The
//! runs use their own port ranges (7600.. and 7650..), so that neither meets
//! the other's listeners or TIME-WAIT connections. Network safety: nothing
//! else is ever sent to; 10.99.0.1 is only passed to bind, which refuses it.
//!
//! Left out because rstcp differs there by design: AF_INET6 and SOCK_DGRAM
//! sockets (TCP/IPv4 only, UDP not yet), MSG_OOB (no urgent data), F_DUPFD,
//! and options rstcp does not implement (ENOPROTOOPT where Linux has them).

mod common;

use std::collections::{HashMap, HashSet};
use std::ffi::c_void;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::ptr::{null, null_mut};
use std::time::Duration;

use libc::{c_int, pollfd, sockaddr, socklen_t};
use libc::{AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC, IPPROTO_TCP, IPPROTO_UDP, TCP_NODELAY};
use libc::{F_GETFD, F_GETFL, F_SETFL, O_NONBLOCK, SHUT_RD, SHUT_RDWR, SHUT_WR};
use libc::{MSG_DONTWAIT, MSG_NOSIGNAL, MSG_PEEK, MSG_WAITALL, POLLIN, POLLOUT};
use libc::{SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET, SO_ACCEPTCONN};
use libc::{SO_ERROR, SO_RCVTIMEO, SO_REUSEADDR, SO_SNDTIMEO, SO_TYPE};
use rstcp::ffi::*;

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
const OURS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const KERNEL_SIDE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// An address no interface here has: bind must refuse it.
const FOREIGN: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// A descriptor number nothing has open, in the kernel or in rstcp.
const HUGE_FD: c_int = 1 << 30;
const SIN: socklen_t = std::mem::size_of::<libc::sockaddr_in>() as socklen_t;
const TV: socklen_t = std::mem::size_of::<libc::timeval>() as socklen_t;
/// Peers never wait longer than this (the watchdog is a last resort).
const PEER_WAIT: Duration = Duration::from_secs(2);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A call's result: the return value and errno (0 unless it failed).
type Res = (i64, i32);

/// Makes the call and reads errno before anything else can change it.
macro_rules! res {
    ($call:expr) => {{
        let r = $call as i64;
        (r, if r < 0 { errno() } else { 0 })
    }};
}

/// The calls under comparison, with their C signatures: raw pointers, so
/// that NULL and short buffers can be passed as C would.
trait Sockets {
    unsafe fn socket(&self, domain: c_int, ty: c_int, proto: c_int) -> Res;
    unsafe fn bind(&self, fd: c_int, a: *const sockaddr, len: socklen_t) -> Res;
    unsafe fn listen(&self, fd: c_int, backlog: c_int) -> Res;
    unsafe fn accept4(&self, fd: c_int, a: *mut sockaddr, l: *mut socklen_t, fl: c_int) -> Res;
    unsafe fn connect(&self, fd: c_int, a: *const sockaddr, len: socklen_t) -> Res;
    unsafe fn send(&self, fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> Res;
    unsafe fn recv(&self, fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> Res;
    unsafe fn close(&self, fd: c_int) -> Res;
    unsafe fn shutdown(&self, fd: c_int, how: c_int) -> Res;
    unsafe fn getsockname(&self, fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> Res;
    unsafe fn getpeername(&self, fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> Res;
    unsafe fn setsockopt(
        &self,
        fd: c_int,
        lv: c_int,
        n: c_int,
        v: *const c_void,
        l: socklen_t,
    ) -> Res;
    unsafe fn getsockopt(
        &self,
        fd: c_int,
        lv: c_int,
        n: c_int,
        v: *mut c_void,
        l: *mut socklen_t,
    ) -> Res;
    unsafe fn fcntl(&self, fd: c_int, cmd: c_int, arg: c_int) -> Res;
    unsafe fn poll(&self, fds: *mut pollfd, n: libc::nfds_t, timeout: c_int) -> Res;
}

/// Linux's own sockets.
struct Kernel;

impl Sockets for Kernel {
    unsafe fn socket(&self, domain: c_int, ty: c_int, proto: c_int) -> Res {
        res!(libc::socket(domain, ty, proto))
    }
    unsafe fn bind(&self, fd: c_int, a: *const sockaddr, len: socklen_t) -> Res {
        res!(libc::bind(fd, a, len))
    }
    unsafe fn listen(&self, fd: c_int, backlog: c_int) -> Res {
        res!(libc::listen(fd, backlog))
    }
    unsafe fn accept4(&self, fd: c_int, a: *mut sockaddr, l: *mut socklen_t, fl: c_int) -> Res {
        res!(libc::accept4(fd, a, l, fl))
    }
    unsafe fn connect(&self, fd: c_int, a: *const sockaddr, len: socklen_t) -> Res {
        res!(libc::connect(fd, a, len))
    }
    unsafe fn send(&self, fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> Res {
        res!(libc::send(fd, buf, len, flags))
    }
    unsafe fn recv(&self, fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> Res {
        res!(libc::recv(fd, buf, len, flags))
    }
    unsafe fn close(&self, fd: c_int) -> Res {
        res!(libc::close(fd))
    }
    unsafe fn shutdown(&self, fd: c_int, how: c_int) -> Res {
        res!(libc::shutdown(fd, how))
    }
    unsafe fn getsockname(&self, fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> Res {
        res!(libc::getsockname(fd, a, l))
    }
    unsafe fn getpeername(&self, fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> Res {
        res!(libc::getpeername(fd, a, l))
    }
    unsafe fn setsockopt(
        &self,
        fd: c_int,
        lv: c_int,
        n: c_int,
        v: *const c_void,
        l: socklen_t,
    ) -> Res {
        res!(libc::setsockopt(fd, lv, n, v, l))
    }
    unsafe fn getsockopt(
        &self,
        fd: c_int,
        lv: c_int,
        n: c_int,
        v: *mut c_void,
        l: *mut socklen_t,
    ) -> Res {
        res!(libc::getsockopt(fd, lv, n, v, l))
    }
    unsafe fn fcntl(&self, fd: c_int, cmd: c_int, arg: c_int) -> Res {
        res!(libc::fcntl(fd, cmd, arg))
    }
    unsafe fn poll(&self, fds: *mut pollfd, n: libc::nfds_t, timeout: c_int) -> Res {
        res!(libc::poll(fds, n, timeout))
    }
}

/// rstcp through its C ABI.
struct Rstcp;

impl Sockets for Rstcp {
    unsafe fn socket(&self, domain: c_int, ty: c_int, proto: c_int) -> Res {
        res!(rs_socket(domain, ty, proto))
    }
    unsafe fn bind(&self, fd: c_int, a: *const sockaddr, len: socklen_t) -> Res {
        res!(rs_bind(fd, a, len))
    }
    unsafe fn listen(&self, fd: c_int, backlog: c_int) -> Res {
        res!(rs_listen(fd, backlog))
    }
    unsafe fn accept4(&self, fd: c_int, a: *mut sockaddr, l: *mut socklen_t, fl: c_int) -> Res {
        res!(rs_accept4(fd, a, l, fl))
    }
    unsafe fn connect(&self, fd: c_int, a: *const sockaddr, len: socklen_t) -> Res {
        res!(rs_connect(fd, a, len))
    }
    unsafe fn send(&self, fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> Res {
        res!(rs_send(fd, buf, len, flags))
    }
    unsafe fn recv(&self, fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> Res {
        res!(rs_recv(fd, buf, len, flags))
    }
    unsafe fn close(&self, fd: c_int) -> Res {
        res!(rs_close(fd))
    }
    unsafe fn shutdown(&self, fd: c_int, how: c_int) -> Res {
        res!(rs_shutdown(fd, how))
    }
    unsafe fn getsockname(&self, fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> Res {
        res!(rs_getsockname(fd, a, l))
    }
    unsafe fn getpeername(&self, fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> Res {
        res!(rs_getpeername(fd, a, l))
    }
    unsafe fn setsockopt(
        &self,
        fd: c_int,
        lv: c_int,
        n: c_int,
        v: *const c_void,
        l: socklen_t,
    ) -> Res {
        res!(rs_setsockopt(fd, lv, n, v, l))
    }
    unsafe fn getsockopt(
        &self,
        fd: c_int,
        lv: c_int,
        n: c_int,
        v: *mut c_void,
        l: *mut socklen_t,
    ) -> Res {
        res!(rs_getsockopt(fd, lv, n, v, l))
    }
    unsafe fn fcntl(&self, fd: c_int, cmd: c_int, arg: c_int) -> Res {
        res!(rs_fcntl(fd, cmd, arg))
    }
    unsafe fn poll(&self, fds: *mut pollfd, n: libc::nfds_t, timeout: c_int) -> Res {
        res!(rs_poll(fds, n, timeout))
    }
}

/// What a step is compared on.
#[derive(Clone, PartialEq)]
struct Out {
    /// The return value; None for a descriptor, whose number differs by design.
    ret: Option<i64>,
    errno: i32,
    /// What a successful call wrote: lengths, addresses, values, revents.
    wrote: String,
}

impl Out {
    fn exact((ret, errno): Res) -> Out {
        let wrote = String::new();
        Out {
            ret: Some(ret),
            errno,
            wrote,
        }
    }

    fn fd((ret, errno): Res) -> Out {
        let ret = (ret < 0).then_some(ret);
        Out {
            ret,
            errno,
            wrote: String::new(),
        }
    }

    fn io(r: std::io::Result<usize>) -> Out {
        match r {
            Ok(n) => Out::exact((n as i64, 0)),
            Err(e) => Out::exact((-1, e.raw_os_error().unwrap_or(libc::EIO))),
        }
    }

    /// Adds what the call wrote, if it succeeded (failed calls write nothing).
    fn wrote(mut self, what: String) -> Out {
        if self.errno == 0 && self.ret.unwrap_or(0) >= 0 {
            self.wrote = what;
        }
        self
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.ret, self.errno) {
            (_, 0) if self.ret.is_none() => write!(f, "fd")?,
            (Some(r), 0) => write!(f, "{r}")?,
            (_, e) => write!(f, "-1 {}", errno_name(e))?,
        }
        if !self.wrote.is_empty() {
            write!(f, " {}", self.wrote)?;
        }
        Ok(())
    }
}

fn errno_name(e: i32) -> String {
    use libc::*;
    let names = [
        (EBADF, "EBADF"),
        (EFAULT, "EFAULT"),
        (EINVAL, "EINVAL"),
        (EAGAIN, "EAGAIN"),
        (EAFNOSUPPORT, "EAFNOSUPPORT"),
        (EPROTONOSUPPORT, "EPROTONOSUPPORT"),
        (EADDRINUSE, "EADDRINUSE"),
        (EADDRNOTAVAIL, "EADDRNOTAVAIL"),
        (ENOTCONN, "ENOTCONN"),
        (EISCONN, "EISCONN"),
        (EPIPE, "EPIPE"),
        (ECONNREFUSED, "ECONNREFUSED"),
        (EINPROGRESS, "EINPROGRESS"),
        (EALREADY, "EALREADY"),
        (ENOPROTOOPT, "ENOPROTOOPT"),
        (EOPNOTSUPP, "EOPNOTSUPP"),
        (EDOM, "EDOM"),
        (ECONNABORTED, "ECONNABORTED"),
        (ECONNRESET, "ECONNRESET"),
        (ETIMEDOUT, "ETIMEDOUT"),
        (EIO, "EIO"),
        (EPERM, "EPERM"),
    ];
    let known = names.iter().find(|(n, _)| *n == e);
    known.map_or_else(|| format!("errno {e}"), |(_, s)| s.to_string())
}

fn revents(bits: i16) -> String {
    use libc::*;
    let names = [
        (POLLIN, "IN"),
        (POLLPRI, "PRI"),
        (POLLOUT, "OUT"),
        (POLLERR, "ERR"),
        (POLLHUP, "HUP"),
        (POLLNVAL, "NVAL"),
        (POLLRDHUP, "RDHUP"),
        (POLLRDNORM, "RDNORM"),
        (POLLWRNORM, "WRNORM"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, s)| *s)
        .collect();
    if set.is_empty() {
        "-".into()
    } else {
        set.join("|")
    }
}

/// Memory for an address or option argument, aligned for any of them and
/// longer than sockaddr_storage (the "length 200" steps read that far).
#[repr(C, align(8))]
struct Bytes([u8; 256]);

/// An address argument to bind or connect. Ports are offsets into the run's
/// range; offset 0 is port 0.
#[derive(Clone, Copy)]
enum A {
    Null,
    /// The address the sockets under test have (127.0.0.1 / 10.77.0.2).
    Local(u16),
    /// Where kernel peers listen (127.0.0.1 / 10.77.0.1).
    Peer(u16),
    Any(u16),
    /// AF_UNSPEC with 0.0.0.0: bind takes it as AF_INET, connect as "disconnect".
    Unspec(u16),
    Foreign,
    /// [::1] as a sockaddr_in6 (28 bytes).
    Inet6,
    /// "/nonexistent" as a sockaddr_un (110 bytes).
    Unix,
}

/// An output argument (address or option value) and its length pointer.
#[derive(Clone, Copy)]
enum Buf {
    /// A buffer, and *len = n.
    Len(socklen_t),
    /// A NULL buffer, and *len = n.
    NullPtr(socklen_t),
    /// A buffer, and a NULL length pointer.
    NullLen,
    /// Both NULL (accept's "no address wanted").
    None,
}

/// An option value for setsockopt.
#[derive(Clone, Copy)]
enum V {
    Int(i32),
    /// A timeval: seconds, microseconds.
    Tv(i64, i64),
    Null,
}

/// One run of the steps on one implementation, and the state steps share.
struct Run {
    api: &'static dyn Sockets,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    /// First port of this run's range.
    base: u16,
    /// Sockets by the name steps give them (closed ones too: their numbers
    /// are the "closed descriptor" arguments).
    fds: HashMap<&'static str, c_int>,
    open: HashSet<c_int>,
    /// Kernel-side listeners by port offset, and the kernel end of each
    /// connection, by the name of the socket under test.
    listeners: HashMap<u16, TcpListener>,
    peers: HashMap<&'static str, TcpStream>,
}

type Step = (&'static str, fn(&mut Run) -> Out);

impl Run {
    fn new(api: &'static dyn Sockets, local: Ipv4Addr, peer: Ipv4Addr, base: u16) -> Run {
        let (fds, open) = (HashMap::new(), HashSet::new());
        let (listeners, peers) = (HashMap::new(), HashMap::new());
        Run {
            api,
            local,
            peer,
            base,
            fds,
            open,
            listeners,
            peers,
        }
    }

    fn all(mut self, steps: &[Step]) -> Vec<Out> {
        let outs = steps.iter().map(|(_, step)| step(&mut self)).collect();
        for fd in self.open.drain() {
            // SAFETY: closing a descriptor this run opened.
            unsafe { self.api.close(fd) };
        }
        outs
    }

    /// A descriptor argument: a socket named by an earlier step, "-1", or
    /// "huge" (never open).
    fn fd(&self, name: &str) -> c_int {
        match name {
            "-1" => -1,
            "huge" => HUGE_FD,
            _ => *self
                .fds
                .get(name)
                .unwrap_or_else(|| panic!("no socket {name:?} yet")),
        }
    }

    fn keep(&mut self, name: &'static str, ret: i64) {
        // A failed socket() leaves -1 under the name: later steps get EBADF.
        self.fds.insert(name, ret as c_int);
        if ret >= 0 {
            self.open.insert(ret as c_int);
        }
    }

    fn port(&self, offset: u16) -> u16 {
        if offset == 0 {
            0
        } else {
            self.base + offset
        }
    }

    /// A port as compared: the ports of the two runs differ by their base,
    /// and ports the system chose differ anyway, so those are just "eph".
    fn port_label(&self, p: u16) -> String {
        match p {
            0 => "0".into(),
            p if (self.base..self.base + 50).contains(&p) => format!("P{}", p - self.base),
            _ => "eph".into(),
        }
    }

    /// An address as compared: the runs' hosts differ by design (127.0.0.1
    /// against 10.77.0.x), so any of them is "host".
    fn host_label(&self, ip: Ipv4Addr) -> String {
        match ip {
            Ipv4Addr::UNSPECIFIED => "any".into(),
            ip if ip == self.local || ip == self.peer => "host".into(),
            ip => ip.to_string(),
        }
    }

    fn sockaddr(&self, a: A) -> Bytes {
        let mut b = Bytes([0; 256]);
        let mut put = |family: c_int, port: u16, ip: Ipv4Addr| {
            b.0[..2].copy_from_slice(&(family as libc::sa_family_t).to_ne_bytes());
            b.0[2..4].copy_from_slice(&port.to_be_bytes());
            b.0[4..8].copy_from_slice(&ip.octets());
        };
        match a {
            A::Null => {}
            A::Local(p) => put(AF_INET, self.port(p), self.local),
            A::Peer(p) => put(AF_INET, self.port(p), self.peer),
            A::Any(p) => put(AF_INET, self.port(p), Ipv4Addr::UNSPECIFIED),
            A::Unspec(p) => put(AF_UNSPEC, self.port(p), Ipv4Addr::UNSPECIFIED),
            A::Foreign => put(AF_INET, self.port(1), FOREIGN),
            A::Inet6 => {
                put(AF_INET6, self.port(1), Ipv4Addr::UNSPECIFIED);
                b.0[23] = 1; // sin6_addr = ::1
            }
            A::Unix => {
                put(AF_UNIX, 0, Ipv4Addr::UNSPECIFIED);
                b.0[2..15].copy_from_slice(b"/nonexistent\0");
            }
        }
        b
    }

    /// What getsockname & co. wrote: the length, and as much of the address
    /// as the buffer held (the kernel truncates to the caller's length).
    fn show_addr(&self, b: &Bytes, room: socklen_t, len: socklen_t) -> String {
        let n = (room as i32).clamp(0, SIN as i32) as usize;
        let mut s = format!("len={len}");
        if n >= 2 {
            s += &format!(" fam={}", u16::from_ne_bytes([b.0[0], b.0[1]]));
        }
        if n >= 4 {
            let ip = <[u8; 4]>::try_from(&b.0[4..8]).unwrap();
            let host = if n >= 8 {
                self.host_label(ip.into())
            } else {
                "?".into()
            };
            let port = u16::from_be_bytes([b.0[2], b.0[3]]);
            s += &format!(" {host}:{}", self.port_label(port));
        }
        s
    }

    // The calls, as steps use them.

    fn socket(&mut self, name: &'static str, domain: c_int, ty: c_int, proto: c_int) -> Out {
        let r = unsafe { self.api.socket(domain, ty, proto) };
        self.keep(name, r.0);
        Out::fd(r)
    }

    fn tcp(&mut self, name: &'static str) -> Out {
        self.socket(name, AF_INET, SOCK_STREAM, 0)
    }

    fn bind(&mut self, name: &str, a: A, len: socklen_t) -> Out {
        let b = self.sockaddr(a);
        let p = if matches!(a, A::Null) {
            null()
        } else {
            b.0.as_ptr().cast()
        };
        Out::exact(unsafe { self.api.bind(self.fd(name), p, len) })
    }

    fn connect(&mut self, name: &str, a: A, len: socklen_t) -> Out {
        let b = self.sockaddr(a);
        let p = if matches!(a, A::Null) {
            null()
        } else {
            b.0.as_ptr().cast()
        };
        Out::exact(unsafe { self.api.connect(self.fd(name), p, len) })
    }

    fn listen(&mut self, name: &str, backlog: c_int) -> Out {
        Out::exact(unsafe { self.api.listen(self.fd(name), backlog) })
    }

    fn accept(&mut self, name: &str, new: &'static str, b: Buf, flags: c_int) -> Out {
        let (fd, api) = (self.fd(name), self.api);
        let (r, bytes, room, len) =
            out_buf(b, |p, l| unsafe { api.accept4(fd, p.cast(), l, flags) });
        self.keep(new, r.0);
        let shown = if matches!(b, Buf::None) {
            String::new()
        } else {
            self.show_addr(&bytes, room, len)
        };
        Out::fd(r).wrote(shown)
    }

    fn sockname(&mut self, name: &str, b: Buf) -> Out {
        let (fd, api) = (self.fd(name), self.api);
        let (r, bytes, room, len) = out_buf(b, |p, l| unsafe { api.getsockname(fd, p.cast(), l) });
        Out::exact(r).wrote(self.show_addr(&bytes, room, len))
    }

    fn peername(&mut self, name: &str, b: Buf) -> Out {
        let (fd, api) = (self.fd(name), self.api);
        let (r, bytes, room, len) = out_buf(b, |p, l| unsafe { api.getpeername(fd, p.cast(), l) });
        Out::exact(r).wrote(self.show_addr(&bytes, room, len))
    }

    fn send(&mut self, name: &str, data: &[u8], flags: c_int) -> Out {
        let p = data.as_ptr().cast();
        Out::exact(unsafe { self.api.send(self.fd(name), p, data.len(), flags) })
    }

    fn send_null(&mut self, name: &str, len: usize, flags: c_int) -> Out {
        Out::exact(unsafe { self.api.send(self.fd(name), null(), len, flags) })
    }

    fn recv(&mut self, name: &str, len: usize, flags: c_int) -> Out {
        let mut b = Bytes([0; 256]);
        let r = unsafe {
            self.api
                .recv(self.fd(name), b.0.as_mut_ptr().cast(), len, flags)
        };
        let got = &b.0[..(r.0.max(0) as usize).min(len)];
        Out::exact(r).wrote(format!("{:?}", String::from_utf8_lossy(got)))
    }

    fn recv_null(&mut self, name: &str, len: usize, flags: c_int) -> Out {
        Out::exact(unsafe { self.api.recv(self.fd(name), null_mut(), len, flags) })
    }

    fn shutdown(&mut self, name: &str, how: c_int) -> Out {
        Out::exact(unsafe { self.api.shutdown(self.fd(name), how) })
    }

    fn close(&mut self, name: &str) -> Out {
        let fd = self.fd(name);
        let r = unsafe { self.api.close(fd) };
        if r.0 == 0 {
            self.open.remove(&fd);
        }
        Out::exact(r)
    }

    fn setopt(&mut self, name: &str, level: c_int, opt: c_int, v: V, len: socklen_t) -> Out {
        let mut b = Bytes([0; 256]);
        match v {
            V::Int(i) => b.0[..4].copy_from_slice(&i.to_ne_bytes()),
            V::Tv(tv_sec, tv_usec) => {
                let tv = libc::timeval { tv_sec, tv_usec };
                // SAFETY: 256 bytes hold a timeval.
                unsafe { std::ptr::write_unaligned(b.0.as_mut_ptr().cast(), tv) };
            }
            V::Null => {}
        }
        let p = if matches!(v, V::Null) {
            null()
        } else {
            b.0.as_ptr().cast()
        };
        Out::exact(unsafe { self.api.setsockopt(self.fd(name), level, opt, p, len) })
    }

    fn getopt(&mut self, name: &str, level: c_int, opt: c_int, b: Buf) -> Out {
        let (fd, api) = (self.fd(name), self.api);
        let (r, bytes, _, len) = out_buf(b, |p, l| unsafe { api.getsockopt(fd, level, opt, p, l) });
        Out::exact(r).wrote(show_opt(&bytes, len))
    }

    /// Bounds every blocking call on `name` (SO_RCVTIMEO and SO_SNDTIMEO),
    /// so that no step can hang the test, whatever either side does.
    fn bound(&mut self, name: &str, ms: i64) -> Out {
        let tv = V::Tv(ms / 1000, ms % 1000 * 1000);
        let r = self.setopt(name, SOL_SOCKET, SO_RCVTIMEO, tv, TV);
        if r.errno != 0 {
            return r;
        }
        self.setopt(name, SOL_SOCKET, SO_SNDTIMEO, tv, TV)
    }

    fn fcntl(&mut self, name: &str, cmd: c_int, arg: c_int) -> Out {
        Out::exact(unsafe { self.api.fcntl(self.fd(name), cmd, arg) })
    }

    fn poll(&mut self, set: &[(&str, i16)], timeout_ms: c_int) -> Out {
        let mut fds: Vec<pollfd> = set
            .iter()
            .map(|&(n, events)| pollfd {
                fd: self.fd(n),
                events,
                revents: 0,
            })
            .collect();
        let r = unsafe {
            self.api
                .poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms)
        };
        let shown: Vec<String> = fds.iter().map(|p| revents(p.revents)).collect();
        Out::exact(r).wrote(shown.join(" "))
    }

    fn poll_null(&mut self, n: libc::nfds_t) -> Out {
        Out::exact(unsafe { self.api.poll(null_mut(), n, 0) })
    }

    // The kernel peers: std::net in this process, inside the namespace.

    fn peer_listen(&mut self, port: u16) -> Out {
        let r = TcpListener::bind((self.peer, self.port(port))).and_then(|l| {
            l.set_nonblocking(true)?;
            self.listeners.insert(port, l);
            Ok(0)
        });
        Out::io(r)
    }

    /// A listener whose accept queue is full (backlog 0 holds one, taken by
    /// a kernel connection here), so that Linux drops further SYNs: a
    /// connect to it stays in SYN-SENT for a second, whichever stack sends.
    fn peer_listen_full(&mut self, port: u16) -> Out {
        let out = self.peer_listen(port);
        let l = &self.listeners[&port];
        // SAFETY: listen() on a listener we own; a second listen sets the backlog.
        unsafe { libc::listen(l.as_raw_fd(), 0) };
        let to = SocketAddr::from((self.peer, self.port(port)));
        match TcpStream::connect_timeout(&to, PEER_WAIT) {
            Ok(filler) => {
                self.peers.insert("filler", filler);
                out
            }
            Err(e) => Out::io(Err(e)),
        }
    }

    fn peer_accept(&mut self, name: &'static str, port: u16) -> Out {
        let l = &self.listeners[&port];
        if !common::wait_readable(l.as_raw_fd(), PEER_WAIT.as_millis() as i32) {
            return Out::exact((-1, libc::ETIMEDOUT));
        }
        let r = l.accept().and_then(|(s, _)| {
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(PEER_WAIT))?;
            self.peers.insert(name, s);
            Ok(0)
        });
        Out::io(r)
    }

    fn peer_connect(&mut self, name: &'static str, port: u16) -> Out {
        let to = SocketAddr::from((self.local, self.port(port)));
        let r = TcpStream::connect_timeout(&to, PEER_WAIT).and_then(|s| {
            s.set_read_timeout(Some(PEER_WAIT))?;
            self.peers.insert(name, s);
            Ok(0)
        });
        Out::io(r)
    }

    fn peer_write(&mut self, name: &str, data: &[u8]) -> Out {
        let s = self.peers.get_mut(name).expect("no such peer");
        Out::io(s.write_all(data).map(|_| data.len()))
    }

    /// Reads what the socket under test sent (0 for its FIN), waiting at most 2 s.
    fn peer_read(&mut self, name: &str) -> Out {
        let mut buf = [0u8; 64];
        let s = self.peers.get_mut(name).expect("no such peer");
        let r = s.read(&mut buf);
        let got = &buf[..*r.as_ref().unwrap_or(&0)];
        let shown = format!("{:?}", String::from_utf8_lossy(got));
        Out::io(r).wrote(shown)
    }

    fn peer_close(&mut self, name: &str) -> Out {
        Out::io(
            self.peers
                .remove(name)
                .map(|_| 0)
                .ok_or(std::io::ErrorKind::NotFound.into()),
        )
    }
}

/// Calls `f` with an output buffer (filled with 0xAA, so that what is
/// written shows) and a length pointer as `b` says. Returns the result, the
/// buffer, how many bytes the call could write, and the length after.
fn out_buf(
    b: Buf,
    f: impl FnOnce(*mut c_void, *mut socklen_t) -> Res,
) -> (Res, Bytes, socklen_t, socklen_t) {
    let mut bytes = Bytes([0xAA; 256]);
    let (mut len, null_ptr, null_len) = match b {
        Buf::Len(n) => (n, false, false),
        Buf::NullPtr(n) => (n, true, false),
        Buf::NullLen => (0, false, true),
        Buf::None => (0, true, true),
    };
    let room = if null_ptr { 0 } else { len };
    let p = if null_ptr {
        null_mut()
    } else {
        bytes.0.as_mut_ptr().cast()
    };
    let l = if null_len {
        null_mut()
    } else {
        &mut len as *mut socklen_t
    };
    let r = f(p, l);
    (r, bytes, room, len)
}

/// An option value as getsockopt wrote it: an int, a linger, a timeval, or bytes.
fn show_opt(b: &Bytes, len: socklen_t) -> String {
    let int = |at: usize| i32::from_ne_bytes(b.0[at..at + 4].try_into().unwrap());
    let long = |at: usize| i64::from_ne_bytes(b.0[at..at + 8].try_into().unwrap());
    match len {
        4 => format!("len=4 v={}", int(0)),
        8 => format!("len=8 v={},{}", int(0), int(4)),
        16 => format!("len=16 tv={}.{:06}", long(0), long(8)),
        n => {
            let bytes: Vec<String> = b.0[..(n as usize).min(16)]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect();
            format!("len={n} bytes={}", bytes.join(""))
        }
    }
}

/// The sequence run on both. Port offsets: 1 a kernel peer listening, 2
/// nothing listening, 3 a kernel listener with a full queue, 4 our listener,
/// 5..8 bind targets.
const STEPS: &[Step] = &[
    // socket(): the family, then the type and flags, then the protocol.
    ("socket(family 12345)", |r| {
        r.socket("x", 12345, SOCK_STREAM, 0)
    }),
    ("socket(STREAM | 0x40000000)", |r| {
        r.socket("x", AF_INET, SOCK_STREAM | 0x4000_0000, 0)
    }),
    ("socket(type 15)", |r| r.socket("x", AF_INET, 15, 0)),
    ("socket(STREAM, IPPROTO_UDP)", |r| {
        r.socket("x", AF_INET, SOCK_STREAM, IPPROTO_UDP)
    }),
    ("socket n: NONBLOCK|CLOEXEC, IPPROTO_TCP", |r| {
        r.socket(
            "n",
            AF_INET,
            SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
            IPPROTO_TCP,
        )
    }),
    // fcntl(): the descriptor, then the command.
    ("fcntl(n, F_GETFL)", |r| r.fcntl("n", F_GETFL, 0)),
    ("fcntl(n, F_GETFD): FD_CLOEXEC", |r| {
        r.fcntl("n", F_GETFD, 0)
    }),
    ("fcntl(n, F_SETFL, 0)", |r| r.fcntl("n", F_SETFL, 0)),
    ("fcntl(n, F_GETFL) cleared", |r| r.fcntl("n", F_GETFL, 0)),
    ("fcntl(n, F_SETFL, O_NONBLOCK)", |r| {
        r.fcntl("n", F_SETFL, O_NONBLOCK)
    }),
    ("fcntl(n, F_GETFL) set", |r| r.fcntl("n", F_GETFL, 0)),
    ("fcntl(n, cmd 9999)", |r| r.fcntl("n", 9999, 0)),
    ("close(n)", |r| r.close("n")),
    // Bad descriptors: every call looks the descriptor up first (except
    // accept4, which checks its flags before). z's number must be used
    // before anything opens another descriptor, which could reuse it.
    ("socket z", |r| r.tcp("z")),
    ("close(z)", |r| r.close("z")),
    ("close(z) again", |r| r.close("z")),
    ("send(closed z)", |r| r.send("z", b"x", MSG_NOSIGNAL)),
    ("recv(closed z)", |r| r.recv("z", 8, 0)),
    ("fcntl(closed z, F_GETFL)", |r| r.fcntl("z", F_GETFL, 0)),
    ("poll(closed z)", |r| r.poll(&[("z", POLLIN)], 0)),
    ("close(-1)", |r| r.close("-1")),
    ("close(huge)", |r| r.close("huge")),
    ("listen(-1)", |r| r.listen("-1", 8)),
    ("bind(-1, local)", |r| r.bind("-1", A::Local(5), SIN)),
    ("bind(-1, NULL)", |r| r.bind("-1", A::Null, SIN)),
    ("connect(huge, peer)", |r| {
        r.connect("huge", A::Peer(1), SIN)
    }),
    ("connect(-1, NULL)", |r| r.connect("-1", A::Null, SIN)),
    ("accept(-1)", |r| r.accept("-1", "x", Buf::None, 0)),
    ("accept4(-1, flags 0x7000)", |r| {
        r.accept("-1", "x", Buf::None, 0x7000)
    }),
    ("send(-1, NULL, 5)", |r| r.send_null("-1", 5, MSG_NOSIGNAL)),
    ("recv(huge, NULL, 5)", |r| r.recv_null("huge", 5, 0)),
    ("shutdown(-1, SHUT_WR)", |r| r.shutdown("-1", SHUT_WR)),
    ("shutdown(-1, how 42)", |r| r.shutdown("-1", 42)),
    ("getsockname(-1)", |r| r.sockname("-1", Buf::Len(SIN))),
    ("getpeername(huge)", |r| r.peername("huge", Buf::Len(SIN))),
    ("setsockopt(-1, SO_REUSEADDR)", |r| {
        r.setopt("-1", SOL_SOCKET, SO_REUSEADDR, V::Int(1), 4)
    }),
    ("getsockopt(huge, SO_TYPE)", |r| {
        r.getopt("huge", SOL_SOCKET, SO_TYPE, Buf::Len(4))
    }),
    ("fcntl(-1, F_GETFL)", |r| r.fcntl("-1", F_GETFL, 0)),
    ("fcntl(huge, cmd 9999)", |r| r.fcntl("huge", 9999, 0)),
    ("poll(fd -1): ignored", |r| r.poll(&[("-1", POLLIN)], 0)),
    ("poll(huge)", |r| r.poll(&[("huge", POLLIN)], 0)),
    ("poll(NULL, 1)", |r| r.poll_null(1)),
    ("poll(NULL, 0)", |r| r.poll_null(0)),
    // bind(): length > sockaddr_storage, copy (EFAULT), length < 16, family,
    // address, state.
    ("socket b", |r| r.tcp("b")),
    ("bind(b, NULL, 16)", |r| r.bind("b", A::Null, SIN)),
    ("bind(b, NULL, 0)", |r| r.bind("b", A::Null, 0)),
    ("bind(b, local, 0)", |r| r.bind("b", A::Local(5), 0)),
    ("bind(b, local, 4)", |r| r.bind("b", A::Local(5), 4)),
    ("bind(b, local, 15)", |r| r.bind("b", A::Local(5), 15)),
    ("bind(b, local, 200)", |r| r.bind("b", A::Local(5), 200)),
    ("bind(b, AF_INET6, 4)", |r| r.bind("b", A::Inet6, 4)),
    ("bind(b, AF_INET6, 28)", |r| r.bind("b", A::Inet6, 28)),
    ("bind(b, AF_UNIX, 110)", |r| r.bind("b", A::Unix, 110)),
    ("bind(b, 10.99.0.1)", |r| r.bind("b", A::Foreign, SIN)),
    ("bind(b, local:P5)", |r| r.bind("b", A::Local(5), SIN)),
    ("bind(b, local:P6) again", |r| r.bind("b", A::Local(6), SIN)),
    ("getsockname(b, 16)", |r| r.sockname("b", Buf::Len(SIN))),
    ("getsockname(b, 4): truncated", |r| {
        r.sockname("b", Buf::Len(4))
    }),
    ("getsockname(b, 0)", |r| r.sockname("b", Buf::Len(0))),
    ("getsockname(b, NULL addr, 0)", |r| {
        r.sockname("b", Buf::NullPtr(0))
    }),
    ("getsockname(b, NULL addr, 16)", |r| {
        r.sockname("b", Buf::NullPtr(SIN))
    }),
    ("getsockname(b, NULL len)", |r| {
        r.sockname("b", Buf::NullLen)
    }),
    ("getsockname(b, len -1)", |r| {
        r.sockname("b", Buf::Len(socklen_t::MAX))
    }),
    ("getpeername(b): unconnected", |r| {
        r.peername("b", Buf::Len(SIN))
    }),
    ("socket c", |r| r.tcp("c")),
    ("bind(c, local:P5): in use", |r| {
        r.bind("c", A::Local(5), SIN)
    }),
    ("socket v", |r| r.tcp("v")),
    ("bind(v, any:0)", |r| r.bind("v", A::Any(0), SIN)),
    ("getsockname(v): port chosen", |r| {
        r.sockname("v", Buf::Len(SIN))
    }),
    ("socket u", |r| r.tcp("u")),
    ("bind(u, AF_UNSPEC any:P8)", |r| {
        r.bind("u", A::Unspec(8), SIN)
    }),
    ("getsockname(u)", |r| r.sockname("u", Buf::Len(SIN))),
    // SO_REUSEADDR on both: a second bind is allowed, a second listen not.
    ("socket d", |r| r.tcp("d")),
    ("socket e", |r| r.tcp("e")),
    ("setsockopt(d, SO_REUSEADDR)", |r| {
        r.setopt("d", SOL_SOCKET, SO_REUSEADDR, V::Int(1), 4)
    }),
    ("setsockopt(e, SO_REUSEADDR)", |r| {
        r.setopt("e", SOL_SOCKET, SO_REUSEADDR, V::Int(1), 4)
    }),
    ("getsockopt(e, SO_REUSEADDR)", |r| {
        r.getopt("e", SOL_SOCKET, SO_REUSEADDR, Buf::Len(4))
    }),
    ("bind(d, local:P7)", |r| r.bind("d", A::Local(7), SIN)),
    ("bind(e, local:P7): both reuse", |r| {
        r.bind("e", A::Local(7), SIN)
    }),
    ("listen(d)", |r| r.listen("d", 8)),
    ("listen(e): d listens there", |r| r.listen("e", 8)),
    ("close(b)", |r| r.close("b")),
    ("close(c)", |r| r.close("c")),
    ("close(v)", |r| r.close("v")),
    ("close(u)", |r| r.close("u")),
    ("close(d)", |r| r.close("d")),
    ("close(e)", |r| r.close("e")),
    // connect(): copy, length < 2, AF_UNSPEC (disconnect), state, length
    // < 16, family.
    ("socket f", |r| r.tcp("f")),
    ("bound f: timeouts 2 s", |r| r.bound("f", 2000)),
    ("connect(f, NULL, 16)", |r| r.connect("f", A::Null, SIN)),
    ("connect(f, NULL, 0)", |r| r.connect("f", A::Null, 0)),
    ("connect(f, peer, 0)", |r| r.connect("f", A::Peer(1), 0)),
    ("connect(f, peer, 4)", |r| r.connect("f", A::Peer(1), 4)),
    ("connect(f, peer, 15)", |r| r.connect("f", A::Peer(1), 15)),
    ("connect(f, peer, 200)", |r| r.connect("f", A::Peer(1), 200)),
    ("connect(f, AF_INET6, 4)", |r| r.connect("f", A::Inet6, 4)),
    ("connect(f, AF_INET6, 28)", |r| r.connect("f", A::Inet6, 28)),
    ("connect(f, AF_UNIX, 110)", |r| r.connect("f", A::Unix, 110)),
    ("connect(f, AF_UNSPEC)", |r| {
        r.connect("f", A::Unspec(1), SIN)
    }),
    ("connect(f, peer:P2): closed port", |r| {
        r.connect("f", A::Peer(2), SIN)
    }),
    ("getsockopt(f, SO_ERROR) after", |r| {
        r.getopt("f", SOL_SOCKET, SO_ERROR, Buf::Len(4))
    }),
    ("close(f)", |r| r.close("f")),
    // A socket never connected.
    ("socket g", |r| r.tcp("g")),
    ("bound g: timeouts 2 s", |r| r.bound("g", 2000)),
    ("send(g)", |r| r.send("g", b"x", MSG_NOSIGNAL)),
    ("send(g, NULL, 5)", |r| r.send_null("g", 5, MSG_NOSIGNAL)),
    ("send(g, len 0)", |r| r.send("g", b"", MSG_NOSIGNAL)),
    ("recv(g)", |r| r.recv("g", 8, 0)),
    ("recv(g, len 0)", |r| r.recv("g", 0, 0)),
    ("accept(g): unbound", |r| r.accept("g", "x", Buf::None, 0)),
    ("shutdown(g, SHUT_WR)", |r| r.shutdown("g", SHUT_WR)),
    ("shutdown(g, how 42)", |r| r.shutdown("g", 42)),
    ("getpeername(g)", |r| r.peername("g", Buf::Len(SIN))),
    ("getsockname(g): unbound", |r| {
        r.sockname("g", Buf::Len(SIN))
    }),
    ("poll(g, IN|OUT)", |r| r.poll(&[("g", POLLIN | POLLOUT)], 0)),
    // getsockopt / setsockopt: level and name, then pointers and lengths.
    ("getsockopt(g, SO_TYPE)", |r| {
        r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::Len(4))
    }),
    ("getsockopt(g, SO_ERROR)", |r| {
        r.getopt("g", SOL_SOCKET, SO_ERROR, Buf::Len(4))
    }),
    ("getsockopt(g, SO_ACCEPTCONN)", |r| {
        r.getopt("g", SOL_SOCKET, SO_ACCEPTCONN, Buf::Len(4))
    }),
    ("getsockopt(g, TCP_NODELAY)", |r| {
        r.getopt("g", IPPROTO_TCP, TCP_NODELAY, Buf::Len(4))
    }),
    ("setsockopt(g, TCP_NODELAY, 1)", |r| {
        r.setopt("g", IPPROTO_TCP, TCP_NODELAY, V::Int(1), 4)
    }),
    ("getsockopt(g, TCP_NODELAY) set", |r| {
        r.getopt("g", IPPROTO_TCP, TCP_NODELAY, Buf::Len(4))
    }),
    ("getsockopt(g, SO_TYPE, len 2)", |r| {
        r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::Len(2))
    }),
    ("getsockopt(g, SO_TYPE, len 0)", |r| {
        r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::Len(0))
    }),
    ("getsockopt(g, SO_TYPE, len -1)", |r| {
        r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::Len(socklen_t::MAX))
    }),
    ("getsockopt(g, TCP_NODELAY, len -1)", |r| {
        r.getopt("g", IPPROTO_TCP, TCP_NODELAY, Buf::Len(socklen_t::MAX))
    }),
    ("getsockopt(g, SO_TYPE, NULL val, 4)", |r| {
        r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::NullPtr(4))
    }),
    ("getsockopt(g, SO_TYPE, NULL val, 0)", |r| {
        r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::NullPtr(0))
    }),
    ("getsockopt(g, SO_TYPE, NULL len)", |r| {
        r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::NullLen)
    }),
    ("getsockopt(g, SOL_SOCKET, 12345)", |r| {
        r.getopt("g", SOL_SOCKET, 12345, Buf::Len(4))
    }),
    ("getsockopt(g, IPPROTO_TCP, 12345)", |r| {
        r.getopt("g", IPPROTO_TCP, 12345, Buf::Len(4))
    }),
    ("getsockopt(g, level 12345)", |r| {
        r.getopt("g", 12345, 1, Buf::Len(4))
    }),
    ("setsockopt(g, SOL_SOCKET, 12345)", |r| {
        r.setopt("g", SOL_SOCKET, 12345, V::Int(1), 4)
    }),
    ("setsockopt(g, IPPROTO_TCP, 12345)", |r| {
        r.setopt("g", IPPROTO_TCP, 12345, V::Int(1), 4)
    }),
    ("setsockopt(g, level 12345)", |r| {
        r.setopt("g", 12345, 1, V::Int(1), 4)
    }),
    ("setsockopt(g, SO_REUSEADDR, len 2)", |r| {
        r.setopt("g", SOL_SOCKET, SO_REUSEADDR, V::Int(1), 2)
    }),
    ("setsockopt(g, TCP_NODELAY, len 2)", |r| {
        r.setopt("g", IPPROTO_TCP, TCP_NODELAY, V::Int(1), 2)
    }),
    ("setsockopt(g, SO_REUSEADDR, NULL)", |r| {
        r.setopt("g", SOL_SOCKET, SO_REUSEADDR, V::Null, 4)
    }),
    ("setsockopt(g, SO_RCVTIMEO, usec 2e6)", |r| {
        r.setopt("g", SOL_SOCKET, SO_RCVTIMEO, V::Tv(0, 2_000_000), TV)
    }),
    ("setsockopt(g, SO_RCVTIMEO, len 8)", |r| {
        r.setopt("g", SOL_SOCKET, SO_RCVTIMEO, V::Tv(0, 100_000), 8)
    }),
    ("setsockopt(g, SO_RCVTIMEO, sec -1)", |r| {
        r.setopt("g", SOL_SOCKET, SO_RCVTIMEO, V::Tv(-1, 0), TV)
    }),
    ("setsockopt(g, SO_RCVTIMEO, 0.1 s)", |r| {
        r.setopt("g", SOL_SOCKET, SO_RCVTIMEO, V::Tv(0, 100_000), TV)
    }),
    ("getsockopt(g, SO_RCVTIMEO)", |r| {
        r.getopt("g", SOL_SOCKET, SO_RCVTIMEO, Buf::Len(TV))
    }),
    ("close(g)", |r| r.close("g")),
    // Listening.
    ("socket h", |r| r.tcp("h")),
    ("listen(h): unbound", |r| r.listen("h", 8)),
    ("getsockname(h)", |r| r.sockname("h", Buf::Len(SIN))),
    ("close(h)", |r| r.close("h")),
    ("socket l", |r| r.tcp("l")),
    ("bound l: timeouts 2 s", |r| r.bound("l", 2000)),
    ("bind(l, local:P4)", |r| r.bind("l", A::Local(4), SIN)),
    ("accept(l): not listening", |r| {
        r.accept("l", "x", Buf::None, 0)
    }),
    ("listen(l, 8)", |r| r.listen("l", 8)),
    ("listen(l, -1) again", |r| r.listen("l", -1)),
    ("getsockopt(l, SO_ACCEPTCONN)", |r| {
        r.getopt("l", SOL_SOCKET, SO_ACCEPTCONN, Buf::Len(4))
    }),
    ("setsockopt(l, SO_RCVTIMEO, 0.1 s)", |r| {
        r.setopt("l", SOL_SOCKET, SO_RCVTIMEO, V::Tv(0, 100_000), TV)
    }),
    ("accept(l): times out", |r| r.accept("l", "x", Buf::None, 0)),
    ("fcntl(l, F_SETFL, O_NONBLOCK)", |r| {
        r.fcntl("l", F_SETFL, O_NONBLOCK)
    }),
    ("accept(l): none pending", |r| {
        r.accept("l", "x", Buf::None, 0)
    }),
    ("accept(l, addr, NULL len)", |r| {
        r.accept("l", "x", Buf::NullLen, 0)
    }),
    ("accept4(l, flags 0x7000)", |r| {
        r.accept("l", "x", Buf::None, 0x7000)
    }),
    ("send(l)", |r| r.send("l", b"x", MSG_NOSIGNAL)),
    ("recv(l)", |r| r.recv("l", 8, 0)),
    ("recv(l, len 0)", |r| r.recv("l", 0, 0)),
    ("connect(l, peer:P1)", |r| r.connect("l", A::Peer(1), SIN)),
    ("getpeername(l)", |r| r.peername("l", Buf::Len(SIN))),
    ("shutdown(l, SHUT_WR)", |r| r.shutdown("l", SHUT_WR)),
    ("poll(l, IN): nothing", |r| r.poll(&[("l", POLLIN)], 0)),
    ("peer connects to P4", |r| r.peer_connect("l", 4)),
    ("poll(l, IN)", |r| r.poll(&[("l", POLLIN)], 2000)),
    ("accept4(l, 16, NONBLOCK) = s", |r| {
        r.accept("l", "s", Buf::Len(SIN), SOCK_NONBLOCK)
    }),
    ("fcntl(s, F_GETFL)", |r| r.fcntl("s", F_GETFL, 0)),
    ("getsockname(s)", |r| r.sockname("s", Buf::Len(SIN))),
    ("getpeername(s)", |r| r.peername("s", Buf::Len(SIN))),
    ("accept(l): empty again", |r| {
        r.accept("l", "x", Buf::None, 0)
    }),
    ("listen(s): connected", |r| r.listen("s", 8)),
    ("accept(s): connected", |r| r.accept("s", "x", Buf::None, 0)),
    ("bind(s, local:P6)", |r| r.bind("s", A::Local(6), SIN)),
    ("peer writes ping", |r| r.peer_write("l", b"ping")),
    ("poll(s, IN)", |r| r.poll(&[("s", POLLIN)], 2000)),
    ("recv(s)", |r| r.recv("s", 16, 0)),
    ("recv(s): non-blocking, empty", |r| r.recv("s", 16, 0)),
    ("shutdown(l, SHUT_RDWR)", |r| r.shutdown("l", SHUT_RDWR)),
    ("accept(l) after shutdown", |r| {
        r.accept("l", "x", Buf::None, 0)
    }),
    ("close(s)", |r| r.close("s")),
    ("close(l)", |r| r.close("l")),
    ("peer closes", |r| r.peer_close("l")),
    // A connection to a kernel peer.
    ("peer listens on P1", |r| r.peer_listen(1)),
    ("socket a", |r| r.tcp("a")),
    ("bound a: timeouts 2 s", |r| r.bound("a", 2000)),
    ("connect(a, peer:P1)", |r| r.connect("a", A::Peer(1), SIN)),
    ("peer accepts a", |r| r.peer_accept("a", 1)),
    ("connect(a) again", |r| r.connect("a", A::Peer(1), SIN)),
    ("connect(a, len 4)", |r| r.connect("a", A::Peer(1), 4)),
    ("connect(a, AF_INET6)", |r| r.connect("a", A::Inet6, 28)),
    ("listen(a)", |r| r.listen("a", 8)),
    ("accept(a)", |r| r.accept("a", "x", Buf::None, 0)),
    ("bind(a) after connect", |r| r.bind("a", A::Local(6), SIN)),
    ("getpeername(a)", |r| r.peername("a", Buf::Len(SIN))),
    ("getsockname(a)", |r| r.sockname("a", Buf::Len(SIN))),
    ("send(a, len 0)", |r| r.send("a", b"", 0)),
    ("recv(a, len 0): no data", |r| r.recv("a", 0, 0)),
    ("recv(a, DONTWAIT)", |r| r.recv("a", 8, MSG_DONTWAIT)),
    ("recv(a, PEEK|DONTWAIT)", |r| {
        r.recv("a", 8, MSG_PEEK | MSG_DONTWAIT)
    }),
    ("poll(a, IN|OUT)", |r| r.poll(&[("a", POLLIN | POLLOUT)], 0)),
    ("send(a, hello)", |r| r.send("a", b"hello", 0)),
    ("peer reads", |r| r.peer_read("a")),
    ("peer writes hello", |r| r.peer_write("a", b"hello")),
    ("poll(a, IN)", |r| r.poll(&[("a", POLLIN)], 2000)),
    ("recv(a, len 0): data waiting", |r| r.recv("a", 0, 0)),
    ("recv(a, 16, PEEK)", |r| r.recv("a", 16, MSG_PEEK)),
    ("recv(a, 2)", |r| r.recv("a", 2, 0)),
    ("recv(a, 16, DONTWAIT)", |r| r.recv("a", 16, MSG_DONTWAIT)),
    ("recv(a, NULL, 5, DONTWAIT)", |r| {
        r.recv_null("a", 5, MSG_DONTWAIT)
    }),
    ("send(a, NULL, 5)", |r| r.send_null("a", 5, MSG_NOSIGNAL)),
    ("setsockopt(a, SO_RCVTIMEO, 0.1 s)", |r| {
        r.setopt("a", SOL_SOCKET, SO_RCVTIMEO, V::Tv(0, 100_000), TV)
    }),
    ("recv(a): SO_RCVTIMEO expires", |r| r.recv("a", 8, 0)),
    ("peer writes abc", |r| r.peer_write("a", b"abc")),
    ("poll(a, IN) abc", |r| r.poll(&[("a", POLLIN)], 2000)),
    ("recv(a, 8, WAITALL): times out", |r| {
        r.recv("a", 8, MSG_WAITALL)
    }),
    ("peer writes abcdef", |r| r.peer_write("a", b"abcdef")),
    ("poll(a, IN) abcdef", |r| r.poll(&[("a", POLLIN)], 2000)),
    ("recv(a, 6, WAITALL)", |r| r.recv("a", 6, MSG_WAITALL)),
    ("getsockopt(a, SO_ERROR)", |r| {
        r.getopt("a", SOL_SOCKET, SO_ERROR, Buf::Len(4))
    }),
    ("setsockopt(a, TCP_NODELAY, 1)", |r| {
        r.setopt("a", IPPROTO_TCP, TCP_NODELAY, V::Int(1), 4)
    }),
    ("getsockopt(a, TCP_NODELAY)", |r| {
        r.getopt("a", IPPROTO_TCP, TCP_NODELAY, Buf::Len(4))
    }),
    ("shutdown(a, SHUT_WR)", |r| r.shutdown("a", SHUT_WR)),
    ("send(a) after SHUT_WR", |r| r.send("a", b"x", MSG_NOSIGNAL)),
    ("send(a, len 0) after SHUT_WR", |r| {
        r.send("a", b"", MSG_NOSIGNAL)
    }),
    ("peer reads: FIN", |r| r.peer_read("a")),
    ("shutdown(a, SHUT_WR) again", |r| r.shutdown("a", SHUT_WR)),
    ("poll(a, IN|OUT) half-closed", |r| {
        r.poll(&[("a", POLLIN | POLLOUT)], 0)
    }),
    ("peer writes bye", |r| r.peer_write("a", b"bye")),
    ("poll(a, IN) bye", |r| r.poll(&[("a", POLLIN)], 2000)),
    ("recv(a) bye", |r| r.recv("a", 16, 0)),
    ("peer closes", |r| r.peer_close("a")),
    ("poll(a, IN) peer closed", |r| {
        r.poll(&[("a", POLLIN)], 2000)
    }),
    ("recv(a): peer closed", |r| r.recv("a", 16, 0)),
    ("recv(a) again", |r| r.recv("a", 16, 0)),
    ("close(a)", |r| r.close("a")),
    ("close(a) again", |r| r.close("a")),
    // A receiving half shut down.
    ("socket k", |r| r.tcp("k")),
    ("bound k: timeouts 2 s", |r| r.bound("k", 2000)),
    ("connect(k, peer:P1)", |r| r.connect("k", A::Peer(1), SIN)),
    ("peer accepts k", |r| r.peer_accept("k", 1)),
    ("shutdown(k, SHUT_RD)", |r| r.shutdown("k", SHUT_RD)),
    ("recv(k) after SHUT_RD", |r| r.recv("k", 16, 0)),
    ("send(k) after SHUT_RD", |r| {
        r.send("k", b"ok", MSG_NOSIGNAL)
    }),
    ("peer reads", |r| r.peer_read("k")),
    ("close(k)", |r| r.close("k")),
    ("peer closes k", |r| r.peer_close("k")),
    // Non-blocking connect: EINPROGRESS; done, a second connect reports it.
    ("socket nb: NONBLOCK", |r| {
        r.socket("nb", AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)
    }),
    ("connect(nb, peer:P1)", |r| r.connect("nb", A::Peer(1), SIN)),
    ("poll(nb, OUT)", |r| r.poll(&[("nb", POLLOUT)], 2000)),
    ("getsockopt(nb, SO_ERROR)", |r| {
        r.getopt("nb", SOL_SOCKET, SO_ERROR, Buf::Len(4))
    }),
    ("connect(nb) again: done", |r| {
        r.connect("nb", A::Peer(1), SIN)
    }),
    ("connect(nb) third time", |r| {
        r.connect("nb", A::Peer(1), SIN)
    }),
    ("peer accepts nb", |r| r.peer_accept("nb", 1)),
    ("close(nb)", |r| r.close("nb")),
    // ... still in SYN-SENT: EALREADY.
    ("peer listens on P3, queue full", |r| r.peer_listen_full(3)),
    ("socket w: NONBLOCK", |r| {
        r.socket("w", AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)
    }),
    ("connect(w, peer:P3)", |r| r.connect("w", A::Peer(3), SIN)),
    ("connect(w) again: pending", |r| {
        r.connect("w", A::Peer(3), SIN)
    }),
    ("poll(w, OUT, 100 ms)", |r| r.poll(&[("w", POLLOUT)], 100)),
    ("getsockopt(w, SO_ERROR)", |r| {
        r.getopt("w", SOL_SOCKET, SO_ERROR, Buf::Len(4))
    }),
    ("getpeername(w)", |r| r.peername("w", Buf::Len(SIN))),
    ("send(w): connecting", |r| r.send("w", b"x", MSG_NOSIGNAL)),
    ("recv(w): connecting", |r| r.recv("w", 8, 0)),
    ("close(w)", |r| r.close("w")),
    // ... refused.
    ("socket rf: NONBLOCK", |r| {
        r.socket("rf", AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)
    }),
    ("connect(rf, peer:P2)", |r| r.connect("rf", A::Peer(2), SIN)),
    ("poll(rf, IN|OUT)", |r| {
        r.poll(&[("rf", POLLIN | POLLOUT)], 2000)
    }),
    ("getsockopt(rf, SO_ERROR)", |r| {
        r.getopt("rf", SOL_SOCKET, SO_ERROR, Buf::Len(4))
    }),
    ("getsockopt(rf, SO_ERROR) read", |r| {
        r.getopt("rf", SOL_SOCKET, SO_ERROR, Buf::Len(4))
    }),
    ("connect(rf) again", |r| r.connect("rf", A::Peer(2), SIN)),
    ("close(rf)", |r| r.close("rf")),
];

fn kernel_and_rstcp_agree() {
    let kernel = Run::new(&Kernel, LOOPBACK, LOOPBACK, 7600).all(STEPS);
    let rstcp = Run::new(&Rstcp, OURS, KERNEL_SIDE, 7650).all(STEPS);
    println!("{:>3}  {:<40} {:<32} rstcp", "#", "step", "kernel");
    let mut mismatches = Vec::new();
    for (i, ((name, _), (k, r))) in STEPS.iter().zip(kernel.iter().zip(&rstcp)).enumerate() {
        let (k, r) = (k.to_string(), r.to_string());
        let mark = if k == r { "" } else { "   <-- differs" };
        println!("{:>3}  {name:<40} {k:<32} {r}{mark}", i + 1);
        if k != r {
            mismatches.push(format!("  #{} {name}: kernel {k}, rstcp {r}", i + 1));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} steps differ:\n{}",
        mismatches.len(),
        STEPS.len(),
        mismatches.join("\n")
    );
}

fn main() {
    let cases: &[(&str, fn())] = &[("kernel_and_rstcp_agree", kernel_and_rstcp_agree)];
    common::run_cases("differential", Duration::from_secs(60), start_stack, cases);
}

/// Starts the stack now: it creates the TUN device and the kernel's address
/// 10.77.0.1, which the rstcp run's peers listen on.
fn start_stack() {
    let r = rs_init(null(), null(), null());
    assert_eq!(r, 0, "rs_init: errno {}", errno());
}
