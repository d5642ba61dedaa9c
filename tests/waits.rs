//! How blocked calls wait and end: two stacks over an in-memory link, each
//! with its own I/O thread. Covers what a socket library's users (and the
//! LD_PRELOAD shim) rely on: a closed socket's slot reused by a new socket
//! is never reached through the old descriptor, a signal handler interrupts
//! a blocked call with EINTR, shutdown(SHUT_RD) stops an accept thread,
//! and the readiness eventfd is the library's own copy.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rstcp::api::{MsgFlags, PollFd, Shutdown, SockOpt, SockOptName, Sockets};
use rstcp::link::Pair;
use rstcp::runtime::Runtime;
use rstcp::stack::StackConfig;
use rstcp::Error;

const A: Ipv4Addr = Ipv4Addr::new(10, 66, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 66, 0, 2);

/// Client stack `a` and server stack `b`.
fn pair() -> (Arc<Sockets>, Arc<Sockets>) {
    let (ea, eb) = Pair::new(1500);
    let cfg = |addr| StackConfig {
        addr,
        ..StackConfig::default()
    };
    let a = Sockets::new(Runtime::with_link(Box::new(ea), cfg(A)).unwrap());
    let b = Sockets::new(Runtime::with_link(Box::new(eb), cfg(B)).unwrap());
    (Arc::new(a), Arc::new(b))
}

fn listen(s: &Sockets, port: u16) -> i32 {
    let l = s.socket(false, None).unwrap();
    s.bind(l, SocketAddrV4::new(B, port)).unwrap();
    s.listen(l, 8).unwrap();
    l
}

/// A connected pair of descriptors: (client on `a`, server on `b`).
fn connected(a: &Sockets, b: &Sockets, port: u16) -> (i32, i32) {
    let l = listen(b, port);
    let c = a.socket(false, None).unwrap();
    a.connect(c, SocketAddrV4::new(B, port)).unwrap();
    let (srv, _) = b.accept(l, false, None).unwrap();
    b.close(l).unwrap();
    (c, srv)
}

/// Runs `f` on a thread and gives it time to block.
fn blocked<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let h = std::thread::spawn(f);
    std::thread::sleep(Duration::from_millis(150));
    assert!(!h.is_finished(), "the call did not block");
    h
}

