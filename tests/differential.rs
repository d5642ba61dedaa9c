//! Differential test: one sequence of socket calls, run once on the Linux
//! kernel's own sockets (libc) and once on rstcp's C ABI (`rs_*`), compared
//! step by step.
//!
//! rstcp promises "the same arguments, return values and errno values as the
//! libc calls of the same names" (DESIGN.md). Instead of writing down what
//! Linux does, every step runs on both and the results are compared: errno,
//! and the return value — exactly where it means something (byte counts,
//! poll counts and revents, fcntl flags, option values, address lengths and
//! families), only as "fd" for socket and accept, whose numbers differ by
//! design. Most steps are misuse, in the order Linux checks it. A table of
//! every step is printed; the test fails listing each difference.
//!
//! Both runs happen in the namespace `common::run_cases` makes. Kernel
//! sockets talk to kernel peers on loopback (127.0.0.1); rstcp sockets
//! (10.77.0.2) talk to kernel peers at 10.77.0.1 across the TUN device. The
//! runs have their own port ranges (7600.. and 7650..), so that neither meets
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

use libc::{c_int, nfds_t, pollfd, sockaddr, socklen_t};
use libc::{
    AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC, IPPROTO_TCP, IPPROTO_UDP, TCP_CONGESTION, TCP_NODELAY,
};
use libc::{F_GETFD, F_GETFL, F_SETFL, O_NONBLOCK, SHUT_RD, SHUT_RDWR, SHUT_WR};
use libc::{MSG_DONTWAIT, MSG_NOSIGNAL, MSG_PEEK, MSG_WAITALL, POLLIN, POLLOUT};
use libc::{SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_SEQPACKET, SOCK_STREAM, SOL_SOCKET};
use libc::{
    SO_ACCEPTCONN, SO_BUSY_POLL, SO_ERROR, SO_RCVTIMEO, SO_REUSEADDR, SO_SNDTIMEO, SO_TYPE,
};
use rstcp::ffi::*;

const OURS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const KERNEL_SIDE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// An address no interface here has: bind must refuse it.
const FOREIGN: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// A descriptor number nothing has open, in the kernel or in rstcp.
const HUGE_FD: c_int = 1 << 30;
const SIN: socklen_t = std::mem::size_of::<libc::sockaddr_in>() as socklen_t;
const TV: socklen_t = std::mem::size_of::<libc::timeval>() as socklen_t;
/// Kernel peers never wait longer than this (the watchdog is a last resort).
const PEER_WAIT: Duration = Duration::from_secs(2);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A call's result: the return value and errno (0 unless it failed).
type Res = (i64, i32);

/// Declares the trait `Sockets` — the calls under comparison, with their C
/// signatures (raw pointers, so that NULL and short buffers can be passed)
/// — and its two implementations, `Kernel` (libc) and `Rstcp` (`rs_*`),
/// from one list: each call with the kernel's function and rstcp's.
macro_rules! sockets {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) = $kernel:path, $rstcp:path;)*) => {
        trait Sockets {
            $(unsafe fn $name(&self, $($arg: $ty),*) -> Res;)*
        }
        struct Kernel;
        impl Sockets for Kernel {
            $(unsafe fn $name(&self, $($arg: $ty),*) -> Res {
                let r = $kernel($($arg),*) as i64;
                (r, if r < 0 { errno() } else { 0 })
            })*
        }
        struct Rstcp;
        impl Sockets for Rstcp {
            $(unsafe fn $name(&self, $($arg: $ty),*) -> Res {
                let r = $rstcp($($arg),*) as i64;
                (r, if r < 0 { errno() } else { 0 })
            })*
        }
    };
}

sockets! {
    fn socket(domain: c_int, ty: c_int, proto: c_int) = libc::socket, rs_socket;
    fn bind(fd: c_int, a: *const sockaddr, l: socklen_t) = libc::bind, rs_bind;
    fn listen(fd: c_int, backlog: c_int) = libc::listen, rs_listen;
    fn accept4(fd: c_int, a: *mut sockaddr, l: *mut socklen_t, fl: c_int)
        = libc::accept4, rs_accept4;
    fn connect(fd: c_int, a: *const sockaddr, l: socklen_t) = libc::connect, rs_connect;
    fn send(fd: c_int, b: *const c_void, n: usize, fl: c_int) = libc::send, rs_send;
    fn recv(fd: c_int, b: *mut c_void, n: usize, fl: c_int) = libc::recv, rs_recv;
    fn close(fd: c_int) = libc::close, rs_close;
    fn shutdown(fd: c_int, how: c_int) = libc::shutdown, rs_shutdown;
    fn getsockname(fd: c_int, a: *mut sockaddr, l: *mut socklen_t)
        = libc::getsockname, rs_getsockname;
    fn getpeername(fd: c_int, a: *mut sockaddr, l: *mut socklen_t)
        = libc::getpeername, rs_getpeername;
    fn setsockopt(fd: c_int, lv: c_int, o: c_int, v: *const c_void, l: socklen_t)
        = libc::setsockopt, rs_setsockopt;
    fn getsockopt(fd: c_int, lv: c_int, o: c_int, v: *mut c_void, l: *mut socklen_t)
        = libc::getsockopt, rs_getsockopt;
    fn fcntl(fd: c_int, cmd: c_int, arg: c_int) = libc::fcntl, rs_fcntl;
    fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) = libc::poll, rs_poll;
}

/// A result as compared: "-1 ERRNO", or the return value.
fn out(r: Res) -> String {
    out_with(r, "")
}

