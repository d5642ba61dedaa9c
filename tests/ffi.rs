//! The C ABI called the way C calls it: raw pointers, `sockaddr_in`,
//! return values and errno — good input and bad. One process-wide stack
//! (as a C program has), in a namespace made for this run.

mod common;

use std::ffi::c_void;
use std::io::{Read, Write};
use std::mem::size_of;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use libc::{sockaddr, sockaddr_in, socklen_t};
use rstcp::ffi::*;

const OURS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Asserts a call failed with -1 and the given errno.
macro_rules! fails {
    ($call:expr, $errno:expr) => {{
        let r = $call;
        let e = errno();
        assert_eq!(r as i64, -1, "{} should fail", stringify!($call));
        assert_eq!(
            e,
            $errno,
            "{}: errno {} ({}), expected {}",
            stringify!($call),
            e,
            std::io::Error::from_raw_os_error(e),
            std::io::Error::from_raw_os_error($errno)
        );
    }};
}

fn sin(ip: Ipv4Addr, port: u16) -> sockaddr_in {
    sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const SIN_LEN: socklen_t = size_of::<sockaddr_in>() as socklen_t;

fn sa(a: &sockaddr_in) -> *const sockaddr {
    a as *const sockaddr_in as *const sockaddr
}

fn tcp_socket() -> i32 {
    let fd = rs_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    assert!(fd >= 0, "rs_socket: errno {}", errno());
    fd
}

fn connect_to(ip: Ipv4Addr, port: u16) -> i32 {
    let fd = tcp_socket();
    let a = sin(ip, port);
    let r = unsafe { rs_connect(fd, sa(&a), SIN_LEN) };
    assert_eq!(r, 0, "rs_connect: errno {}", errno());
    fd
}

fn listener(port: u16) -> i32 {
    let fd = tcp_socket();
    let a = sin(OURS, port);
    assert_eq!(
        unsafe { rs_bind(fd, sa(&a), SIN_LEN) },
        0,
        "bind errno {}",
        errno()
    );
    assert_eq!(rs_listen(fd, 8), 0);
    fd
}

fn send(fd: i32, data: &[u8], flags: i32) -> isize {
    unsafe { rs_send(fd, data.as_ptr() as *const c_void, data.len(), flags) }
}

fn recv(fd: i32, buf: &mut [u8], flags: i32) -> isize {
    unsafe { rs_recv(fd, buf.as_mut_ptr() as *mut c_void, buf.len(), flags) }
}

fn bad_arguments_to_socket() {
    fails!(
        rs_socket(libc::AF_INET6, libc::SOCK_STREAM, 0),
        libc::EAFNOSUPPORT
    );
    fails!(
        rs_socket(libc::AF_INET, libc::SOCK_DGRAM, 0),
        libc::EPROTONOSUPPORT
    );
    fails!(
        rs_socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_UDP),
        libc::EPROTONOSUPPORT
    );
    fails!(
        rs_socket(libc::AF_INET, libc::SOCK_STREAM | 0x4000_0000, 0),
        libc::EINVAL
    );
    let fd = rs_socket(
        libc::AF_INET,
        libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        libc::IPPROTO_TCP,
    );
    assert!(fd >= 0);
    assert_eq!(
        rs_fcntl(fd, libc::F_GETFL, 0) & libc::O_NONBLOCK,
        libc::O_NONBLOCK
    );
    assert_eq!(rs_close(fd), 0);
}

fn unknown_and_closed_descriptors() {
    let mut buf = [0u8; 4];
    for fd in [-1, 9999] {
        fails!(rs_close(fd), libc::EBADF);
        fails!(send(fd, b"x", 0), libc::EBADF);
        fails!(recv(fd, &mut buf, 0), libc::EBADF);
        fails!(rs_listen(fd, 1), libc::EBADF);
        fails!(rs_shutdown(fd, libc::SHUT_WR), libc::EBADF);
        fails!(rs_fcntl(fd, libc::F_GETFL, 0), libc::EBADF);
    }
    let fd = tcp_socket();
    assert_eq!(rs_close(fd), 0);
    fails!(rs_close(fd), libc::EBADF);
    fails!(send(fd, b"x", 0), libc::EBADF);
}

