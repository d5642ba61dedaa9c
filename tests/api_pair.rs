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