/// ... and what the call wrote (lengths, addresses, values, revents, bytes).
fn out_with((ret, errno): Res, wrote: &str) -> String {
    match ret {
        _ if ret < 0 => format!("{ret} {}", errno_name(errno)),
        _ if wrote.is_empty() => ret.to_string(),
        _ => format!("{ret} {wrote}"),
    }
}

/// A new descriptor as compared: its number differs by design.
fn out_fd(r: Res) -> String {
    match r.0 {
        fd if fd < 0 => out(r),
        _ => "fd".into(),
    }
}

fn out_io(r: std::io::Result<usize>, wrote: &str) -> String {
    match r {
        Ok(n) => out_with((n as i64, 0), wrote),
        Err(e) => out((-1, e.raw_os_error().unwrap_or(libc::EIO))),
    }
}

fn errno_name(e: i32) -> String {
    macro_rules! names {
        ($($name:ident)*) => {
            match e { $(libc::$name => stringify!($name).into(),)* _ => format!("errno {e}") }
        };
    }
    names!(EBADF EFAULT EINVAL EAGAIN EAFNOSUPPORT EPROTONOSUPPORT ESOCKTNOSUPPORT EADDRINUSE
        EADDRNOTAVAIL ENOTCONN EISCONN EPIPE ECONNREFUSED EINPROGRESS EALREADY ENOPROTOOPT
        EOPNOTSUPP EDOM ECONNABORTED ECONNRESET ETIMEDOUT EIO EPERM ENOTSOCK ENOENT)
}

fn revents(bits: i16) -> String {
    macro_rules! names {
        ($($name:ident)*) => { [$((libc::$name, &stringify!($name)[4..])),*] };
    }
    let all = names!(POLLIN POLLPRI POLLOUT POLLERR POLLHUP POLLNVAL POLLRDHUP POLLRDNORM
        POLLWRNORM);
    let set: Vec<&str> = all
        .iter()
        .filter_map(|&(b, s)| (bits & b != 0).then_some(s))
        .collect();
    if set.is_empty() {
        "-".into()
    } else {
        set.join("|")
    }
}

/// Memory for an address or option argument, aligned for any of them and
/// longer than sockaddr_storage (the "length 200" steps pass that much).
#[repr(C, align(8))]
struct Bytes([u8; 256]);

impl Bytes {
    /// The buffer, or NULL.
    fn ptr(&mut self, null: bool) -> *mut c_void {
        if null {
            null_mut()
        } else {
            self.0.as_mut_ptr().cast()
        }
    }
}

/// An address argument to bind or connect. Ports are offsets into the
/// run's range (0 is port 0). Local: the sockets under test's own address
/// (127.0.0.1 / 10.77.0.2); Peer: where kernel peers listen (127.0.0.1 /
/// 10.77.0.1); Unspec: AF_UNSPEC with 0.0.0.0; Inet6: [::1] in a 28-byte
/// sockaddr_in6; Unix: "/nonexistent" in a 110-byte sockaddr_un.
#[derive(Clone, Copy)]
enum A {
    Null,
    Local(u16),
    Peer(u16),
    Any(u16),
    Unspec(u16),
    Foreign,
    Inet6,
    Unix,
}

/// An output argument (address or option value) and its length pointer:
/// a buffer with *len = n; NULL with *len = n; a buffer with a NULL length
/// pointer; or both NULL (accept's "no address wanted").
#[derive(Clone, Copy)]
enum Buf {
    Len(socklen_t),
    NullPtr(socklen_t),
    NullLen,
    None,
}