fn bad_addresses() {
    let fd = tcp_socket();
    fails!(unsafe { rs_bind(fd, null(), SIN_LEN) }, libc::EFAULT);
    let a = sin(OURS, 4000);
    fails!(unsafe { rs_bind(fd, sa(&a), 4) }, libc::EINVAL);
    let mut six = sin(OURS, 4000);
    six.sin_family = libc::AF_INET6 as libc::sa_family_t;
    fails!(
        unsafe { rs_bind(fd, sa(&six), SIN_LEN) },
        libc::EAFNOSUPPORT
    );
    let elsewhere = sin(Ipv4Addr::new(10, 99, 0, 1), 4000);
    fails!(
        unsafe { rs_bind(fd, sa(&elsewhere), SIN_LEN) },
        libc::EADDRNOTAVAIL
    );
    fails!(unsafe { rs_connect(fd, null(), SIN_LEN) }, libc::EFAULT);
    fails!(unsafe { rs_connect(fd, sa(&a), 3) }, libc::EINVAL);
    assert_eq!(unsafe { rs_bind(fd, sa(&a), SIN_LEN) }, 0);
    fails!(unsafe { rs_bind(fd, sa(&a), SIN_LEN) }, libc::EINVAL);
    let other = tcp_socket();
    fails!(unsafe { rs_bind(other, sa(&a), SIN_LEN) }, libc::EADDRINUSE);
    assert_eq!(rs_close(other), 0);
    assert_eq!(rs_close(fd), 0);
}

fn calls_in_the_wrong_state() {
    let fd = tcp_socket();
    let mut buf = [0u8; 4];
    // Linux gives EPIPE (not ENOTCONN) for send on a socket never connected.
    fails!(send(fd, b"x", libc::MSG_NOSIGNAL), libc::EPIPE);
    fails!(recv(fd, &mut buf, 0), libc::ENOTCONN);
    fails!(
        unsafe { rs_accept(fd, null_mut(), null_mut()) },
        libc::EINVAL
    );
    fails!(rs_shutdown(fd, libc::SHUT_WR), libc::ENOTCONN);
    let mut a = sin(Ipv4Addr::UNSPECIFIED, 0);
    let mut len = SIN_LEN;
    fails!(
        unsafe { rs_getpeername(fd, &mut a as *mut sockaddr_in as *mut sockaddr, &mut len) },
        libc::ENOTCONN
    );
    fails!(rs_shutdown(fd, 42), libc::EINVAL);
    assert_eq!(rs_close(fd), 0);

    let kl = TcpListener::bind((KERNEL, 5101)).unwrap();
    let fd = connect_to(KERNEL, 5101);
    let (_k, _) = kl.accept().unwrap();
    let again = sin(KERNEL, 5101);
    fails!(
        unsafe { rs_connect(fd, sa(&again), SIN_LEN) },
        libc::EISCONN
    );
    fails!(rs_listen(fd, 1), libc::EINVAL);
    fails!(send(fd, b"x", libc::MSG_OOB), libc::EOPNOTSUPP);
    assert_eq!(rs_close(fd), 0);

    let l = listener(5102);
    fails!(send(l, b"x", libc::MSG_NOSIGNAL), libc::EPIPE);
    fails!(recv(l, &mut buf, 0), libc::ENOTCONN);
    let to = sin(KERNEL, 5102);
    fails!(unsafe { rs_connect(l, sa(&to), SIN_LEN) }, libc::EISCONN);
    assert_eq!(rs_close(l), 0);
}

