//! The safe socket layer on a link with nobody at the other end: what a
//! connect that gets no answer looks like, deterministically.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use rstcp::api::{MsgFlags, PollFd, Sockets};
use rstcp::link::Pair;
use rstcp::runtime::Runtime;
use rstcp::stack::StackConfig;
use rstcp::tcp::State;
use rstcp::Error;

fn silent_stack() -> (Sockets, rstcp::link::PairEnd) {
    let (ours, other) = Pair::new(1500);
    let rt = Runtime::with_link(Box::new(ours), StackConfig::default()).unwrap();
    (Sockets::new(rt), other)
}

#[test]
fn unanswered_nonblocking_connect_is_in_progress_then_already() {
    let (s, _other) = silent_stack();
    let fd = s.socket(true, None).unwrap();
    let to = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 80);
    assert_eq!(s.connect(fd, to), Err(Error::InProgress));
    assert_eq!(s.connect(fd, to), Err(Error::Already));
    assert_eq!(s.state(fd).unwrap(), State::SynSent);
    // Not writable, not readable while the handshake is pending.
    let mut set = [PollFd {
        fd,
        events: libc::POLLIN | libc::POLLOUT,
        revents: 0,
    }];
    assert_eq!(
        s.poll(&mut set, Some(Duration::from_millis(50))).unwrap(),
        0
    );
    assert_eq!(
        s.send(fd, b"x", MsgFlags::default()),
        Err(Error::WouldBlock)
    );
    assert_eq!(s.close(fd), Ok(()));
    assert_eq!(s.state(fd), Err(Error::BadDescriptor));
}

#[test]
fn blocking_connect_with_a_send_timeout_gives_einprogress() {
    let (s, _other) = silent_stack();
    let fd = s.socket(false, None).unwrap();
    s.set_option(
        fd,
        rstcp::api::SockOpt::SendTimeout(Some(Duration::from_millis(100))),
    )
    .unwrap();
    let to = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 80);
    let t = std::time::Instant::now();
    assert_eq!(s.connect(fd, to), Err(Error::InProgress));
    assert!(t.elapsed() >= Duration::from_millis(100));
}

/// A link whose receive path panics, standing in for a bug in the I/O thread.
struct Exploding {
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    inner: rstcp::link::PairEnd,
}

impl rstcp::link::Link for Exploding {
    fn recv(
        &mut self,
        now: rstcp::time::Instant,
        buf: &mut [u8],
    ) -> std::io::Result<Option<usize>> {
        if self.armed.load(std::sync::atomic::Ordering::Acquire) {
            panic!("injected fault in the I/O thread");
        }
        self.inner.recv(now, buf)
    }
    fn send(&mut self, now: rstcp::time::Instant, packet: &[u8]) -> std::io::Result<()> {
        self.inner.send(now, packet)
    }
    fn readable_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.readable_fd()
    }
    fn mtu(&self) -> usize {
        1500
    }
}

#[test]
fn a_panic_in_the_io_thread_fails_calls_with_eio_instead_of_hanging() {
    let (ours, _other) = Pair::new(1500);
    let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let link = Exploding {
        armed: armed.clone(),
        inner: ours,
    };
    let s = std::sync::Arc::new(Sockets::new(
        Runtime::with_link(Box::new(link), StackConfig::default()).unwrap(),
    ));
    let l = s.socket(false, None).unwrap();
    s.bind(l, SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 80))
        .unwrap();
    s.listen(l, 1).unwrap();
    let waiter = {
        let s = s.clone();
        std::thread::spawn(move || s.accept(l, false, None).map(|_| ()))
    };
    std::thread::sleep(Duration::from_millis(100));
    armed.store(true, std::sync::atomic::Ordering::Release);
    // Wake the I/O thread so it reads (and panics).
    let c = s.socket(true, None).unwrap();
    let _ = s.connect(c, SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 80));
    assert_eq!(waiter.join().unwrap(), Err(Error::Io));
    let mut set = [PollFd {
        fd: l,
        events: libc::POLLIN,
        revents: 0,
    }];
    assert_eq!(s.poll(&mut set, None), Err(Error::Io));
}

#[test]
fn turning_keepalive_on_for_an_idle_connection_wakes_the_io_thread() {
    use rstcp::api::SockOpt;
    // Two stacks, each with its own I/O thread, over an in-memory link.
    let (ea, eb) = Pair::new(1500);
    let cfg = |last: u8| StackConfig {
        addr: Ipv4Addr::new(10, 66, 0, last),
        ..StackConfig::default()
    };
    let a = Sockets::new(Runtime::with_link(Box::new(ea), cfg(1)).unwrap());
    let b = Sockets::new(Runtime::with_link(Box::new(eb), cfg(2)).unwrap());
    let l = b.socket(false, None).unwrap();
    b.bind(l, SocketAddrV4::new(Ipv4Addr::new(10, 66, 0, 2), 80))
        .unwrap();
    b.listen(l, 1).unwrap();
    let c = a.socket(false, None).unwrap();
    a.connect(c, SocketAddrV4::new(Ipv4Addr::new(10, 66, 0, 2), 80))
        .unwrap();
    let _server = b.accept(l, false, None).unwrap();
    // Let every timer of the handshake run out: A's I/O thread now sleeps
    // with nothing to wake it but a packet or the application.
    std::thread::sleep(Duration::from_millis(1200));
    b.stop(); // the peer vanishes: nothing will ever answer
    a.set_option(c, SockOpt::KeepIdle(Duration::from_secs(1)))
        .unwrap();
    a.set_option(c, SockOpt::KeepInterval(Duration::from_secs(1)))
        .unwrap();
    a.set_option(c, SockOpt::KeepCount(1)).unwrap();
    a.set_option(c, SockOpt::KeepAlive(true)).unwrap();
    a.set_option(c, SockOpt::RecvTimeout(Some(Duration::from_secs(6))))
        .unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(
        a.recv(c, &mut buf, MsgFlags::default()),
        Err(Error::TimedOut)
    );
}