/// An option value for setsockopt: an int, a timeval (seconds,
/// microseconds), or a NULL pointer.
#[derive(Clone, Copy)]
enum V {
    Int(i32),
    Tv(i64, i64),
    Null,
    /// Bytes, e.g. a TCP_CONGESTION name.
    Text(&'static [u8]),
}

/// Room for an int option; the int 1.
const INT: Buf = Buf::Len(4);
const ONE: V = V::Int(1);

/// One run of the steps on one implementation, and the state steps share.
struct Run {
    api: &'static dyn Sockets,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    /// First port of this run's range.
    base: u16,
    /// Sockets by the name steps give them (closed ones too: their numbers
    /// are the "closed descriptor" arguments), and those still open.
    fds: HashMap<&'static str, c_int>,
    open: HashSet<c_int>,
    /// Kernel-side listeners by port offset, and the kernel end of each
    /// connection, by the name of the socket under test.
    listeners: HashMap<u16, TcpListener>,
    peers: HashMap<&'static str, TcpStream>,
}

type Step = (&'static str, fn(&mut Run) -> String);

impl Run {
    #[rustfmt::skip]
    fn new(api: &'static dyn Sockets, local: Ipv4Addr, peer: Ipv4Addr, base: u16) -> Run {
        let (fds, open) = (HashMap::new(), HashSet::new());
        let (listeners, peers) = (HashMap::new(), HashMap::new());
        Run { api, local, peer, base, fds, open, listeners, peers }
    }

    fn all(mut self, steps: &[Step]) -> Vec<String> {
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
            _ => self.fds[name],
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
        match offset {
            0 => 0,
            o => self.base + o,
        }
    }

    /// A port as compared: the runs' ports differ by their base, and ports
    /// the system chose differ anyway ("eph").
    fn show_port(&self, port: u16) -> String {
        match port {
            0 => "0".into(),
            p if (self.base..self.base + 50).contains(&p) => format!("P{}", p - self.base),
            _ => "eph".into(),
        }
    }

    /// What getsockname & co. wrote: the length, and as much of the address
    /// as the caller's buffer held (the kernel truncates to it). The runs'
    /// hosts differ by design (127.0.0.1 against 10.77.0.x): any is "host".
    fn show_addr(&self, b: &Bytes, room: socklen_t, len: socklen_t) -> String {
        let n = (room as i32).clamp(0, SIN as i32);
        let family = u16::from_ne_bytes([b.0[0], b.0[1]]);
        let port = self.show_port(u16::from_be_bytes([b.0[2], b.0[3]]));
        let host = match Ipv4Addr::new(b.0[4], b.0[5], b.0[6], b.0[7]) {
            Ipv4Addr::UNSPECIFIED => "any".into(),
            ip if ip == self.local || ip == self.peer => "host".into(),
            ip => ip.to_string(),
        };
        match n {
            0..=1 => format!("len={len}"),
            2..=3 => format!("len={len} fam={family}"),
            4..=7 => format!("len={len} fam={family} port={port}"),
            _ => format!("len={len} fam={family} {host}:{port}"),
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

    // The calls, as steps make them. SAFETY (every unsafe block below):
    // each pointer passed is NULL on purpose, or points into a live buffer
    // at least as long as the length passed with it.

    fn socket(&mut self, name: &'static str, domain: c_int, ty: c_int, proto: c_int) -> String {
        let r = unsafe { self.api.socket(domain, ty, proto) };
        self.keep(name, r.0);
        out_fd(r)
    }

    fn tcp(&mut self, name: &'static str) -> String {
        self.socket(name, AF_INET, SOCK_STREAM, 0)
    }

    fn bind(&mut self, name: &str, a: A, len: socklen_t) -> String {
        let mut b = self.sockaddr(a);
        let p = b.ptr(matches!(a, A::Null)).cast();
        out(unsafe { self.api.bind(self.fd(name), p, len) })
    }

    fn connect(&mut self, name: &str, a: A, len: socklen_t) -> String {
        let mut b = self.sockaddr(a);
        let p = b.ptr(matches!(a, A::Null)).cast();
        out(unsafe { self.api.connect(self.fd(name), p, len) })
    }

    fn listen(&mut self, name: &str, backlog: c_int) -> String {
        out(unsafe { self.api.listen(self.fd(name), backlog) })
    }

    fn accept(&mut self, name: &str, new: &'static str, b: Buf, flags: c_int) -> String {
        let (fd, api) = (self.fd(name), self.api);
        let (r, bytes, room, len) =
            out_buf(b, |a, l| unsafe { api.accept4(fd, a.cast(), l, flags) });
        self.keep(new, r.0);
        match (r.0 < 0, b) {
            (true, _) | (_, Buf::None) => out_fd(r),
            _ => format!("fd {}", self.show_addr(&bytes, room, len)),
        }
    }

    fn sockname(&mut self, name: &str, b: Buf) -> String {
        let (fd, api) = (self.fd(name), self.api);
        let (r, bytes, room, len) = out_buf(b, |a, l| unsafe { api.getsockname(fd, a.cast(), l) });
        out_with(r, &self.show_addr(&bytes, room, len))
    }

    fn peername(&mut self, name: &str, b: Buf) -> String {
        let (fd, api) = (self.fd(name), self.api);
        let (r, bytes, room, len) = out_buf(b, |a, l| unsafe { api.getpeername(fd, a.cast(), l) });
        out_with(r, &self.show_addr(&bytes, room, len))
    }

    fn send(&mut self, name: &str, data: &[u8], flags: c_int) -> String {
        let (fd, p) = (self.fd(name), data.as_ptr().cast());
        out(unsafe { self.api.send(fd, p, data.len(), flags) })
    }

    fn send_null(&mut self, name: &str, len: usize, flags: c_int) -> String {
        out(unsafe { self.api.send(self.fd(name), null(), len, flags) })
    }

    fn recv(&mut self, name: &str, len: usize, flags: c_int) -> String {
        let (fd, mut b) = (self.fd(name), Bytes([0; 256]));
        let r = unsafe { self.api.recv(fd, b.ptr(false), len, flags) };
        let got = &b.0[..(r.0.max(0) as usize).min(len)];
        out_with(r, &format!("{:?}", String::from_utf8_lossy(got)))
    }

    fn recv_null(&mut self, name: &str, len: usize, flags: c_int) -> String {
        out(unsafe { self.api.recv(self.fd(name), null_mut(), len, flags) })
    }

    fn shutdown(&mut self, name: &str, how: c_int) -> String {
        out(unsafe { self.api.shutdown(self.fd(name), how) })
    }

    fn close(&mut self, name: &str) -> String {
        let fd = self.fd(name);
        let r = unsafe { self.api.close(fd) };
        if r.0 == 0 {
            self.open.remove(&fd);
        }
        out(r)
    }

    fn setopt(&mut self, name: &str, level: c_int, opt: c_int, v: V, len: socklen_t) -> String {
        let (fd, mut b) = (self.fd(name), Bytes([0; 256]));
        match v {
            V::Int(i) => b.0[..4].copy_from_slice(&i.to_ne_bytes()),
            V::Tv(tv_sec, tv_usec) => {
                let tv = libc::timeval { tv_sec, tv_usec };
                unsafe { std::ptr::write_unaligned(b.ptr(false).cast(), tv) };
            }
            V::Null => {}
            V::Text(t) => b.0[..t.len()].copy_from_slice(t),
        }
        let p = b.ptr(matches!(v, V::Null));
        out(unsafe { self.api.setsockopt(fd, level, opt, p, len) })
    }

    fn getopt(&mut self, name: &str, level: c_int, opt: c_int, b: Buf) -> String {
        let (fd, api) = (self.fd(name), self.api);
        let (r, bytes, _, len) = out_buf(b, |v, l| unsafe { api.getsockopt(fd, level, opt, v, l) });
        out_with(r, &show_opt(&bytes, len))
    }

    /// Bounds every blocking call on `name` (SO_RCVTIMEO and SO_SNDTIMEO),
    /// so that no step can hang the test, whatever either side does.
    fn bound(&mut self, name: &str, ms: i64) -> String {
        let tv = V::Tv(ms / 1000, ms % 1000 * 1000);
        let rcv = self.setopt(name, SOL_SOCKET, SO_RCVTIMEO, tv, TV);
        let snd = self.setopt(name, SOL_SOCKET, SO_SNDTIMEO, tv, TV);
        format!("{rcv} {snd}")
    }

    fn fcntl(&mut self, name: &str, cmd: c_int, arg: c_int) -> String {
        out(unsafe { self.api.fcntl(self.fd(name), cmd, arg) })
    }

    fn poll(&mut self, set: &[(&str, i16)], timeout_ms: c_int) -> String {
        let entry = |&(n, events): &(&str, i16)| pollfd {
            fd: self.fd(n),
            events,
            revents: 0,
        };
        let mut fds: Vec<pollfd> = set.iter().map(entry).collect();
        let r = unsafe {
            self.api
                .poll(fds.as_mut_ptr(), fds.len() as nfds_t, timeout_ms)
        };
        let shown: Vec<String> = fds.iter().map(|p| revents(p.revents)).collect();
        out_with(r, &shown.join(" "))
    }

    fn poll_null(&mut self, n: nfds_t) -> String {
        out(unsafe { self.api.poll(null_mut(), n, 0) })
    }

    // The kernel peers: std::net in this process, inside the namespace.

    fn peer_listen(&mut self, port: u16) -> String {
        let r = TcpListener::bind((self.peer, self.port(port))).and_then(|l| {
            l.set_nonblocking(true)?;
            self.listeners.insert(port, l);
            Ok(0)
        });
        out_io(r, "")
    }

    /// A listener whose accept queue is full (backlog 0 holds one, taken by
    /// a kernel connection here), so that Linux drops further SYNs: a
    /// connect to it stays in SYN-SENT for a second, whichever stack sends.
    fn peer_listen_full(&mut self, port: u16) -> String {
        let listening = self.peer_listen(port);
        if let Some(l) = self.listeners.get(&port) {
            // SAFETY: a second listen() on our listener only sets its backlog.
            unsafe { libc::listen(l.as_raw_fd(), 0) };
        }
        let to = SocketAddr::from((self.peer, self.port(port)));
        let filled = TcpStream::connect_timeout(&to, PEER_WAIT).map(|filler| {
            self.peers.insert("filler", filler);
            0
        });
        format!("{listening} {}", out_io(filled, ""))
    }

    fn peer_accept(&mut self, name: &'static str, port: u16) -> String {
        let l = &self.listeners[&port];
        if !common::wait_readable(l.as_raw_fd(), PEER_WAIT.as_millis() as i32) {
            return out((-1, libc::ETIMEDOUT));
        }
        let r = l.accept().map(|(s, _)| s);
        self.keep_peer(name, r)
    }

    fn peer_connect(&mut self, name: &'static str, port: u16) -> String {
        let to = SocketAddr::from((self.local, self.port(port)));
        self.keep_peer(name, TcpStream::connect_timeout(&to, PEER_WAIT))
    }

    /// Keeps a kernel peer's end of a connection, blocking, reads bounded.
    fn keep_peer(&mut self, name: &'static str, s: std::io::Result<TcpStream>) -> String {
        let r = s.and_then(|s| {
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(PEER_WAIT))?;
            self.peers.insert(name, s);
            Ok(0)
        });
        out_io(r, "")
    }

    fn peer_write(&mut self, name: &str, data: &[u8]) -> String {
        let s = self.peers.get_mut(name).expect("no such peer");
        out_io(s.write_all(data).map(|_| data.len()), "")
    }

    /// Reads what the socket under test sent (0: its FIN), waiting at most 2 s.
    fn peer_read(&mut self, name: &str) -> String {
        let mut buf = [0u8; 64];
        let s = self.peers.get_mut(name).expect("no such peer");
        let r = s.read(&mut buf);
        let got = &buf[..*r.as_ref().unwrap_or(&0)];
        out_io(r, &format!("{:?}", String::from_utf8_lossy(got)))
    }

    fn peer_close(&mut self, name: &str) -> String {
        drop(self.peers.remove(name).expect("no such peer"));
        out((0, 0))
    }
}

type OutBuf = (Res, Bytes, socklen_t, socklen_t);

/// Calls `f` with an output buffer (filled with 0xAA, so that what is
/// written shows) and a length pointer as `b` says. Returns the result, the
/// buffer, how much the call could write there, and the length after.
fn out_buf(b: Buf, f: impl FnOnce(*mut c_void, *mut socklen_t) -> Res) -> OutBuf {
    let mut bytes = Bytes([0xAA; 256]);
    let (mut len, null_ptr, null_len) = match b {
        Buf::Len(n) => (n, false, false),
        Buf::NullPtr(n) => (n, true, false),
        Buf::NullLen => (0, false, true),
        Buf::None => (0, true, true),
    };
    let room = if null_ptr { 0 } else { len };
    let l: *mut socklen_t = if null_len { null_mut() } else { &mut len };
    let r = f(bytes.ptr(null_ptr), l);
    (r, bytes, room, len)
}

/// An option value as getsockopt wrote it: an int, a timeval, or bytes.
fn show_opt(b: &Bytes, len: socklen_t) -> String {
    let int = i32::from_ne_bytes(b.0[..4].try_into().unwrap());
    let long = |at: usize| i64::from_ne_bytes(b.0[at..at + 8].try_into().unwrap());
    match len {
        4 => format!("len=4 v={int}"),
        16 => format!("len=16 tv={}.{:06}", long(0), long(8)),
        n => {
            let shown: Vec<String> = b.0[..n.min(16) as usize]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect();
            format!("len={n} bytes={}", shown.concat())
        }
    }
}

/// Steps written as `|r| r.call(...)` on a [`Run`]; the call's text names
/// the step in the table.
macro_rules! steps {
    ($(|$r:ident| $call:expr,)*) => {
        &[$((stringify!($call), |$r: &mut Run| -> String { $call })),*]
    };
}

/// The sequence run on both; steps on one line belong together.
/// Port offsets: 1 a kernel peer listening, 2 nothing listening, 3 a kernel
/// listener with a full queue, 4 our listener, 5..9 bind targets.
#[rustfmt::skip]
const STEPS: &[Step] = steps![
    // socket(): the type's range, the flags, the family's types, the protocol.
    |r| r.socket("x", 12345, SOCK_STREAM, 0),
    |r| r.socket("x", AF_INET, SOCK_STREAM | 0x4000_0000, 0),
    |r| r.socket("x", AF_INET, 15, 0), |r| r.socket("x", AF_INET, SOCK_SEQPACKET, 0),
    |r| r.socket("x", AF_INET, SOCK_STREAM, IPPROTO_UDP),
    |r| r.socket("n", AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP),
    // fcntl(): the descriptor, then the command.
    |r| r.fcntl("n", F_GETFL, 0), |r| r.fcntl("n", F_GETFD, 0),
    |r| r.fcntl("n", F_SETFL, 0), |r| r.fcntl("n", F_GETFL, 0),
    |r| r.fcntl("n", F_SETFL, O_NONBLOCK), |r| r.fcntl("n", F_GETFL, 0),
    |r| r.fcntl("n", 9999, 0), |r| r.close("n"),
    // Bad descriptors: Linux looks the descriptor up before anything else.
    // z's number is used before anything opens another descriptor, which
    // could take the number.
    |r| r.tcp("z"), |r| r.close("z"), |r| r.close("z"),
    |r| r.send("z", b"x", MSG_NOSIGNAL), |r| r.recv("z", 8, 0),
    |r| r.fcntl("z", F_GETFL, 0), |r| r.poll(&[("z", POLLIN)], 0),
    |r| r.close("-1"), |r| r.close("huge"), |r| r.listen("-1", 8),
    |r| r.bind("-1", A::Local(5), SIN), |r| r.bind("-1", A::Null, SIN),
    |r| r.connect("huge", A::Peer(2), SIN), |r| r.connect("-1", A::Null, SIN),
    |r| r.accept("-1", "x", Buf::None, 0), |r| r.accept("-1", "x", Buf::None, 0x7000),
    |r| r.send_null("-1", 5, MSG_NOSIGNAL), |r| r.recv_null("huge", 5, 0),
    |r| r.shutdown("-1", SHUT_WR), |r| r.shutdown("-1", 42),
    |r| r.sockname("-1", Buf::Len(SIN)), |r| r.peername("huge", Buf::Len(SIN)),
    |r| r.setopt("-1", SOL_SOCKET, SO_REUSEADDR, ONE, 4),
    |r| r.getopt("huge", SOL_SOCKET, SO_TYPE, INT),
    |r| r.fcntl("-1", F_GETFL, 0), |r| r.fcntl("huge", 9999, 0),
    |r| r.poll(&[("-1", POLLIN)], 0), // negative descriptors are skipped
    |r| r.poll(&[("huge", POLLIN)], 0), |r| r.poll_null(1), |r| r.poll_null(0),
    // bind(): length > sockaddr_storage, copy (EFAULT; length 0 copies
    // nothing), length < 16, family, address, state. A bind with length
    // 200 gets its own socket, so that its success could not end the rest.
    |r| r.tcp("b"), |r| r.bind("b", A::Null, SIN), |r| r.bind("b", A::Null, 0),
    |r| r.bind("b", A::Local(5), 0), |r| r.bind("b", A::Local(5), 4),
    |r| r.bind("b", A::Local(5), 15), |r| r.bind("b", A::Inet6, 4),
    |r| r.bind("b", A::Inet6, 28), |r| r.bind("b", A::Unix, 110),
    |r| r.bind("b", A::Foreign, SIN),
    |r| r.bind("b", A::Local(5), SIN), |r| r.bind("b", A::Local(6), SIN),
    |r| r.tcp("b2"), |r| r.bind("b2", A::Local(9), 200),
    // Addresses out: truncated to the caller's length, which is set to 16.
    |r| r.sockname("b", Buf::Len(SIN)), |r| r.sockname("b", Buf::Len(4)),
    |r| r.sockname("b", Buf::Len(0)), |r| r.sockname("b", Buf::Len(socklen_t::MAX)),
    |r| r.sockname("b", Buf::NullPtr(0)), |r| r.sockname("b", Buf::NullPtr(SIN)),
    |r| r.sockname("b", Buf::NullLen), |r| r.peername("b", Buf::Len(SIN)),
    |r| r.tcp("c"), |r| r.bind("c", A::Local(5), SIN),
    // bind() to port 0 picks the port; AF_UNSPEC + 0.0.0.0 is taken as AF_INET.
    |r| r.tcp("v"), |r| r.bind("v", A::Any(0), SIN), |r| r.sockname("v", Buf::Len(SIN)),
    |r| r.tcp("u"), |r| r.bind("u", A::Unspec(8), SIN), |r| r.sockname("u", Buf::Len(SIN)),
    // SO_REUSEADDR on both: a second bind is allowed, a second listen not.
    |r| r.tcp("d"), |r| r.setopt("d", SOL_SOCKET, SO_REUSEADDR, ONE, 4),
    |r| r.tcp("e"), |r| r.setopt("e", SOL_SOCKET, SO_REUSEADDR, ONE, 4),
    |r| r.getopt("e", SOL_SOCKET, SO_REUSEADDR, INT),
    |r| r.bind("d", A::Local(7), SIN), |r| r.bind("e", A::Local(7), SIN),
    |r| r.listen("d", 8), |r| r.listen("e", 8),
    |r| r.close("b"), |r| r.close("b2"), |r| r.close("c"), |r| r.close("v"),
    |r| r.close("u"), |r| r.close("d"), |r| r.close("e"),
    // connect(): copy, length < 2, AF_UNSPEC ("disconnect": nothing to do
    // here), state, length < 16, family. Nothing listens on P2.
    |r| r.tcp("f"), |r| r.bound("f", 2000),
    |r| r.connect("f", A::Null, SIN), |r| r.connect("f", A::Null, 0),
    |r| r.connect("f", A::Peer(2), 0), |r| r.connect("f", A::Peer(2), 4),
    |r| r.connect("f", A::Peer(2), 15), |r| r.connect("f", A::Peer(2), 200),
    |r| r.connect("f", A::Inet6, 4), |r| r.connect("f", A::Inet6, 28),
    |r| r.connect("f", A::Unix, 110), |r| r.connect("f", A::Unspec(2), SIN),
    |r| r.connect("f", A::Peer(2), SIN),
    |r| r.getopt("f", SOL_SOCKET, SO_ERROR, INT), // connect reported it
    |r| r.close("f"),
    // A socket never connected: send checks the state before the buffer.
    |r| r.tcp("g"), |r| r.bound("g", 2000),
    |r| r.send("g", b"x", MSG_NOSIGNAL), |r| r.send_null("g", 5, MSG_NOSIGNAL),
    |r| r.send("g", b"", MSG_NOSIGNAL), |r| r.recv("g", 8, 0), |r| r.recv("g", 0, 0),
    |r| r.accept("g", "x", Buf::None, 0),
    |r| r.shutdown("g", SHUT_WR), |r| r.shutdown("g", 42),
    |r| r.peername("g", Buf::Len(SIN)), |r| r.sockname("g", Buf::Len(SIN)),
    |r| r.poll(&[("g", POLLIN | POLLOUT)], 0),
    // Options: level and name, then pointers and lengths.
    |r| r.getopt("g", SOL_SOCKET, SO_TYPE, INT), |r| r.getopt("g", SOL_SOCKET, SO_ERROR, INT),
    |r| r.getopt("g", SOL_SOCKET, SO_ACCEPTCONN, INT),
    |r| r.getopt("g", IPPROTO_TCP, TCP_NODELAY, INT),
    |r| r.setopt("g", IPPROTO_TCP, TCP_NODELAY, ONE, 4),
    |r| r.getopt("g", IPPROTO_TCP, TCP_NODELAY, INT),
    // TCP_CONGESTION by name (the default differs between kernels; reno
    // is always built in): unknown names, short and empty lengths.
    |r| r.setopt("g", IPPROTO_TCP, TCP_CONGESTION, V::Text(b"reno\0"), 5),
    |r| r.getopt("g", IPPROTO_TCP, TCP_CONGESTION, Buf::Len(16)),
    |r| r.getopt("g", IPPROTO_TCP, TCP_CONGESTION, Buf::Len(3)),
    |r| r.getopt("g", IPPROTO_TCP, TCP_CONGESTION, Buf::Len(40)),
    |r| r.setopt("g", IPPROTO_TCP, TCP_CONGESTION, V::Text(b"nosuch"), 6),
    |r| r.setopt("g", IPPROTO_TCP, TCP_CONGESTION, V::Text(b"renox"), 4),
    |r| r.setopt("g", IPPROTO_TCP, TCP_CONGESTION, V::Text(b"reno"), 0),
    |r| r.setopt("g", IPPROTO_TCP, TCP_CONGESTION, V::Null, 4),
    |r| r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::Len(2)),
    |r| r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::Len(0)),
    |r| r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::Len(socklen_t::MAX)),
    |r| r.getopt("g", IPPROTO_TCP, TCP_NODELAY, Buf::Len(socklen_t::MAX)),
    |r| r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::NullPtr(4)),
    |r| r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::NullPtr(0)),
    |r| r.getopt("g", SOL_SOCKET, SO_TYPE, Buf::NullLen),
    |r| r.getopt("g", SOL_SOCKET, 12345, INT), |r| r.getopt("g", IPPROTO_TCP, 12345, INT),
    |r| r.getopt("g", 12345, 1, INT),
    |r| r.setopt("g", SOL_SOCKET, 12345, ONE, 4), |r| r.setopt("g", IPPROTO_TCP, 12345, ONE, 4),
    |r| r.setopt("g", 12345, 1, ONE, 4),
    |r| r.setopt("g", SOL_SOCKET, SO_REUSEADDR, ONE, 2),
    |r| r.setopt("g", IPPROTO_TCP, TCP_NODELAY, ONE, 2),
    |r| r.setopt("g", SOL_SOCKET, SO_REUSEADDR, V::Null, 4),
    |r| r.setopt("g", SOL_SOCKET, SO_RCVTIMEO, V::Tv(0, 2_000_000), TV),
    |r| r.setopt("g", SOL_SOCKET, SO_RCVTIMEO, V::Tv(0, 100_000), 8),
    |r| r.setopt("g", SOL_SOCKET, SO_RCVTIMEO, V::Tv(-1, 0), TV),
    |r| r.setopt("g", SOL_SOCKET, SO_RCVTIMEO, V::Tv(0, 100_000), TV),
    |r| r.getopt("g", SOL_SOCKET, SO_RCVTIMEO, Buf::Len(TV)),
    |r| r.getopt("g", SOL_SOCKET, SO_BUSY_POLL, INT),
    |r| r.setopt("g", SOL_SOCKET, SO_BUSY_POLL, V::Int(-1), 4),
    |r| r.setopt("g", SOL_SOCKET, SO_BUSY_POLL, V::Int(50), 2),
    |r| r.setopt("g", SOL_SOCKET, SO_BUSY_POLL, V::Int(50), 4),
    |r| r.getopt("g", SOL_SOCKET, SO_BUSY_POLL, INT),
    |r| r.close("g"),
    // Listening. Linux's listen() on an unbound socket binds a port.
    |r| r.tcp("h"), |r| r.listen("h", 8), |r| r.sockname("h", Buf::Len(SIN)), |r| r.close("h"),
    |r| r.tcp("l"), |r| r.bound("l", 2000), |r| r.bind("l", A::Local(4), SIN),
    |r| r.accept("l", "x", Buf::None, 0), |r| r.listen("l", 8), |r| r.listen("l", -1),
    |r| r.getopt("l", SOL_SOCKET, SO_ACCEPTCONN, INT),
    |r| r.setopt("l", SOL_SOCKET, SO_RCVTIMEO, V::Tv(0, 100_000), TV),
    |r| r.accept("l", "x", Buf::None, 0), // SO_RCVTIMEO expires
    |r| r.fcntl("l", F_SETFL, O_NONBLOCK), |r| r.accept("l", "x", Buf::None, 0),
    |r| r.accept("l", "x", Buf::NullLen, 0), // Linux writes the address after accepting
    |r| r.accept("l", "x", Buf::None, 0x7000),
    |r| r.send("l", b"x", MSG_NOSIGNAL), |r| r.recv("l", 8, 0), |r| r.recv("l", 0, 0),
    |r| r.connect("l", A::Peer(2), SIN), |r| r.peername("l", Buf::Len(SIN)),
    |r| r.shutdown("l", SHUT_WR), |r| r.poll(&[("l", POLLIN)], 0),
    |r| r.peer_connect("l", 4), |r| r.poll(&[("l", POLLIN)], 2000),
    |r| r.accept("l", "s", Buf::Len(SIN), SOCK_NONBLOCK), |r| r.fcntl("s", F_GETFL, 0),
    |r| r.sockname("s", Buf::Len(SIN)), |r| r.peername("s", Buf::Len(SIN)),
    |r| r.accept("l", "x", Buf::None, 0),
    |r| r.listen("s", 8), |r| r.accept("s", "x", Buf::None, 0), |r| r.bind("s", A::Local(6), SIN),
    |r| r.peer_write("l", b"ping"), |r| r.poll(&[("s", POLLIN)], 2000),
    |r| r.recv("s", 16, 0), |r| r.recv("s", 16, 0), // the second: EAGAIN
    |r| r.shutdown("l", SHUT_RDWR), // Linux: the listener closes
    |r| r.accept("l", "x", Buf::None, 0),
    |r| r.close("s"), |r| r.close("l"), |r| r.peer_close("l"),
    // A connection to a kernel peer. connect() on a connected socket checks
    // the state before the address's length and family.
    |r| r.peer_listen(1), |r| r.tcp("a"), |r| r.bound("a", 2000),
    |r| r.connect("a", A::Peer(1), SIN), |r| r.peer_accept("a", 1),
    |r| r.connect("a", A::Peer(1), SIN), |r| r.connect("a", A::Peer(1), 4),
    |r| r.connect("a", A::Inet6, 28),
    |r| r.listen("a", 8), |r| r.accept("a", "x", Buf::None, 0), |r| r.bind("a", A::Local(6), SIN),
    |r| r.peername("a", Buf::Len(SIN)), |r| r.sockname("a", Buf::Len(SIN)),
    |r| r.send("a", b"", 0), |r| r.recv("a", 0, 0),
    |r| r.recv("a", 8, MSG_DONTWAIT), |r| r.recv("a", 8, MSG_PEEK | MSG_DONTWAIT),
    |r| r.poll(&[("a", POLLIN | POLLOUT)], 0),
    |r| r.send("a", b"hello", 0), |r| r.peer_read("a"),
    |r| r.peer_write("a", b"hello"), |r| r.poll(&[("a", POLLIN)], 2000),
    |r| r.recv("a", 0, 0), // leaves the data
    |r| r.recv("a", 16, MSG_PEEK), |r| r.recv("a", 2, 0), |r| r.recv("a", 16, MSG_DONTWAIT),
    |r| r.recv_null("a", 5, MSG_DONTWAIT), // Linux waits for data before it copies
    |r| r.send_null("a", 5, MSG_NOSIGNAL),
    |r| r.setopt("a", SOL_SOCKET, SO_RCVTIMEO, V::Tv(0, 100_000), TV),
    |r| r.recv("a", 8, 0), // SO_RCVTIMEO expires
    |r| r.peer_write("a", b"abc"), |r| r.poll(&[("a", POLLIN)], 2000),
    |r| r.recv("a", 8, MSG_WAITALL), // what came, once SO_RCVTIMEO expires
    |r| r.peer_write("a", b"abcdef"), |r| r.poll(&[("a", POLLIN)], 2000),
    |r| r.recv("a", 6, MSG_WAITALL),
    |r| r.getopt("a", SOL_SOCKET, SO_ERROR, INT),
    |r| r.setopt("a", IPPROTO_TCP, TCP_NODELAY, ONE, 4),
    |r| r.getopt("a", IPPROTO_TCP, TCP_NODELAY, INT),
    // Half-closes, and the peer's close.
    |r| r.shutdown("a", SHUT_WR),
    |r| r.send("a", b"x", MSG_NOSIGNAL), |r| r.send("a", b"", MSG_NOSIGNAL),
    |r| r.peer_read("a"), |r| r.shutdown("a", SHUT_WR), |r| r.poll(&[("a", POLLIN | POLLOUT)], 0),
    |r| r.peer_write("a", b"bye"), |r| r.poll(&[("a", POLLIN)], 2000), |r| r.recv("a", 16, 0),
    |r| r.peer_close("a"), |r| r.poll(&[("a", POLLIN)], 2000),
    |r| r.recv("a", 16, 0), |r| r.recv("a", 16, 0), |r| r.close("a"), |r| r.close("a"),
    |r| r.tcp("k"), |r| r.bound("k", 2000),
    |r| r.connect("k", A::Peer(1), SIN), |r| r.peer_accept("k", 1),
    |r| r.shutdown("k", SHUT_RD), |r| r.recv("k", 16, 0),
    |r| r.send("k", b"ok", MSG_NOSIGNAL), |r| r.peer_read("k"),
    |r| r.close("k"), |r| r.peer_close("k"),
    // Non-blocking connect: EINPROGRESS; once done, connect reports it, once.
    |r| r.socket("nb", AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0),
    |r| r.connect("nb", A::Peer(1), SIN), |r| r.poll(&[("nb", POLLOUT)], 2000),
    |r| r.getopt("nb", SOL_SOCKET, SO_ERROR, INT),
    |r| r.connect("nb", A::Peer(1), SIN), |r| r.connect("nb", A::Peer(1), SIN),
    |r| r.peer_accept("nb", 1), |r| r.close("nb"),
    // ... still in SYN-SENT (the peer's queue is full): EALREADY.
    |r| r.peer_listen_full(3), |r| r.socket("w", AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0),
    |r| r.connect("w", A::Peer(3), SIN), |r| r.connect("w", A::Peer(3), SIN),
    |r| r.poll(&[("w", POLLOUT)], 100), |r| r.getopt("w", SOL_SOCKET, SO_ERROR, INT),
    |r| r.peername("w", Buf::Len(SIN)),
    |r| r.send("w", b"x", MSG_NOSIGNAL), |r| r.recv("w", 8, 0), |r| r.close("w"),
    // ... refused: a second connect, or SO_ERROR, reports it once.
    |r| r.socket("rf", AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0),
    |r| r.connect("rf", A::Peer(2), SIN), |r| r.poll(&[("rf", POLLIN | POLLOUT)], 2000),
    |r| r.connect("rf", A::Peer(2), SIN), |r| r.getopt("rf", SOL_SOCKET, SO_ERROR, INT),
    |r| r.close("rf"),
    |r| r.socket("rf", AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0),
    |r| r.connect("rf", A::Peer(2), SIN), |r| r.poll(&[("rf", POLLIN | POLLOUT)], 2000),
    |r| r.getopt("rf", SOL_SOCKET, SO_ERROR, INT),
    |r| r.getopt("rf", SOL_SOCKET, SO_ERROR, INT),
    |r| r.connect("rf", A::Peer(2), SIN), |r| r.close("rf"),
];