fn options() {
    let fd = tcp_socket();
    let one: i32 = 1;
    let p = &one as *const i32 as *const c_void;
    assert_eq!(
        unsafe { rs_setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, p, 4) },
        0
    );
    assert_eq!(
        unsafe { rs_setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, p, 4) },
        0
    );
    fails!(
        unsafe { rs_setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, p, 2) },
        libc::EINVAL
    );
    fails!(
        unsafe { rs_setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, null(), 4) },
        libc::EFAULT
    );
    fails!(
        unsafe { rs_setsockopt(fd, libc::SOL_SOCKET, 12345, p, 4) },
        libc::ENOPROTOOPT
    );
    fails!(
        unsafe { rs_setsockopt(9999, libc::SOL_SOCKET, libc::SO_REUSEADDR, p, 4) },
        libc::EBADF
    );
    let mut v: i32 = 0;
    let mut len: socklen_t = 4;
    let vp = &mut v as *mut i32 as *mut c_void;
    assert_eq!(
        unsafe { rs_getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, vp, &mut len) },
        0
    );
    assert_eq!((v, len), (1, 4));
    let size: i32 = 100_000;
    let sp = &size as *const i32 as *const c_void;
    assert_eq!(
        unsafe { rs_setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, sp, 4) },
        0
    );
    assert_eq!(
        unsafe { rs_getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, vp, &mut len) },
        0
    );
    assert_eq!(v, 200_000, "SO_RCVBUF is doubled, as on Linux");
    assert_eq!(
        unsafe { rs_getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, vp, &mut len) },
        0
    );
    assert_eq!(v, libc::SOCK_STREAM);
    fails!(
        unsafe { rs_getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, null_mut(), &mut len) },
        libc::EFAULT
    );
    fails!(
        unsafe { rs_getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, vp, null_mut()) },
        libc::EFAULT
    );
    let lin = libc::linger {
        l_onoff: 1,
        l_linger: 7,
    };
    let lp = &lin as *const libc::linger as *const c_void;
    fails!(
        unsafe { rs_setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, lp, 4) },
        libc::EINVAL
    );
    assert_eq!(
        unsafe { rs_setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, lp, 8) },
        0
    );
    let mut got = libc::linger {
        l_onoff: 0,
        l_linger: 0,
    };
    let mut glen: socklen_t = 8;
    let gp = &mut got as *mut libc::linger as *mut c_void;
    assert_eq!(
        unsafe { rs_getsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, gp, &mut glen) },
        0
    );
    assert_eq!((got.l_onoff, got.l_linger, glen), (1, 7, 8));
    let zero: i32 = 0;
    let zp = &zero as *const i32 as *const c_void;
    fails!(
        unsafe { rs_setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, zp, 4) },
        libc::EINVAL
    );
    let five: i32 = 5;
    let fp = &five as *const i32 as *const c_void;
    assert_eq!(
        unsafe { rs_setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, fp, 4) },
        0
    );
    assert_eq!(
        unsafe { rs_getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, vp, &mut len) },
        0
    );
    assert_eq!(v, 5);
    assert_eq!(
        unsafe { rs_getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, vp, &mut len) },
        0
    );
    assert_eq!(v, 9, "Linux's default probe count");
    assert_eq!(
        unsafe { rs_setsockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, p, 4) },
        0
    );
    assert_eq!(
        unsafe { rs_getsockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, vp, &mut len) },
        0
    );
    assert_eq!(v, 1);
    // TCP_USER_TIMEOUT in milliseconds (0 = off, negative refused) and
    // TCP_MAXSEG (536 before a connection, as Linux answers; 88..=32767).
    let get_tcp = |name: i32| {
        let mut v: i32 = -7;
        let mut len = 4 as socklen_t;
        let r = unsafe {
            rs_getsockopt(
                fd,
                libc::IPPROTO_TCP,
                name,
                &mut v as *mut i32 as *mut c_void,
                &mut len,
            )
        };
        assert_eq!(r, 0, "getsockopt {name}: errno {}", errno());
        v
    };
    let set_tcp = |name: i32, v: i32| unsafe {
        rs_setsockopt(
            fd,
            libc::IPPROTO_TCP,
            name,
            &v as *const i32 as *const c_void,
            4,
        )
    };
    assert_eq!(get_tcp(libc::TCP_USER_TIMEOUT), 0);
    assert_eq!(set_tcp(libc::TCP_USER_TIMEOUT, 2500), 0);
    assert_eq!(get_tcp(libc::TCP_USER_TIMEOUT), 2500);
    fails!(set_tcp(libc::TCP_USER_TIMEOUT, -1), libc::EINVAL);
    assert_eq!(get_tcp(libc::TCP_MAXSEG), 536);
    assert_eq!(set_tcp(libc::TCP_MAXSEG, 1000), 0);
    assert_eq!(get_tcp(libc::TCP_MAXSEG), 1000);
    fails!(set_tcp(libc::TCP_MAXSEG, 40), libc::EINVAL);
    fails!(set_tcp(libc::TCP_MAXSEG, 70_000), libc::EINVAL);
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 2_000_000,
    };
    let tvp = &tv as *const libc::timeval as *const c_void;
    // tv_usec past a second: EDOM, as Linux says.
    fails!(
        unsafe { rs_setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, tvp, 16) },
        libc::EDOM
    );
    assert_eq!(rs_close(fd), 0);
}