/// poll() for POLLIN on `fd` without a timeout: (count, revents).
fn poll_in(s: &Sockets, fd: i32) -> rstcp::Result<(usize, i16)> {
    let mut set = [PollFd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    s.poll(&mut set, None).map(|n| (n, set[0].revents))
}

/// Joins `h`, failing the test instead of hanging if it does not end.
fn join_within<T>(h: std::thread::JoinHandle<T>, limit: Duration) -> T {
    let until = Instant::now() + limit;
    while !h.is_finished() {
        assert!(Instant::now() < until, "a blocked call never returned");
        std::thread::sleep(Duration::from_millis(5));
    }
    h.join().unwrap()
}

#[test]
fn a_blocked_accept_on_a_closed_listener_never_takes_the_next_sockets_connection() {
    let (a, b) = pair();
    for round in 0..5u16 {
        let port = 9000 + round;
        let l = listen(&b, port);
        let acc = {
            let b = b.clone();
            blocked(move || b.accept(l, false, None).map(|(fd, _)| fd))
        };
        b.close(l).unwrap();
        // The next socket most likely takes the freed slot; it listens on
        // another port and gets a connection at once.
        let l2 = listen(&b, port + 100);
        let c = a.socket(false, None).unwrap();
        a.connect(c, SocketAddrV4::new(B, port + 100)).unwrap();
        assert_eq!(
            join_within(acc, Duration::from_secs(5)),
            Err(Error::BadDescriptor),
            "round {round}: the old descriptor reached the new socket"
        );
        // The connection is still there for its own listener.
        let (srv, peer) = b.accept(l2, false, None).unwrap();
        assert_eq!(*peer.ip(), A);
        for fd in [srv, l2] {
            b.close(fd).unwrap();
        }
        a.close(c).unwrap();
    }
}

#[test]
fn an_old_descriptor_never_reaches_the_socket_that_reused_its_slot() {
    // The interleaving above made certain: the slot is reused while a
    // thread is still blocked on the old socket.
    let (a, b) = pair();
    let l = listen(&b, 9200);
    let old = b.socket_id(l).unwrap();
    let acc = {
        let b = b.clone();
        blocked(move || b.accept(l, false, None).map(|(fd, _)| fd))
    };
    let new = b.with_stack(|st| {
        st.close(rstcp::time::Instant::ZERO, old).unwrap();
        let new = st.socket_tcp();
        st.bind(new, SocketAddrV4::new(B, 9201)).unwrap();
        st.listen(new, 8).unwrap();
        new
    });
    assert_eq!(new.index(), old.index(), "the slot was reused");
    let c = a.socket(false, None).unwrap();
    a.connect(c, SocketAddrV4::new(B, 9201)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !acc.is_finished(),
        "the blocked accept of the old socket returned: {:?}",
        acc.join()
    );
    assert!(b.with_stack(|st| st.accept(new).is_ok()));
    // Closing the old descriptor ends the blocked call.
    assert_eq!(b.close(l), Err(Error::BadDescriptor));
    assert_eq!(
        join_within(acc, Duration::from_secs(5)),
        Err(Error::BadDescriptor)
    );
}

static HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_usr1(_: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// A SIGUSR1 handler without SA_RESTART, as Python installs its handlers.
fn install_handler() {
    // SAFETY: a zeroed sigaction with a plain handler that only counts.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

/// Sends SIGUSR1 to the thread running `h` and returns what its call gave.
fn interrupt<T>(h: std::thread::JoinHandle<T>) -> T {
    let before = HANDLED.load(Ordering::SeqCst);
    // SAFETY: the thread is alive (it is blocked) and the handler installed.
    unsafe {
        libc::pthread_kill(h.as_pthread_t(), libc::SIGUSR1);
    }
    let r = join_within(h, Duration::from_secs(5));
    assert!(
        HANDLED.load(Ordering::SeqCst) > before,
        "handler did not run"
    );
    r
}

#[test]
fn a_signal_handler_interrupts_blocked_calls_with_eintr() {
    install_handler();
    let (a, b) = pair();
    let (c, srv) = connected(&a, &b, 9500);

    let h = {
        let a = a.clone();
        blocked(move || a.recv(c, &mut [0u8; 16], MsgFlags::default()))
    };
    assert_eq!(interrupt(h), Err(Error::Interrupted));

    // With a receive timeout set, the signal still ends the wait at once.
    a.set_option(c, SockOpt::RecvTimeout(Some(Duration::from_secs(30))))
        .unwrap();
    let h = {
        let a = a.clone();
        blocked(move || {
            let t = Instant::now();
            (a.recv(c, &mut [0u8; 16], MsgFlags::default()), t.elapsed())
        })
    };
    let (r, took) = interrupt(h);
    assert_eq!(r, Err(Error::Interrupted));
    assert!(took < Duration::from_secs(10));
    a.set_option(c, SockOpt::RecvTimeout(None)).unwrap();

    let l = listen(&b, 9501);
    let h = {
        let b = b.clone();
        blocked(move || b.accept(l, false, None).map(|_| ()))
    };
    assert_eq!(interrupt(h), Err(Error::Interrupted));

    let h = {
        let a = a.clone();
        blocked(move || poll_in(&a, c).map(|_| ()))
    };
    assert_eq!(interrupt(h), Err(Error::Interrupted));

    // The connection is unharmed: data still flows after the interruptions.
    assert_eq!(b.send(srv, b"after", MsgFlags::default()), Ok(5));
    let mut buf = [0u8; 5];
    let wait_all = MsgFlags {
        wait_all: true,
        ..MsgFlags::default()
    };
    assert_eq!(a.recv(c, &mut buf, wait_all), Ok(5));
    assert_eq!(&buf, b"after");
}

static RESTARTED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_usr2(_: libc::c_int) {
    RESTARTED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn an_sa_restart_handler_restarts_calls_without_a_timeout_as_the_kernel_does() {
    // SAFETY: a zeroed sigaction with a counting handler and SA_RESTART.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr2 as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
    }
    let (a, b) = pair();
    let (c, srv) = connected(&a, &b, 9550);
    let kick = |t: libc::pthread_t| {
        let before = RESTARTED.load(Ordering::SeqCst);
        // SAFETY: the thread is alive (blocked) and the handler installed.
        unsafe { libc::pthread_kill(t, libc::SIGUSR2) };
        let end = Instant::now() + Duration::from_secs(5);
        while RESTARTED.load(Ordering::SeqCst) == before {
            assert!(Instant::now() < end, "handler did not run");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // recv without a timeout: the handler runs and the call goes on waiting.
    let h = {
        let a = a.clone();
        blocked(move || a.recv(c, &mut [0u8; 8], MsgFlags::default()))
    };
    kick(h.as_pthread_t());
    assert!(!h.is_finished(), "recv returned: {:?}", h.join());
    assert_eq!(b.send(srv, b"go", MsgFlags::default()), Ok(2));
    assert_eq!(join_within(h, Duration::from_secs(5)), Ok(2));
    // With SO_RCVTIMEO the kernel does not restart: EINTR.
    a.set_option(c, SockOpt::RecvTimeout(Some(Duration::from_secs(30))))
        .unwrap();
    let h = {
        let a = a.clone();
        blocked(move || a.recv(c, &mut [0u8; 8], MsgFlags::default()))
    };
    kick(h.as_pthread_t());
    assert_eq!(
        join_within(h, Duration::from_secs(5)),
        Err(Error::Interrupted)
    );
    // poll never restarts, whatever the handler's flags.
    let h = {
        let a = a.clone();
        blocked(move || poll_in(&a, c).map(|_| ()))
    };
    kick(h.as_pthread_t());
    assert_eq!(
        join_within(h, Duration::from_secs(5)),
        Err(Error::Interrupted)
    );
}

#[test]
fn a_blocked_recv_wakes_for_data_not_for_other_sockets_traffic() {
    let (a, b) = pair();
    let (c1, s1) = connected(&a, &b, 9600);
    let (c2, s2) = connected(&a, &b, 9601);
    let h = {
        let a = a.clone();
        blocked(move || {
            let mut buf = [0u8; 8];
            a.recv(c1, &mut buf, MsgFlags::default())
                .map(|n| buf[..n].to_vec())
        })
    };
    // Traffic on the other connection, both ways, leaves the reader blocked.
    for _ in 0..20 {
        assert_eq!(b.send(s2, b"noise", MsgFlags::default()), Ok(5));
        assert_eq!(a.send(c2, b"noise", MsgFlags::default()), Ok(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(!h.is_finished());
    assert_eq!(b.send(s1, b"mine", MsgFlags::default()), Ok(4));
    assert_eq!(join_within(h, Duration::from_secs(5)), Ok(b"mine".to_vec()));
}

#[test]
fn shutdown_on_a_listener_is_linux_like() {
    let (a, b) = pair();
    let l = listen(&b, 9700);
    // SHUT_WR: accepted and does nothing; the listener still works.
    assert_eq!(b.shutdown(l, Shutdown::Write), Ok(()));
    let c = a.socket(false, None).unwrap();
    a.connect(c, SocketAddrV4::new(B, 9700)).unwrap();
    let (srv, _) = b.accept(l, false, None).unwrap();
    b.close(srv).unwrap();
    a.close(c).unwrap();

    // SHUT_RD: a blocked accept ends with EINVAL (stopping an accept thread).
    let h = {
        let b = b.clone();
        blocked(move || b.accept(l, false, None).map(|_| ()))
    };
    assert_eq!(b.shutdown(l, Shutdown::Read), Ok(()));
    assert_eq!(join_within(h, Duration::from_secs(5)), Err(Error::Invalid));
    assert_eq!(b.accept(l, false, None).map(|_| ()), Err(Error::Invalid));
    // The port no longer takes connections...
    let c = a.socket(false, None).unwrap();
    assert_eq!(
        a.connect(c, SocketAddrV4::new(B, 9700)),
        Err(Error::ConnectionRefused)
    );
    a.close(c).unwrap();
    // ...until the socket, still bound, listens again.
    assert_eq!(b.local_addr(l), Ok(SocketAddrV4::new(B, 9700)));
    b.listen(l, 4).unwrap();
    let c = a.socket(false, None).unwrap();
    a.connect(c, SocketAddrV4::new(B, 9700)).unwrap();
    assert!(b.accept(l, false, None).is_ok());
}

#[test]
fn close_from_another_thread_ends_blocked_calls_with_ebadf() {
    let (a, b) = pair();
    let (c, _srv) = connected(&a, &b, 9800);
    let recv = {
        let a = a.clone();
        blocked(move || a.recv(c, &mut [0u8; 4], MsgFlags::default()))
    };
    let poll = {
        let a = a.clone();
        blocked(move || poll_in(&a, c))
    };
    let l = listen(&b, 9801);
    let acc = {
        let b = b.clone();
        blocked(move || b.accept(l, false, None).map(|_| ()))
    };
    a.close(c).unwrap();
    b.close(l).unwrap();
    let limit = Duration::from_secs(5);
    assert_eq!(join_within(recv, limit), Err(Error::BadDescriptor));
    assert_eq!(join_within(acc, limit), Err(Error::BadDescriptor));
    // poll reports the descriptor as invalid, as poll(2) does for a closed one.
    assert_eq!(join_within(poll, limit), Ok((1, libc::POLLNVAL)));
}

#[test]
fn the_readiness_eventfd_is_the_librarys_own_copy() {
    let (a, b) = pair();
    // SAFETY: plain eventfd calls; every descriptor is closed below.
    let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
    assert!(efd >= 0);
    a.set_readiness_fd(efd).unwrap();
    // The caller closes its eventfd; the number goes to another file.
    unsafe { libc::close(efd) };
    let other = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK) };
    assert!(other >= 0);
    let (c, srv) = connected(&a, &b, 9900);
    assert_eq!(b.send(srv, b"data", MsgFlags::default()), Ok(4));
    let mut buf = [0u8; 4];
    let wait_all = MsgFlags {
        wait_all: true,
        ..MsgFlags::default()
    };
    assert_eq!(a.recv(c, &mut buf, wait_all), Ok(4));
    let mut events = Vec::new();
    a.take_events(&mut events);
    assert!(events.iter().any(|e| e.fd == c), "{events:?}");
    // Nothing was ever written into the file that has the number now.
    let mut count = [0u8; 8];
    let n = unsafe { libc::read(other, count.as_mut_ptr().cast(), 8) };
    assert!(
        n < 0,
        "the library wrote into descriptor {other} (efd {efd})"
    );
    unsafe { libc::close(other) };
    a.set_readiness_fd(-1).unwrap();
    assert_eq!(
        a.set_readiness_fd(12345),
        Err(Error::BadDescriptor),
        "a number that is not open is refused"
    );
}

/// Sends `data` from `a` on its own thread (the send may block on the window).
fn send_all(a: &Arc<Sockets>, fd: i32, data: Vec<u8>) -> std::thread::JoinHandle<usize> {
    let a = a.clone();
    std::thread::spawn(move || a.send(fd, &data, MsgFlags::default()).unwrap())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn a_read_of_bytes_already_in_order_does_not_wait_for_the_stacks_lock() {
    let (a, b) = pair();
    let (c, srv) = connected(&a, &b, 7010);
    // Bytes already read once, so the ring has been used and emptied.
    assert_eq!(a.send(c, b"hello", MsgFlags::default()), Ok(5));
    let mut buf = [0u8; 5];
    assert_eq!(b.recv(srv, &mut buf, MsgFlags::default()), Ok(5));
    let data = pattern(20_000, 7);
    join_within(send_all(&a, c, data.clone()), Duration::from_secs(5));
    let until = Instant::now() + Duration::from_secs(5);
    while b.pending_bytes(srv).unwrap() < data.len() {
        assert!(Instant::now() < until, "the data never arrived");
        std::thread::sleep(Duration::from_millis(2));
    }
    // While something else holds the stack's lock, the bytes still read.
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = b.clone();
    let got = b.with_stack(|_| {
        std::thread::spawn(move || {
            let mut out = vec![0u8; 40_000];
            let n = reader.recv(srv, &mut out, MsgFlags::default()).unwrap();
            out.truncate(n);
            let _ = tx.send(out);
        });
        rx.recv_timeout(Duration::from_secs(2))
    });
    let got = got.expect("recv waited for the stack's lock");
    assert_eq!(got, data);
}

#[test]
fn a_send_that_fits_does_not_wait_for_the_stacks_lock() {
    let (a, b) = pair();
    let (c, srv) = connected(&a, &b, 7012);
    // A send before, so the ring has been used.
    assert_eq!(a.send(c, b"hello", MsgFlags::default()), Ok(5));
    let data = pattern(50_000, 9);
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = a.clone();
    let block = data.clone();
    let sent = a.with_stack(|_| {
        std::thread::spawn(move || {
            let _ = tx.send(writer.send(c, &block, MsgFlags::default()));
        });
        rx.recv_timeout(Duration::from_secs(2))
    });
    assert_eq!(
        sent.expect("send waited for the stack's lock"),
        Ok(data.len())
    );
    // Sent once the lock was free: everything arrives, in order.
    let mut got = vec![0u8; 5 + data.len()];
    assert_eq!(
        b.recv(
            srv,
            &mut got,
            MsgFlags {
                wait_all: true,
                ..MsgFlags::default()
            }
        ),
        Ok(got.len())
    );
    assert_eq!(&got[..5], b"hello");
    assert_eq!(&got[5..], &data[..]);
}

#[test]
fn reads_without_the_stacks_lock_still_open_the_window() {
    let (a, b) = pair();
    let (c, srv) = connected(&a, &b, 7011);
    // A small, fixed receive buffer that the sender fills again and again.
    b.set_option(srv, SockOpt::RecvBuffer(4096)).unwrap();
    let cap = match b.get_option(srv, SockOptName::RecvBuffer).unwrap() {
        SockOpt::RecvBuffer(n) => n,
        other => panic!("{other:?}"),
    };
    let data = pattern(12 * cap, 3);
    let sender = send_all(&a, c, data.clone());
    let mut got = Vec::new();
    let mut buf = vec![0u8; cap];
    while got.len() < data.len() {
        // Each time the window is (all but) shut and the sender waits,
        // read everything at once.
        let until = Instant::now() + Duration::from_secs(5);
        let mut held = 0;
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = b.pending_bytes(srv).unwrap();
            if now > 0 && now == held {
                break;
            }
            held = now;
            assert!(Instant::now() < until, "nothing arrived");
        }
        let n = b.recv(srv, &mut buf, MsgFlags::default()).unwrap();
        assert_eq!(n, held);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(join_within(sender, Duration::from_secs(5)), data.len());
    assert_eq!(got, data);
    // Each read that emptied the ring told the sender at once: it never
    // had to probe the shut window.
    let id = a.socket_id(c).unwrap();
    let probes = a.with_stack(|s| s.tcb(id).unwrap().stats().window_probes);
    assert_eq!(probes, 0, "the window stayed shut until the sender probed");
}

#[test]
fn sends_racing_a_shutdown_deliver_every_byte_they_accepted_and_no_other() {
    let (a, b) = pair();
    let (c, srv) = connected(&a, &b, 7013);
    // The stream starts with two bytes sent before the race.
    assert_eq!(a.send(c, b"go", MsgFlags::default()), Ok(2));
    let writer = a.clone();
    let sender = std::thread::spawn(move || {
        let mut accepted = b"go".to_vec();
        for i in 0u32.. {
            let chunk = pattern(1000 + (i as usize * 37) % 3000, i as u8);
            match writer.send(c, &chunk, MsgFlags::default()) {
                Ok(n) => accepted.extend_from_slice(&chunk[..n]),
                Err(Error::BrokenPipe) => return accepted,
                Err(e) => panic!("send: {e:?}"),
            }
        }
        unreachable!()
    });
    let reader = b.clone();
    let received = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 7000];
        loop {
            match reader.recv(srv, &mut buf, MsgFlags::default()) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("recv: {e:?}"),
            }
        }
    });
    std::thread::sleep(Duration::from_millis(30));
    a.shutdown(c, Shutdown::Write).unwrap();
    let accepted = join_within(sender, Duration::from_secs(5));
    let got = join_within(received, Duration::from_secs(5));
    assert!(
        accepted.len() > 10_000,
        "the race never ran: {}",
        accepted.len()
    );
    assert_eq!(got.len(), accepted.len());
    assert!(
        got == accepted,
        "the bytes received are not the bytes accepted"
    );
}

#[test]
fn a_failed_stack_fails_reads_and_writes_that_need_not_take_its_lock() {
    let (a, b) = pair();
    let (c, srv) = connected(&a, &b, 7014);
    assert_eq!(a.send(c, b"unread", MsgFlags::default()), Ok(6));
    let until = Instant::now() + Duration::from_secs(5);
    while b.pending_bytes(srv).unwrap() < 6 {
        assert!(Instant::now() < until, "the data never arrived");
        std::thread::sleep(Duration::from_millis(2));
    }
    // As after a panic inside the stack: every call fails with EIO, also
    // those the rings could have answered (the bytes would never leave).
    b.fail();
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(srv, &mut buf, MsgFlags::default()), Err(Error::Io));
    assert_eq!(b.send(srv, b"lost", MsgFlags::default()), Err(Error::Io));
}