/// Where rstcp answers differently on purpose: (step, kernel's answer,
/// rstcp's answer). Both are still checked exactly.
///
/// Linux looks at a NULL buffer only once there is something to copy: an
/// empty non-blocking accept with a NULL length, or a non-blocking recv
/// into NULL with nothing to read, say EAGAIN (and accept would later lose
/// the connection it cannot report). rstcp refuses the bad pointer first.
const DELIBERATE: &[(&str, &str, &str)] = &[
    (
        "accept(\"l\", \"x\", Buf::NullLen, 0)",
        "-1 EAGAIN",
        "-1 EFAULT",
    ),
    (
        "recv_null(\"a\", 5, MSG_DONTWAIT)",
        "-1 EAGAIN",
        "-1 EFAULT",
    ),
];

fn kernel_and_rstcp_agree() {
    let kernel = Run::new(&Kernel, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 7600).all(STEPS);
    let rstcp = Run::new(&Rstcp, OURS, KERNEL_SIDE, 7650).all(STEPS);
    println!("{:>3}  {:<58} {:<28} rstcp", "#", "step", "kernel");
    let mut differ = Vec::new();
    for (i, ((call, _), (k, r))) in STEPS.iter().zip(kernel.iter().zip(&rstcp)).enumerate() {
        let step = call.strip_prefix("r.").unwrap_or(call);
        let deliberate = DELIBERATE
            .iter()
            .any(|&(d, dk, dr)| d == step && *k == dk && *r == dr);
        let mark = match (k == r, deliberate) {
            (true, _) => "",
            (false, true) => "   (deliberate)",
            (false, false) => "   <-- differs",
        };
        println!("{:>3}  {step:<58} {k:<28} {r}{mark}", i + 1);
        if k != r && !deliberate {
            differ.push(format!("  #{} {step}: kernel {k}, rstcp {r}", i + 1));
        }
    }
    let (n, all) = (differ.len(), STEPS.len());
    assert!(
        differ.is_empty(),
        "{n} of {all} steps differ:\n{}",
        differ.join("\n")
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