fn receive_timeout_gives_eagain() {
    let kl = TcpListener::bind((KERNEL, 5103)).unwrap();
    let fd = connect_to(KERNEL, 5103);
    let (_k, _) = kl.accept().unwrap();
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    let tvp = &tv as *const libc::timeval as *const c_void;
    let tl = size_of::<libc::timeval>() as socklen_t;
    assert_eq!(
        unsafe { rs_setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, tvp, tl) },
        0
    );
    let t = Instant::now();
    let mut buf = [0u8; 8];
    fails!(recv(fd, &mut buf, 0), libc::EAGAIN);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(rs_close(fd), 0);
}

fn nonblocking_connect_and_poll() {
    let kl = TcpListener::bind((KERNEL, 5104)).unwrap();
    let fd = rs_socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
    let a = sin(KERNEL, 5104);
    fails!(
        unsafe { rs_connect(fd, sa(&a), SIN_LEN) },
        libc::EINPROGRESS
    );
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    assert_eq!(unsafe { rs_poll(&mut p, 1, 5000) }, 1);
    assert_eq!(p.revents & libc::POLLOUT, libc::POLLOUT);
    let mut v: i32 = -1;
    let mut len: socklen_t = 4;
    let vp = &mut v as *mut i32 as *mut c_void;
    assert_eq!(
        unsafe { rs_getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, vp, &mut len) },
        0
    );
    assert_eq!(v, 0);
    let (mut k, _) = kl.accept().unwrap();
    let mut buf = [0u8; 16];
    fails!(recv(fd, &mut buf, 0), libc::EAGAIN);
    k.write_all(b"hello").unwrap();
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    assert_eq!(unsafe { rs_poll(&mut p, 1, 5000) }, 1);
    assert_eq!(recv(fd, &mut buf, libc::MSG_PEEK), 5);
    assert_eq!(recv(fd, &mut buf, 0), 5);
    assert_eq!(&buf[..5], b"hello");
    fails!(recv(fd, &mut buf, libc::MSG_DONTWAIT), libc::EAGAIN);
    // Timeout 0 returns at once; unknown descriptors are POLLNVAL.
    let mut set = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: 9999,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    assert_eq!(unsafe { rs_poll(set.as_mut_ptr(), 2, 0) }, 1);
    assert_eq!(set[1].revents, libc::POLLNVAL);
    fails!(unsafe { rs_poll(null_mut(), 1, 0) }, libc::EFAULT);
    assert_eq!(rs_close(fd), 0);

    // Refused: POLLERR and SO_ERROR = ECONNREFUSED, read once.
    let fd = rs_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    assert_eq!(rs_fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK), 0);
    let a = sin(KERNEL, 9);
    // (EALREADY from a second connect races with the kernel's RST here; it
    // is tested on a link that never answers, in tests/api_pair.rs.)
    fails!(
        unsafe { rs_connect(fd, sa(&a), SIN_LEN) },
        libc::EINPROGRESS
    );
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    assert_eq!(unsafe { rs_poll(&mut p, 1, 5000) }, 1);
    assert_eq!(
        p.revents & (libc::POLLERR | libc::POLLHUP),
        libc::POLLERR | libc::POLLHUP
    );
    assert_eq!(
        unsafe { rs_getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, vp, &mut len) },
        0
    );
    assert_eq!(v, libc::ECONNREFUSED);
    assert_eq!(
        unsafe { rs_getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, vp, &mut len) },
        0
    );
    assert_eq!(v, 0);
    assert_eq!(rs_close(fd), 0);
}

fn addresses_accept_and_truncation() {
    let l = listener(5105);
    let k = std::thread::spawn(|| TcpStream::connect((OURS, 5105)).unwrap());
    let mut peer = sin(Ipv4Addr::UNSPECIFIED, 0);
    let mut len = SIN_LEN;
    let c = unsafe { rs_accept(l, &mut peer as *mut sockaddr_in as *mut sockaddr, &mut len) };
    assert!(c >= 0);
    let kernel = k.join().unwrap();
    assert_eq!(len, SIN_LEN);
    assert_eq!(u32::from_be(peer.sin_addr.s_addr), u32::from(KERNEL));
    assert_eq!(
        u16::from_be(peer.sin_port),
        kernel.local_addr().unwrap().port()
    );
    // A short buffer gets a truncated address and the full length.
    let mut short = [0xAAu8; 4];
    let mut len: socklen_t = 4;
    assert_eq!(
        unsafe { rs_getsockname(c, short.as_mut_ptr() as *mut sockaddr, &mut len) },
        0
    );
    assert_eq!(len, SIN_LEN);
    assert_eq!(
        u16::from_ne_bytes([short[0], short[1]]) as i32,
        libc::AF_INET
    );
    assert_eq!(u16::from_be_bytes([short[2], short[3]]), 5105);
    fails!(
        unsafe { rs_getsockname(c, null_mut(), &mut len) },
        libc::EFAULT
    );
    // accept4 with a NULL length but an address is EFAULT.
    fails!(
        unsafe {
            rs_accept4(
                l,
                &mut peer as *mut sockaddr_in as *mut sockaddr,
                null_mut(),
                0,
            )
        },
        libc::EFAULT
    );
    fails!(
        unsafe { rs_accept4(l, null_mut(), null_mut(), 0x7000) },
        libc::EINVAL
    );
    assert_eq!(rs_close(c), 0);
    assert_eq!(rs_close(l), 0);
}

fn close_and_shutdown_wake_blocked_threads() {
    let kl = TcpListener::bind((KERNEL, 5106)).unwrap();
    let fd = connect_to(KERNEL, 5106);
    let (_k, _) = kl.accept().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let r = recv(fd, &mut buf, 0);
        (r, errno())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rs_shutdown(fd, libc::SHUT_RD), 0);
    assert_eq!(
        reader.join().unwrap().0,
        0,
        "shutdown(SHUT_RD) ends a blocked recv with 0"
    );
    assert_eq!(rs_close(fd), 0);

    let fd = connect_to(KERNEL, 5106);
    let (_k2, _) = kl.accept().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let r = recv(fd, &mut buf, 0);
        (r, errno())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rs_close(fd), 0);
    assert_eq!(
        reader.join().unwrap(),
        (-1, libc::EBADF),
        "close wakes a blocked recv with EBADF"
    );

    let l = listener(5107);
    let acceptor = std::thread::spawn(move || {
        let r = unsafe { rs_accept(l, null_mut(), null_mut()) };
        (r, errno())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rs_close(l), 0);
    assert_eq!(acceptor.join().unwrap(), (-1, libc::EBADF));
}

fn send_and_recv_from_two_threads_on_one_socket() {
    let kl = TcpListener::bind((KERNEL, 5108)).unwrap();
    let fd = connect_to(KERNEL, 5108);
    let (mut k, _) = kl.accept().unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = k.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            k.write_all(&buf[..n]).unwrap();
        }
    });
    let total = 4 << 20;
    let writer = std::thread::spawn(move || {
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let mut off = 0;
        while off < data.len() {
            let n = send(fd, &data[off..], 0);
            assert!(n > 0, "send: errno {}", errno());
            off += n as usize;
        }
        assert_eq!(rs_shutdown(fd, libc::SHUT_WR), 0);
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = recv(fd, &mut buf, 0);
        assert!(n >= 0, "recv: errno {}", errno());
        if n == 0 {
            break;
        }
        for (i, b) in buf[..n as usize].iter().enumerate() {
            assert_eq!(*b, ((got + i) % 251) as u8, "byte {}", got + i);
        }
        got += n as usize;
    }
    assert_eq!(got, total);
    writer.join().unwrap();
    echo.join().unwrap();
    assert_eq!(rs_close(fd), 0);
}

/// Random calls with random arguments (valid memory, arbitrary values):
/// every call returns normally; errno is never EIO, which is what a caught
/// panic inside the library would produce.
fn random_calls_never_panic() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut fds: Vec<i32> = Vec::new();
    let mut buf = [0u8; 256];
    for _ in 0..20_000 {
        let r = next();
        let fd = match r % 4 {
            0 => (next() % 40) as i32 - 5,
            _ if !fds.is_empty() => fds[(next() % fds.len() as u64) as usize],
            _ => 3,
        };
        let int = (next() as i32) >> (next() % 32);
        let len = (next() % 300) as usize;
        let mut addr = sin(
            if next() % 2 == 0 { OURS } else { KERNEL },
            (next() % 3 + 5200) as u16,
        );
        if next() % 5 == 0 {
            addr.sin_family = (next() % 30) as libc::sa_family_t;
        }
        let alen = (next() % 24) as socklen_t;
        let flags = [
            0,
            libc::MSG_DONTWAIT,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
            int,
        ][(next() % 4) as usize]
            | libc::MSG_DONTWAIT
            | libc::MSG_NOSIGNAL;
        let before = errno();
        let ret: i64 = unsafe {
            match (r >> 8) % 14 {
                0 => {
                    let t = [
                        libc::SOCK_STREAM,
                        libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                        int,
                    ][(next() % 3) as usize];
                    let n = rs_socket(libc::AF_INET, t | libc::SOCK_NONBLOCK, 0);
                    if n >= 0 {
                        fds.push(n);
                    }
                    n as i64
                }
                1 => rs_bind(fd, sa(&addr), alen) as i64,
                2 => rs_listen(fd, int) as i64,
                3 => rs_connect(fd, sa(&addr), alen) as i64,
                4 => {
                    let mut l = alen;
                    let n = rs_accept4(
                        fd,
                        &mut addr as *mut sockaddr_in as *mut sockaddr,
                        &mut l,
                        libc::SOCK_NONBLOCK,
                    );
                    if n >= 0 {
                        fds.push(n);
                    }
                    n as i64
                }
                5 => rs_send(fd, buf.as_ptr() as *const c_void, len.min(buf.len()), flags) as i64,
                6 => rs_recv(
                    fd,
                    buf.as_mut_ptr() as *mut c_void,
                    len.min(buf.len()),
                    flags,
                ) as i64,
                7 => rs_shutdown(fd, int % 4) as i64,
                8 => {
                    let mut l = alen;
                    rs_getsockname(fd, &mut addr as *mut sockaddr_in as *mut sockaddr, &mut l)
                        as i64
                }
                9 => {
                    let mut l = alen;
                    rs_getpeername(fd, &mut addr as *mut sockaddr_in as *mut sockaddr, &mut l)
                        as i64
                }
                10 => {
                    let level = [libc::SOL_SOCKET, libc::IPPROTO_TCP, int][(next() % 3) as usize];
                    let name = (next() % 70) as i32;
                    rs_setsockopt(
                        fd,
                        level,
                        name,
                        buf.as_ptr() as *const c_void,
                        (next() % 20) as socklen_t,
                    ) as i64
                }
                11 => {
                    let level = [libc::SOL_SOCKET, libc::IPPROTO_TCP, int][(next() % 3) as usize];
                    let name = (next() % 70) as i32;
                    let mut l = (next() % 20) as socklen_t;
                    rs_getsockopt(fd, level, name, buf.as_mut_ptr() as *mut c_void, &mut l) as i64
                }
                // Descriptors stay non-blocking: a blocking call with no peer
                // activity would (correctly) wait forever.
                12 => rs_fcntl(fd, (next() % 6) as i32, int | libc::O_NONBLOCK) as i64,
                _ => {
                    let mut p = libc::pollfd {
                        fd,
                        events: int as i16,
                        revents: 0,
                    };
                    rs_poll(&mut p, 1, 0) as i64
                }
            }
        };
        if ret < 0 {
            assert_ne!(
                errno(),
                libc::EIO,
                "a call ended in EIO (a caught panic); errno before {before}"
            );
        }
        if r % 97 == 0 {
            if let Some(fd) = fds.pop() {
                rs_close(fd);
            }
        }
    }
    for fd in fds {
        rs_close(fd);
    }
}

fn netstat_and_the_stat_endpoint() {
    use rstcp::ffi::netstat::{rs_netstat, rs_sockinfo};
    let kl = TcpListener::bind((KERNEL, 7301)).unwrap();
    let l = listener(7302);
    let c = connect_to(KERNEL, 7301);
    let (mut k, _) = kl.accept().unwrap();
    assert_eq!(send(c, b"hello", 0), 5);
    let mut got = [0u8; 5];
    k.read_exact(&mut got).unwrap();
    k.write_all(b"unread").unwrap();
    std::thread::sleep(Duration::from_millis(50));

    fails!(unsafe { rs_netstat(null_mut(), 1) }, libc::EFAULT);
    fails!(unsafe { rs_netstat(null_mut(), -1) }, libc::EINVAL);
    let n = unsafe { rs_netstat(null_mut(), 0) };
    assert!(n >= 2, "{n} sockets");
    // SAFETY: rs_sockinfo is plain integers and addresses; zero is valid.
    let mut rows = vec![unsafe { std::mem::zeroed::<rs_sockinfo>() }; n as usize + 4];
    // A short array takes what fits and still reports the total.
    assert_eq!(unsafe { rs_netstat(rows.as_mut_ptr(), 1) }, n);
    let n = unsafe { rs_netstat(rows.as_mut_ptr(), rows.len() as i32) } as usize;
    let find = |fd: i32| rows[..n].iter().find(|r| r.fd == fd).copied().unwrap();
    let lr = find(l);
    assert_eq!(
        (lr.state, u16::from_be(lr.local.sin_port)),
        (10, 7302),
        "LISTEN"
    );
    let cr = find(c);
    assert_eq!(cr.state, 1, "ESTABLISHED");
    assert_eq!(u16::from_be(cr.peer.sin_port), 7301);
    assert_eq!(cr.recv_q, 6, "unread bytes");
    assert!(cr.snd_mss > 0 && cr.snd_cwnd > 0 && cr.rto_us >= 200_000);

    // rstcp-stat reads the same table from the process's endpoint.
    let dir = std::env::var("RSTCP_STAT_DIR").unwrap();
    let stat = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rstcp-stat"))
            .args(["-d", &dir])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "rstcp-stat {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let pid = std::process::id().to_string();
    let conns = stat(&[]);
    let line = conns
        .lines()
        .find(|l| l.contains("10.77.0.1:7301"))
        .unwrap_or_else(|| panic!("no connection in:\n{conns}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words[..5],
        [pid.as_str(), &c.to_string(), "ESTAB", "6", "0"],
        "{line}"
    );
    assert!(!conns.contains("LISTEN"), "{conns}");
    let listening = stat(&["-l", "-p", &pid]);
    assert!(
        listening.contains("LISTEN") && listening.contains("10.77.0.2:7302"),
        "{listening}"
    );
    let info = stat(&["-i"]);
    assert!(info.contains("rtt:") && info.contains("cwnd:"), "{info}");
    let counters = stat(&["-s"]);
    assert!(
        counters.contains("active opens") && counters.contains("segments sent"),
        "{counters}"
    );
    let none = std::process::Command::new(env!("CARGO_BIN_EXE_rstcp-stat"))
        .args(["-d", &dir, "-p", "999999999"])
        .output()
        .unwrap();
    assert_eq!(
        none.status.code(),
        Some(1),
        "an unknown process is an error"
    );
    assert_eq!(rs_close(c), 0);
    assert_eq!(rs_close(l), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

fn init_after_start_is_ealready() {
    fails!(rs_init(null(), null(), null()), libc::EALREADY);
}

fn main() {
    let cases: &[(&str, fn())] = &[
        ("bad_arguments_to_socket", bad_arguments_to_socket),
        (
            "unknown_and_closed_descriptors",
            unknown_and_closed_descriptors,
        ),
        ("bad_addresses", bad_addresses),
        ("calls_in_the_wrong_state", calls_in_the_wrong_state),
        ("options", options),
        ("receive_timeout_gives_eagain", receive_timeout_gives_eagain),
        ("nonblocking_connect_and_poll", nonblocking_connect_and_poll),
        (
            "addresses_accept_and_truncation",
            addresses_accept_and_truncation,
        ),
        (
            "close_and_shutdown_wake_blocked_threads",
            close_and_shutdown_wake_blocked_threads,
        ),
        (
            "send_and_recv_from_two_threads_on_one_socket",
            send_and_recv_from_two_threads_on_one_socket,
        ),
        ("random_calls_never_panic", random_calls_never_panic),
        (
            "netstat_and_the_stat_endpoint",
            netstat_and_the_stat_endpoint,
        ),
        ("init_after_start_is_ealready", init_after_start_is_ealready),
    ];
    common::run_cases(
        "ffi",
        Duration::from_secs(300),
        || {
            std::env::set_var("RSTCP_MSL_MS", "500");
            // The stat endpoint goes to a directory of this run's own.
            let dir = std::env::temp_dir().join(format!("rstcp-ffi-stat-{}", std::process::id()));
            std::env::set_var("RSTCP_STAT_DIR", dir);
        },
        cases,
    );
}
