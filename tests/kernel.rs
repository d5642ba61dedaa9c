//! rstcp against the Linux kernel: each test makes its own network
//! namespace, the TUN device inside it, and kernel-side peers there.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown as NetShutdown, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Netns;
use rstcp::api::{MsgFlags, Shutdown, SockOpt, SockOptName, Sockets};
use rstcp::runtime::RuntimeConfig;
use rstcp::tcp::State;
use rstcp::Error;

const OURS: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const KERNEL: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn setup(tag: &str) -> (Netns, Arc<Sockets>) {
    setup_with(tag, None)
}

fn setup_with(tag: &str, faults: Option<&str>) -> (Netns, Arc<Sockets>) {
    let ns = Netns::new(tag);
    ns.enter();
    let (s, _) = common::start_rstcp(&ns, tag, faults);
    (ns, s)
}

/// The kernel side vanishes: its address goes away, so nothing answers.
fn remove_kernel_address(ns: &Netns) {
    let out = ns.exec(&["ip", "-o", "addr", "show", "to", "10.77.0.1"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let dev = text
        .split_whitespace()
        .nth(1)
        .expect("the TUN device")
        .to_string();
    ns.exec(&["ip", "addr", "del", "10.77.0.1/24", "dev", &dev]);
}

/// A deterministic byte stream both ends can generate.
struct Stream(u64);

impl Stream {
    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

fn send_all(s: &Sockets, fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        let n = s.send(fd, data, MsgFlags::default()).expect("send");
        data = &data[n..];
    }
}

/// Sends `total` bytes of stream `seed` on an rstcp descriptor.
fn send_stream(s: &Sockets, fd: i32, total: usize, seed: u64) {
    let mut gen = Stream(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len());
        gen.fill(&mut buf[..n]);
        send_all(s, fd, &buf[..n]);
        left -= n;
    }
}

/// Reads an rstcp descriptor to EOF, checking it is exactly stream `seed`.
fn recv_stream(s: &Sockets, fd: i32, seed: u64) -> usize {
    let mut check = Stream(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = s.recv(fd, &mut buf, MsgFlags::default()).expect("recv");
        if n == 0 {
            return total;
        }
        check.fill(&mut want[..n]);
        assert!(buf[..n] == want[..n], "payload differs near byte {total}");
        total += n;
    }
}

fn kernel_send_stream(k: &mut TcpStream, total: usize, seed: u64) {
    let mut gen = Stream(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len());
        gen.fill(&mut buf[..n]);
        k.write_all(&buf[..n]).expect("kernel write");
        left -= n;
    }
}

fn kernel_recv_stream(k: &mut TcpStream, seed: u64) -> usize {
    let mut check = Stream(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = k.read(&mut buf).expect("kernel read");
        if n == 0 {
            return total;
        }
        check.fill(&mut want[..n]);
        assert!(buf[..n] == want[..n], "payload differs near byte {total}");
        total += n;
    }
}

fn listen(s: &Sockets, port: u16, backlog: i32) -> i32 {
    let l = s.socket(false, None).unwrap();
    s.bind(l, SocketAddrV4::new(OURS, port)).unwrap();
    s.listen(l, backlog).unwrap();
    l
}

#[test]
fn kernel_client_to_our_server_echo() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("echo");
    let l = listen(&s, 7000, 16);
    let kernel = std::thread::spawn(|| {
        let mut k = TcpStream::connect((OURS, 7000)).expect("kernel connect");
        let mut r = k.try_clone().unwrap();
        let reader = std::thread::spawn(move || kernel_recv_stream(&mut r, 11));
        kernel_send_stream(&mut k, 3 << 20, 11);
        k.shutdown(NetShutdown::Write).unwrap();
        reader.join().unwrap()
    });
    let (c, peer) = s.accept(l, false, None).unwrap();
    assert_eq!(*peer.ip(), KERNEL);
    assert_eq!(s.local_addr(c).unwrap(), SocketAddrV4::new(OURS, 7000));
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = s.recv(c, &mut buf, MsgFlags::default()).unwrap();
        if n == 0 {
            break;
        }
        send_all(&s, c, &buf[..n]);
    }
    s.close(c).unwrap();
    assert_eq!(kernel.join().unwrap(), 3 << 20);
}

#[test]
fn our_client_to_kernel_server() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("client");
    let kl = TcpListener::bind((KERNEL, 7001)).unwrap();
    let kernel = std::thread::spawn(move || {
        let (mut k, peer) = kl.accept().unwrap();
        assert_eq!(peer.ip(), std::net::IpAddr::V4(OURS));
        let got = kernel_recv_stream(&mut k, 5);
        kernel_send_stream(&mut k, 1 << 20, 6);
        got
    });
    let c = s.socket(false, None).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7001)).unwrap();
    assert_eq!(s.state(c).unwrap(), State::Established);
    assert_eq!(s.peer_addr(c).unwrap(), SocketAddrV4::new(KERNEL, 7001));
    let local = s.local_addr(c).unwrap();
    assert!(
        (32768..=60999).contains(&local.port()),
        "ephemeral port {local}"
    );
    send_stream(&s, c, 2 << 20, 5);
    s.shutdown(c, Shutdown::Write).unwrap();
    assert_eq!(recv_stream(&s, c, 6), 1 << 20);
    assert_eq!(kernel.join().unwrap(), 2 << 20);
    s.close(c).unwrap();
}

/// A kernel peer on `port` that echoes 100 requests of 100 bytes, each
/// after `delay`, then waits for one more byte.
fn kernel_echo_100(port: u16, delay: Duration) -> std::thread::JoinHandle<()> {
    let kl = TcpListener::bind((KERNEL, port)).unwrap();
    std::thread::spawn(move || {
        let (mut k, _) = kl.accept().unwrap();
        let mut buf = [0u8; 100];
        for _ in 0..100 {
            k.read_exact(&mut buf).unwrap();
            std::thread::sleep(delay);
            k.write_all(&buf).unwrap();
        }
        k.read_exact(&mut buf[..1]).unwrap();
    })
}

/// A connection to a [`kernel_echo_100`] on `port`.
fn connect_echo_100(s: &Sockets, port: u16, delay: Duration) -> (i32, std::thread::JoinHandle<()>) {
    let kernel = kernel_echo_100(port, delay);
    let c = s.socket(false, None).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, port)).unwrap();
    (c, kernel)
}

/// The byte the echo waits for at the end, and the close.
fn end_echo_100(s: &Sockets, c: i32, kernel: std::thread::JoinHandle<()>) {
    send_all(s, c, b"x");
    kernel.join().unwrap();
    s.close(c).unwrap();
}

/// 100 requests of 100 bytes on `c`, each answer checked.
fn requests_100(s: &Sockets, c: i32) {
    for i in 0..100u8 {
        let request = [i; 100];
        send_all(s, c, &request);
        let mut reply = [0u8; 100];
        let mut got = 0;
        while got < 100 {
            got += s.recv(c, &mut reply[got..], MsgFlags::default()).unwrap();
        }
        assert_eq!(reply, request);
    }
}

#[test]
fn requests_leave_from_the_calling_thread() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("direct");
    let (c, kernel) = connect_echo_100(&s, 7009, Duration::ZERO);
    let before = s.with_stack(|st| st.stats().tx_by_callers);
    requests_100(&s, c);
    // Each request went out in the send call, written by this thread, not
    // handed to the I/O thread (which may take one now and then, when it
    // is writing at that moment).
    let direct = s.with_stack(|st| st.stats().tx_by_callers) - before;
    assert!(
        direct >= 50,
        "only {direct} of 100 requests sent by the caller"
    );
    end_echo_100(&s, c, kernel);
}

#[test]
fn a_blocked_call_takes_its_answer_from_the_device_itself() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("leader");
    // Each answer comes once the caller surely sleeps in its recv.
    let (c, kernel) = connect_echo_100(&s, 7011, Duration::from_millis(1));
    let counts = || {
        s.with_stack(|st| {
            let st = st.stats();
            (st.rx_by_callers, st.io_wakeups)
        })
    };
    let before = counts();
    requests_100(&s, c);
    // The thread blocked last sleeps on the device itself, and the I/O
    // thread leaves the device to it: each answer woke the caller alone,
    // which took it in, instead of the I/O thread taking it in and then
    // waking the caller.
    let after = counts();
    let taken = after.0 - before.0;
    assert!(taken >= 90, "only {taken} packets taken by the caller");
    // Nor is the I/O thread woken when the device changes hands, between
    // one call and the next.
    let woken = after.1 - before.1;
    assert!(woken <= 30, "the I/O thread woke {woken} times");
    end_echo_100(&s, c, kernel);
}

#[test]
fn the_device_goes_back_to_the_io_thread_when_the_last_leader_returns() {
    if common::skip_without_root() {
        return;
    }
    // A thread blocked in accept leads the device; another, blocking in
    // recv later, takes over without waking it, gets its answer and
    // returns. The one taken over from still sleeps, but no longer leads:
    // the device must go back to the I/O thread, or the next connection
    // would never be taken in.
    let (_ns, s) = setup("handback");
    let l = listen(&s, 7026, 4);
    let acceptor = {
        let s = s.clone();
        std::thread::spawn(move || s.accept(l, false, None).map(|(c, _)| c))
    };
    std::thread::sleep(Duration::from_millis(100));
    let (c, kernel) = connect_echo_100(&s, 7027, Duration::from_millis(1));
    requests_100(&s, c);
    end_echo_100(&s, c, kernel);
    // (The connect itself waits for our SYN|ACK.)
    let to = std::net::SocketAddr::from((OURS, 7026));
    let _k = TcpStream::connect_timeout(&to, Duration::from_secs(5));
    let t = Instant::now();
    while !acceptor.is_finished() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the accept was never answered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let accepted = acceptor.join().unwrap().unwrap();
    s.close(accepted).unwrap();
}

#[test]
fn busy_polling_calls_take_the_answers_from_the_device_themselves() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("busypoll");
    // Answers once the caller surely spins (on a loaded machine it may not
    // have reached its recv for a while); then silence, so a timed receive
    // must still time out.
    let (c, kernel) = connect_echo_100(&s, 7010, Duration::from_millis(1));
    let d = Duration::from_millis(50);
    s.set_option(c, SockOpt::BusyPoll(d)).unwrap();
    assert_eq!(
        s.get_option(c, SockOptName::BusyPoll).unwrap(),
        SockOpt::BusyPoll(d)
    );
    let before = s.with_stack(|st| st.stats().rx_by_callers);
    requests_100(&s, c);
    // The kernel answers well within 50 ms: the replies were read by the
    // calling thread, spinning, not by the I/O thread, which leaves the
    // device alone while a caller busy-polls.
    let taken = s.with_stack(|st| st.stats().rx_by_callers) - before;
    assert!(taken >= 90, "only {taken} packets taken by the caller");
    // A busy-poll longer than the timeout still ends at the timeout.
    s.set_option(c, SockOpt::BusyPoll(Duration::from_secs(1)))
        .unwrap();
    s.set_option(c, SockOpt::RecvTimeout(Some(Duration::from_millis(50))))
        .unwrap();
    let t = Instant::now();
    let mut one = [0u8; 1];
    assert_eq!(
        s.recv(c, &mut one, MsgFlags::default()),
        Err(Error::WouldBlock)
    );
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    end_echo_100(&s, c, kernel);
}

#[test]
fn hundred_concurrent_connections_both_ways() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("hundred");
    let l = listen(&s, 7002, 128);
    let server = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut handlers = Vec::new();
            for _ in 0..100 {
                let (c, _) = s.accept(l, false, None).unwrap();
                let s = s.clone();
                handlers.push(std::thread::spawn(move || {
                    let mut buf = [0u8; 8];
                    let mut got = 0;
                    while got < 8 {
                        got += s.recv(c, &mut buf[got..], MsgFlags::default()).unwrap();
                    }
                    let seed = u64::from_le_bytes(buf);
                    send_stream(&s, c, 100_000, seed);
                    s.close(c).unwrap();
                }));
            }
            for h in handlers {
                h.join().unwrap();
            }
        })
    };
    let clients: Vec<_> = (0..100u64)
        .map(|i| {
            std::thread::spawn(move || {
                let mut k = TcpStream::connect((OURS, 7002)).expect("kernel connect");
                k.write_all(&(1000 + i).to_le_bytes()).unwrap();
                kernel_recv_stream(&mut k, 1000 + i)
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 100_000);
    }
    server.join().unwrap();

    // And 100 of ours to a kernel server at once.
    let kl = TcpListener::bind((KERNEL, 7003)).unwrap();
    let kernel = std::thread::spawn(move || {
        let mut hs = Vec::new();
        for _ in 0..100 {
            let (mut k, _) = kl.accept().unwrap();
            hs.push(std::thread::spawn(move || {
                let mut buf = Vec::new();
                k.read_to_end(&mut buf).unwrap();
                k.write_all(&buf).unwrap();
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
    });
    let ours: Vec<_> = (0..100u64)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let c = s.socket(false, None).unwrap();
                s.connect(c, SocketAddrV4::new(KERNEL, 7003)).unwrap();
                send_stream(&s, c, 50_000, 77 + i);
                s.shutdown(c, Shutdown::Write).unwrap();
                let n = recv_stream(&s, c, 77 + i);
                s.close(c).unwrap();
                n
            })
        })
        .collect();
    for c in ours {
        assert_eq!(c.join().unwrap(), 50_000);
    }
    kernel.join().unwrap();
}

#[test]
fn half_close_each_direction() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("half");
    // We close our sending side first; the kernel still answers afterwards.
    let kl = TcpListener::bind((KERNEL, 7004)).unwrap();
    let kernel = std::thread::spawn(move || {
        let (mut k, _) = kl.accept().unwrap();
        let mut got = Vec::new();
        k.read_to_end(&mut got).unwrap();
        k.write_all(format!("got {} bytes", got.len()).as_bytes())
            .unwrap();
    });
    let c = s.socket(false, None).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7004)).unwrap();
    send_all(&s, c, &[7u8; 5000]);
    s.shutdown(c, Shutdown::Write).unwrap();
    assert_eq!(s.send(c, b"x", MsgFlags::default()), Err(Error::BrokenPipe));
    let mut reply = Vec::new();
    let mut buf = [0u8; 100];
    loop {
        let n = s.recv(c, &mut buf, MsgFlags::default()).unwrap();
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    assert_eq!(reply, b"got 5000 bytes");
    kernel.join().unwrap();
    // Both FINs are exchanged: we closed first, so we wait in TIME-WAIT (or are done).
    let st = s.state(c).unwrap();
    assert!(
        matches!(st, State::TimeWait | State::FinWait2 | State::Closed),
        "{st}"
    );
    s.close(c).unwrap();

    // The kernel closes its sending side first; we still answer.
    let l = listen(&s, 7005, 4);
    let kernel = std::thread::spawn(move || {
        let mut k = TcpStream::connect((OURS, 7005)).unwrap();
        k.write_all(&[9u8; 3000]).unwrap();
        k.shutdown(NetShutdown::Write).unwrap();
        let mut reply = String::new();
        k.read_to_string(&mut reply).unwrap();
        reply
    });
    let (c, _) = s.accept(l, false, None).unwrap();
    let mut total = 0;
    loop {
        let n = s.recv(c, &mut buf, MsgFlags::default()).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(s.state(c).unwrap(), State::CloseWait);
    send_all(&s, c, format!("got {total} bytes").as_bytes());
    s.close(c).unwrap();
    assert_eq!(kernel.join().unwrap(), "got 3000 bytes");
}

#[test]
fn refused_both_ways() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("refused");
    let c = s.socket(false, None).unwrap();
    assert_eq!(
        s.connect(c, SocketAddrV4::new(KERNEL, 9)),
        Err(Error::ConnectionRefused)
    );
    s.close(c).unwrap();
    let e = TcpStream::connect_timeout(&(OURS, 9).into(), Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn icmp_unreachable_from_the_kernel_fails_a_connect_at_once() {
    if common::skip_without_root() {
        return;
    }
    // The kernel answers our SYNs to two ports with ICMP errors (nftables
    // reject rules); without ICMP handling the connects would retry their
    // SYN for minutes.
    let (ns, s) = setup("icmp");
    let rules = "table inet rstcp_icmp {
  chain input {
    type filter hook input priority 0;
    tcp dport 7901 reject with icmp type port-unreachable
    tcp dport 7902 reject with icmp type host-unreachable
  }
}";
    ns.nft(rules);
    for (port, want) in [
        (7901, Error::ConnectionRefused),
        (7902, Error::HostUnreachable),
    ] {
        let c = s.socket(false, None).unwrap();
        let t = Instant::now();
        assert_eq!(s.connect(c, SocketAddrV4::new(KERNEL, port)), Err(want));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
        s.close(c).unwrap();
    }
    assert!(s.with_stack(|st| st.stats().icmp_errors) >= 2);
}

#[test]
fn ping_gets_echo_replies() {
    if common::skip_without_root() {
        return;
    }
    let (ns, s) = setup("ping");
    let out = ns.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 received"));
    assert!(s.with_stack(|st| st.stats().echo_replies) >= 3);
}

#[test]
fn backlog_full_drops_new_syns() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("backlog");
    let l = listen(&s, 7006, 2);
    // Nobody accepts: two handshakes complete, the third SYN is dropped.
    let conns: Vec<_> = (0..2)
        .map(|_| TcpStream::connect_timeout(&(OURS, 7006).into(), Duration::from_secs(3)).unwrap())
        .collect();
    let third = TcpStream::connect_timeout(&(OURS, 7006).into(), Duration::from_millis(700));
    assert!(third.is_err(), "third connection should wait: backlog is 2");
    assert!(s.with_stack(|st| st.stats().syn_dropped_backlog) >= 1);
    drop(conns);
    s.close(l).unwrap();
}

#[test]
fn hundred_megabytes_each_way() {
    if common::skip_without_root() {
        return;
    }
    hundred_megabytes("bulk", true);
}

#[test]
fn hundred_megabytes_each_way_without_offload() {
    if common::skip_without_root() {
        return;
    }
    hundred_megabytes("bulknooff", false);
}

/// 100 MB each way, byte-exact; with `offload` the kernel hands over its
/// large segments whole and takes ours whole (and both must have happened),
/// without it never.
fn hundred_megabytes(tag: &str, offload: bool) {
    let ns = Netns::new(tag);
    ns.enter();
    let (s, _) = common::start_rstcp_offload(&ns, tag, None, offload);
    let total = 100usize << 20;
    let l = listen(&s, 7007, 4);
    let kernel = std::thread::spawn(move || {
        let mut k = TcpStream::connect((OURS, 7007)).unwrap();
        let t = Instant::now();
        kernel_send_stream(&mut k, total, 3);
        k.shutdown(NetShutdown::Write).unwrap();
        let up = t.elapsed();
        let t = Instant::now();
        let n = kernel_recv_stream(&mut k, 4);
        (n, up, t.elapsed())
    });
    let (c, _) = s.accept(l, false, None).unwrap();
    assert_eq!(recv_stream(&s, c, 3), total);
    send_stream(&s, c, total, 4);
    s.close(c).unwrap();
    let (n, up, down) = kernel.join().unwrap();
    assert_eq!(n, total);
    let large = s.with_stack(|st| st.stats().rx_large_packets);
    let sent_large = s.with_stack(|st| st.stats().tx_large_packets);
    let in_place = s.with_stack(|st| st.stats().tx_in_place);
    if offload {
        assert!(large > 0, "no large segment came from the kernel");
        assert!(sent_large > 0, "no large segment went to the kernel");
        // The device completes checksums: every payload left from the
        // send ring, none copied (the kernel checked the bytes above).
        assert!(
            in_place >= sent_large,
            "{in_place} payloads written from the ring, {sent_large} large packets"
        );
    } else {
        assert_eq!((large, sent_large, in_place), (0, 0, 0));
    }
    let mbps = |d: Duration| (total as f64 * 8.0 / d.as_secs_f64()) / 1e6;
    eprintln!(
        "100 MB (offload {offload}) kernel->rstcp in {:?} ({:.0} Mbit/s), rstcp->kernel in {:?} ({:.0} Mbit/s); {large} large segments received, {sent_large} sent",
        up,
        mbps(up),
        down,
        mbps(down)
    );
}

#[test]
fn lossy_reordering_duplicating_link_with_the_kernel() {
    if common::skip_without_root() {
        return;
    }
    // Faults on our link layer, in both directions, against Linux's TCP.
    let (_ns, s) = setup_with(
        "faults",
        Some("loss=0.02,dup=0.01,reorder=0.02,corrupt=0.01,delay=1ms,seed=3"),
    );
    let total = 4usize << 20;
    let l = listen(&s, 7008, 4);
    let kernel = std::thread::spawn(move || {
        let mut k = TcpStream::connect((OURS, 7008)).unwrap();
        kernel_send_stream(&mut k, total, 21);
        k.shutdown(NetShutdown::Write).unwrap();
        kernel_recv_stream(&mut k, 22)
    });
    let (c, _) = s.accept(l, false, None).unwrap();
    let t = Instant::now();
    assert_eq!(recv_stream(&s, c, 21), total);
    let up = t.elapsed();
    let t = Instant::now();
    send_stream(&s, c, total, 22);
    let stats = s.with_stack(|st| st.connections().map(|(_, t)| t.stats()).collect::<Vec<_>>());
    eprintln!("our sender's recovery: {stats:?}");
    // The fault injector must see every packet: no thread writes past it.
    assert_eq!(s.with_stack(|st| st.stats().tx_by_callers), 0);
    s.close(c).unwrap();
    assert_eq!(kernel.join().unwrap(), total);
    eprintln!(
        "lossy link: kernel->rstcp {up:?}, rstcp->kernel {:?}",
        t.elapsed()
    );
}

#[test]
fn caller_chosen_descriptors_and_a_readiness_eventfd() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("readiness");
    // SAFETY: a plain eventfd for the test; closed at the end.
    let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(efd >= 0);
    s.set_readiness_fd(efd).unwrap();
    // The LD_PRELOAD shim hands out a kernel placeholder's number: the table
    // takes the number it is given, and refuses one already in use.
    let l = s.socket(false, Some(1000)).unwrap();
    assert_eq!(l, 1000);
    assert_eq!(s.socket(false, Some(1000)), Err(Error::BadDescriptor));
    s.bind(l, SocketAddrV4::new(OURS, 7010)).unwrap();
    s.listen(l, 4).unwrap();
    let drain = || {
        let mut v = 0u64;
        // SAFETY: reading 8 bytes from our eventfd into a u64.
        unsafe { libc::read(efd, &mut v as *mut u64 as *mut libc::c_void, 8) };
        v
    };
    drain();
    let k = std::thread::spawn(|| {
        let mut k = TcpStream::connect((OURS, 7010)).unwrap();
        k.write_all(b"ping").unwrap();
        k
    });
    // The handshake completing makes the listener readable: the eventfd fires.
    assert!(
        common::wait_readable(efd, 5000),
        "readiness eventfd was not signalled"
    );
    assert!(drain() > 0);
    // The queue names the socket that changed, with its readiness.
    let mut events = Vec::new();
    s.take_events(&mut events);
    assert!(
        events
            .iter()
            .any(|e| e.fd == 1000 && e.mask & libc::POLLIN != 0),
        "{events:?}"
    );
    let (c, _) = s.accept(l, false, Some(2000)).unwrap();
    assert_eq!(c, 2000);
    let mut k = k.join().unwrap();
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        got += s.recv(c, &mut buf[got..], MsgFlags::default()).unwrap();
    }
    assert_eq!(&buf, b"ping");
    events.clear();
    s.take_events(&mut events);
    drain();
    k.write_all(b"more").unwrap();
    // Each wake-up of the eventfd comes with queued events; one of them
    // is the data's arrival.
    let until = Instant::now() + Duration::from_secs(5);
    let mut seen = false;
    while !seen && Instant::now() < until {
        assert!(
            common::wait_readable(efd, 5000),
            "data arrival did not signal readiness"
        );
        drain();
        events.clear();
        s.take_events(&mut events);
        seen = events
            .iter()
            .any(|e| e.fd == 2000 && e.mask & libc::POLLIN != 0);
    }
    assert!(seen, "the data's arrival was never queued");
    s.close(c).unwrap();
    s.close(l).unwrap();
    s.set_readiness_fd(-1).unwrap();
    // SAFETY: closing the eventfd made above.
    unsafe { libc::close(efd) };
}

#[test]
fn mss_is_clamped_to_a_small_mtu() {
    if common::skip_without_root() {
        return;
    }
    let ns = Netns::new("mtu");
    ns.enter();
    let cfg = RuntimeConfig {
        tun: ns.dev_name(),
        addr: OURS,
        prefix_len: 24,
        mtu: 1280,
        ..RuntimeConfig::default()
    };
    let s = Sockets::start(&cfg).unwrap();
    let kl = TcpListener::bind((KERNEL, 7011)).unwrap();
    let kernel = std::thread::spawn(move || {
        let (mut k, _) = kl.accept().unwrap();
        kernel_send_stream(&mut k, 1 << 20, 8);
        kernel_recv_stream(&mut k, 9)
    });
    let c = s.socket(false, None).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7011)).unwrap();
    let mss = s.with_stack(|st| st.connections().map(|(_, t)| t.send_mss()).max().unwrap());
    // 1280 - 40 bytes of headers, less 12 for timestamps.
    assert_eq!(mss, 1228);
    send_stream(&s, c, 1 << 20, 9);
    s.shutdown(c, Shutdown::Write).unwrap();
    let mut check = Stream(8);
    let mut buf = vec![0u8; 65536];
    let mut want = vec![0u8; 65536];
    let mut total = 0;
    while total < 1 << 20 {
        let n = s.recv(c, &mut buf, MsgFlags::default()).unwrap();
        assert!(n > 0);
        check.fill(&mut want[..n]);
        assert_eq!(buf[..n], want[..n]);
        total += n;
    }
    assert_eq!(kernel.join().unwrap(), 1 << 20);
    s.close(c).unwrap();
}

#[test]
fn so_reuseaddr_rebinds_a_port_held_by_time_wait() {
    if common::skip_without_root() {
        return;
    }
    let (_ns, s) = setup("reuse");
    let reuse = |fd| {
        s.set_option(fd, rstcp::api::SockOpt::ReuseAddr(true))
            .unwrap()
    };
    let l = s.socket(false, None).unwrap();
    reuse(l);
    s.bind(l, SocketAddrV4::new(OURS, 7012)).unwrap();
    s.listen(l, 4).unwrap();
    let k = std::thread::spawn(|| {
        let mut k = TcpStream::connect((OURS, 7012)).unwrap();
        let mut buf = Vec::new();
        k.read_to_end(&mut buf).unwrap();
        buf
    });
    let (c, _) = s.accept(l, false, None).unwrap();
    send_all(&s, c, b"bye");
    // We close first: our side of the connection waits in TIME-WAIT.
    s.close(c).unwrap();
    assert_eq!(k.join().unwrap(), b"bye");
    s.close(l).unwrap();
    // The socket is closed, so the wait is kept compact, without it.
    let in_time_wait = || s.with_stack(|st| st.time_waits().count() == 1);
    let t = Instant::now();
    while !in_time_wait() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the closed connection should reach TIME-WAIT"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Without SO_REUSEADDR the port is taken; with it, it can be bound again.
    let plain = s.socket(false, None).unwrap();
    assert_eq!(
        s.bind(plain, SocketAddrV4::new(OURS, 7012)),
        Err(Error::AddressInUse)
    );
    let again = s.socket(false, None).unwrap();
    reuse(again);
    s.bind(again, SocketAddrV4::new(OURS, 7012)).unwrap();
    s.listen(again, 4).unwrap();
    let k = std::thread::spawn(|| TcpStream::connect((OURS, 7012)).map(|_| ()));
    let (c, _) = s.accept(again, false, None).unwrap();
    k.join().unwrap().unwrap();
    // A second listener on the same port is refused even with SO_REUSEADDR.
    let third = s.socket(false, None).unwrap();
    reuse(third);
    assert_eq!(
        s.bind(third, SocketAddrV4::new(OURS, 7012)),
        Err(Error::AddressInUse)
    );
    for fd in [c, again, plain, third] {
        s.close(fd).unwrap();
    }
}

#[test]
fn keepalive_keeps_a_live_peer_and_drops_one_that_vanished() {
    if common::skip_without_root() {
        return;
    }
    let (ns, s) = setup("keepalive");
    let kl = TcpListener::bind((KERNEL, 7013)).unwrap();
    let c = s.socket(false, None).unwrap();
    use rstcp::api::SockOpt;
    s.set_option(c, SockOpt::KeepAlive(true)).unwrap();
    s.set_option(c, SockOpt::KeepIdle(Duration::from_secs(1)))
        .unwrap();
    s.set_option(c, SockOpt::KeepInterval(Duration::from_secs(1)))
        .unwrap();
    s.set_option(c, SockOpt::KeepCount(2)).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7013)).unwrap();
    let (_k, _) = kl.accept().unwrap();
    // Linux answers our probes: after several idle periods all is well.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(s.state(c).unwrap(), State::Established);
    // The kernel side vanishes (its address goes away, so nothing answers):
    // two unanswered probes later the connection times out.
    remove_kernel_address(&ns);
    let mut buf = [0u8; 8];
    s.set_option(c, SockOpt::RecvTimeout(Some(Duration::from_secs(10))))
        .unwrap();
    let t = Instant::now();
    assert_eq!(
        s.recv(c, &mut buf, MsgFlags::default()),
        Err(Error::TimedOut)
    );
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
}

#[test]
fn a_user_timeout_ends_a_blocked_call_when_the_peer_vanishes() {
    if common::skip_without_root() {
        return;
    }
    use rstcp::api::SockOpt;
    let (ns, s) = setup("usertimeout");
    let kl = TcpListener::bind((KERNEL, 7016)).unwrap();
    let c = s.socket(false, None).unwrap();
    s.set_option(c, SockOpt::UserTimeout(Some(Duration::from_millis(1500))))
        .unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7016)).unwrap();
    let (_k, _) = kl.accept().unwrap();
    remove_kernel_address(&ns);
    // Data goes out and is never acknowledged: the blocked recv ends with
    // ETIMEDOUT at the user timeout, not after minutes of retries.
    assert_eq!(s.send(c, b"hello?", MsgFlags::default()), Ok(6));
    let t = Instant::now();
    let mut buf = [0u8; 8];
    assert_eq!(
        s.recv(c, &mut buf, MsgFlags::default()),
        Err(Error::TimedOut)
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[test]
fn tcp_maxseg_set_before_connect_is_the_mss_announced_to_the_kernel() {
    if common::skip_without_root() {
        return;
    }
    use rstcp::api::SockOpt;
    use std::os::fd::AsRawFd;
    let (_ns, s) = setup("maxseg");
    let kl = TcpListener::bind((KERNEL, 7017)).unwrap();
    let c = s.socket(false, None).unwrap();
    s.set_option(c, SockOpt::MaxSeg(1000)).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7017)).unwrap();
    let (k, _) = kl.accept().unwrap();
    let mut mss: i32 = 0;
    let mut len = 4 as libc::socklen_t;
    // SAFETY: getsockopt on the kernel socket into a local int.
    let r = unsafe {
        libc::getsockopt(
            k.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            &mut mss as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(r, 0);
    // The kernel sends at most what we announced (less its timestamp option).
    assert!((900..=1000).contains(&mss), "kernel's MSS toward us: {mss}");
}

#[test]
fn a_syn_flood_does_not_keep_a_real_client_out() {
    if common::skip_without_root() {
        return;
    }
    // 10,000 spoofed SYNs from hosts of the namespace's subnet that do not
    // exist; meanwhile a real kernel client connects and moves data. SYN
    // cookies keep the listener open however full its SYN queue is.
    let (ns, s) = setup("synflood");
    let l = listen(&s, 7020, 16);
    let server = {
        let s = s.clone();
        std::thread::spawn(move || {
            let (c, _) = s.accept(l, false, None).unwrap();
            let mut buf = vec![0u8; 65536];
            let mut total = 0;
            loop {
                match s.recv(c, &mut buf, MsgFlags::default()) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        total += n;
                        let mut off = 0;
                        while off < n {
                            off += s.send(c, &buf[off..n], MsgFlags::default()).unwrap();
                        }
                    }
                }
            }
            s.close(c).unwrap();
            total
        })
    };
    let flood = ns
        .command("python3")
        .args([
            "scripts/peers/raw_tcp.py",
            "flood",
            "10.77.0.2",
            "7020",
            "10.77.0",
            "10000",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = flood.wait_with_output().unwrap();
    // The spoofed half-open connections now fill the SYN queue (their
    // SYN|ACKs go unanswered for seconds): the client must get in anyway.
    let t = Instant::now();
    let mut k = TcpStream::connect_timeout(&(OURS, 7020).into(), Duration::from_secs(3))
        .expect("the real client got in during the flood");
    let connect = t.elapsed();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let writer = {
        let mut k = k.try_clone().unwrap();
        let data = data.clone();
        std::thread::spawn(move || {
            k.write_all(&data).unwrap();
            k.shutdown(NetShutdown::Write).unwrap();
        })
    };
    let mut echo = Vec::new();
    k.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    k.read_to_end(&mut echo).unwrap();
    writer.join().unwrap();
    assert!(
        echo == data,
        "echo differs ({} of {} bytes)",
        echo.len(),
        data.len()
    );
    assert_eq!(server.join().unwrap(), data.len());
    let stats = s.with_stack(|st| st.stats().clone());
    eprintln!(
        "SYN flood: {} ; connect took {connect:?}; {} cookies sent, {} accepted",
        String::from_utf8_lossy(&out.stdout).trim(),
        stats.syn_cookies_sent,
        stats.syn_cookies_accepted
    );
    assert!(connect < Duration::from_secs(1), "connect took {connect:?}");
    assert!(stats.syn_cookies_sent > 1000, "{stats:?}");
    assert_eq!(
        stats.syn_cookies_accepted, 1,
        "the client came in by a cookie"
    );
}

#[test]
fn forged_segments_never_break_a_connection_or_its_data() {
    if common::skip_without_root() {
        return;
    }
    // RFC 5961's attacks with crafted segments from a raw socket in the
    // namespace, all in the connection's 4-tuple: an RST out of the window,
    // an in-window RST not at RCV.NXT, a SYN, data beyond the window, an
    // ACK of data never sent. The connection survives each, and the echo
    // of everything the real client sends stays byte-exact.
    let (ns, s) = setup("forged");
    let l = listen(&s, 7021, 4);
    let mut k = TcpStream::connect((OURS, 7021)).unwrap();
    let (c, _) = s.accept(l, false, None).unwrap();
    let kport = k.local_addr().unwrap().port().to_string();
    let echo_round = |k: &mut TcpStream, n: usize| {
        let data: Vec<u8> = (0..n).map(|i| (i * 13 % 251) as u8).collect();
        k.write_all(&data).unwrap();
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            got += s.recv(c, &mut buf[got..], MsgFlags::default()).unwrap();
        }
        assert!(buf == data, "data corrupted");
        let mut off = 0;
        while off < n {
            off += s.send(c, &buf[off..], MsgFlags::default()).unwrap();
        }
        let mut back = vec![0u8; n];
        k.read_exact(&mut back).unwrap();
        assert!(back == data, "echo corrupted");
    };
    echo_round(&mut k, 10_000);
    let id = s.socket_id(c).unwrap();
    let (rcv_nxt, snd_max) = s.with_stack(|st| {
        let t = st.tcb(id).unwrap();
        (t.rcv_nxt_value(), t.snd_max_value())
    });
    let attacks: [(u32, u32, &str, &str); 5] = [
        (rcv_nxt.wrapping_add(1 << 30), 0, "R", "0"),
        (rcv_nxt.wrapping_add(1000), 0, "R", "0"),
        (rcv_nxt.wrapping_add(10), 0, "S", "0"),
        (rcv_nxt.wrapping_add(50_000_000), snd_max, "PA", "100"),
        (rcv_nxt, snd_max.wrapping_add(1_000_000), "A", "0"),
    ];
    for (seq, ack, flags, len) in attacks {
        let (seq, ack) = (seq.to_string(), ack.to_string());
        let args = [
            "scripts/peers/raw_tcp.py",
            "send",
            "10.77.0.1",
            &kport,
            "10.77.0.2",
            "7021",
            &seq,
            &ack,
            flags,
            len,
        ];
        let out = ns.command("python3").args(args).output().unwrap();
        assert!(out.status.success(), "raw_tcp.py: {out:?}");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            s.state(c).unwrap(),
            State::Established,
            "after a forged {flags}"
        );
        echo_round(&mut k, 20_000);
    }
    assert_eq!(s.with_stack(|st| st.tcb(id).unwrap().stats().timeouts), 0);
}

#[test]
fn a_syn_with_a_newer_timestamp_reopens_a_compact_time_wait() {
    if common::skip_without_root() {
        return;
    }
    // We close first, so our end waits in TIME-WAIT, compact once the
    // socket is closed. A SYN on the same ports from a raw socket, with a
    // sequence number below the old connection's but a newer timestamp
    // (RFC 6191, as Linux decides it), is a new connection: the listener
    // takes it and answers with SYN|ACK (which the kernel, holding no such
    // socket, resets).
    let (ns, s) = setup("twreopen");
    let l = listen(&s, 7025, 4);
    let mut k = TcpStream::connect((OURS, 7025)).unwrap();
    let kport = k.local_addr().unwrap().port();
    let (c, _) = s.accept(l, false, None).unwrap();
    k.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    let mut got = 0;
    while got < 5 {
        got += s.recv(c, &mut buf[got..], MsgFlags::default()).unwrap();
    }
    let id = s.socket_id(c).unwrap();
    let (rcv_nxt, ts_recent) = s.with_stack(|st| {
        let t = st.tcb(id).unwrap();
        (t.rcv_nxt_value(), t.ts_recent_value())
    });
    let ts_recent = ts_recent.expect("Linux sends timestamps");
    s.close(c).unwrap();
    let mut rest = Vec::new();
    k.read_to_end(&mut rest).unwrap();
    drop(k);
    let t = Instant::now();
    while s.with_stack(|st| st.time_waits().count()) != 1 {
        assert!(t.elapsed() < Duration::from_secs(5), "no compact TIME-WAIT");
        std::thread::sleep(Duration::from_millis(5));
    }
    let opens = || s.with_stack(|st| st.stats().tcp_passive_opens);
    let before = opens();
    let (kport, seq) = (kport.to_string(), rcv_nxt.wrapping_sub(100_000).to_string());
    let tsval = ts_recent.wrapping_add(1000).to_string();
    let args = [
        "scripts/peers/raw_tcp.py",
        "send",
        "10.77.0.1",
        &kport,
        "10.77.0.2",
        "7025",
        &seq,
        "0",
        "S",
        "0",
        &tsval,
    ];
    let out = ns.command("python3").args(args).output().unwrap();
    assert!(out.status.success(), "raw_tcp.py: {out:?}");
    let t = Instant::now();
    while opens() == before {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the SYN did not reopen the connection"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(s.with_stack(|st| st.time_waits().count()), 0);
}

#[test]
fn a_peer_that_stops_reading_for_30_s_gets_everything_afterwards() {
    if common::skip_without_root() {
        return;
    }
    use std::os::fd::AsRawFd;
    // The kernel side reads nothing for 30 s: its small receive buffer
    // fills, its window closes, and our persist timer probes it (with
    // backoff) instead of giving up. Then it reads all, byte for byte.
    let (_ns, s) = setup("stall");
    let kl = TcpListener::bind((KERNEL, 7022)).unwrap();
    let small: i32 = 8192;
    // SAFETY: setsockopt on the listener with a local int; accepted
    // sockets inherit the buffer size.
    unsafe {
        libc::setsockopt(
            kl.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &small as *const i32 as *const libc::c_void,
            4,
        );
    }
    let c = s.socket(false, None).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7022)).unwrap();
    let (mut k, _) = kl.accept().unwrap();
    let total = 2 << 20;
    let data: Vec<u8> = (0..total).map(|i| (i * 31 % 251) as u8).collect();
    let sender = {
        let s = s.clone();
        let data = data.clone();
        std::thread::spawn(move || {
            let mut off = 0;
            while off < data.len() {
                off += s.send(c, &data[off..], MsgFlags::default()).unwrap();
            }
        })
    };
    std::thread::sleep(Duration::from_secs(30));
    let id = s.socket_id(c).unwrap();
    let stats = s.with_stack(|st| st.tcb(id).unwrap().stats());
    assert_eq!(s.state(c).unwrap(), State::Established);
    assert!(stats.window_probes >= 4, "{stats:?}");
    let mut got = vec![0u8; total];
    k.read_exact(&mut got).unwrap();
    sender.join().unwrap();
    assert!(got == data, "the data differs after the stall");
}

#[test]
fn tcp_info_of_a_live_connection() {
    if common::skip_without_root() {
        return;
    }
    use rstcp::api::options::SockOptName;
    use rstcp::api::SockOpt;
    let (_ns, s) = setup("tcpinfo");
    let kl = TcpListener::bind((KERNEL, 7018)).unwrap();
    let c = s.socket(false, None).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7018)).unwrap();
    let (mut k, _) = kl.accept().unwrap();
    assert_eq!(s.send(c, &[7u8; 100_000], MsgFlags::default()), Ok(100_000));
    let mut got = vec![0u8; 100_000];
    k.read_exact(&mut got).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let Ok(SockOpt::Info(i)) = s.get_option(c, SockOptName::Info) else {
        panic!("no TCP_INFO");
    };
    assert_eq!(i.state, 1, "ESTABLISHED");
    // Linux peers negotiate timestamps, SACK and window scaling.
    assert_eq!(i.options & 7, 7, "options {:#x}", i.options);
    assert_eq!(i.snd_mss, 1448, "1500-byte MTU less headers and timestamps");
    // A local TUN round trip is well under the timestamps' 1 ms tick.
    assert!(i.rtt < 100_000, "rtt {} us", i.rtt);
    assert!(i.rto >= 200_000, "rto {} us", i.rto);
    assert_eq!(i.unacked, 0);
    assert_eq!(i.lost, 0);
    assert!(
        i.min_rtt > 0 && i.min_rtt < 100_000,
        "min_rtt {} us",
        i.min_rtt
    );
    assert!(i.segs_out >= 70, "{} segments for 100 kB", i.segs_out);
    let l = listen(&s, 7019, 1);
    let Ok(SockOpt::Info(li)) = s.get_option(l, SockOptName::Info) else {
        panic!("no TCP_INFO for a listener");
    };
    assert_eq!(li.state, 10, "LISTEN");
}

#[test]
fn so_linger_zero_resets_and_a_timeout_makes_close_wait_for_delivery() {
    if common::skip_without_root() {
        return;
    }
    use rstcp::api::SockOpt;
    use std::os::fd::AsRawFd;
    let (_ns, s) = setup("linger");
    let kl = TcpListener::bind((KERNEL, 7014)).unwrap();
    // A small kernel receive buffer, so delivery waits for its reader.
    let small: libc::c_int = 16 * 1024;
    // SAFETY: setting an int option on a live socket we own.
    unsafe {
        libc::setsockopt(
            kl.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &small as *const libc::c_int as *const libc::c_void,
            4,
        );
    }

    // l_linger = 0: close resets the connection.
    let c = s.socket(false, None).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7014)).unwrap();
    let (mut k, _) = kl.accept().unwrap();
    s.set_option(c, SockOpt::Linger(Some(Duration::ZERO)))
        .unwrap();
    assert_eq!(
        s.get_option(c, rstcp::api::options::SockOptName::Linger)
            .unwrap(),
        SockOpt::Linger(Some(Duration::ZERO))
    );
    s.close(c).unwrap();
    let mut buf = [0u8; 16];
    let e = k.read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);

    // l_linger = 5 s: close returns only once the slow reader has it all.
    let c = s.socket(false, None).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7014)).unwrap();
    let (mut k, _) = kl.accept().unwrap();
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let mut got = Vec::new();
        k.read_to_end(&mut got).unwrap();
        got.len()
    });
    s.set_option(c, SockOpt::Linger(Some(Duration::from_secs(5))))
        .unwrap();
    send_all(&s, c, &vec![5u8; 200_000]);
    let t = Instant::now();
    s.close(c).unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "close returned after {waited:?}"
    );
    assert_eq!(reader.join().unwrap(), 200_000);
}

#[test]
fn keepalive_turned_on_for_an_idle_connection_takes_effect() {
    if common::skip_without_root() {
        return;
    }
    use rstcp::api::SockOpt;
    let (ns, s) = setup("kaidle");
    let kl = TcpListener::bind((KERNEL, 7015)).unwrap();
    let c = s.socket(false, None).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7015)).unwrap();
    let (_k, _) = kl.accept().unwrap();
    // Idle: the I/O thread has no timer left and sleeps until a packet or
    // a wake-up comes. Turning keep-alive on must still start its timer.
    std::thread::sleep(Duration::from_millis(1500));
    remove_kernel_address(&ns);
    s.set_option(c, SockOpt::KeepIdle(Duration::from_secs(1)))
        .unwrap();
    s.set_option(c, SockOpt::KeepInterval(Duration::from_secs(1)))
        .unwrap();
    s.set_option(c, SockOpt::KeepCount(1)).unwrap();
    s.set_option(c, SockOpt::KeepAlive(true)).unwrap();
    s.set_option(c, SockOpt::RecvTimeout(Some(Duration::from_secs(8))))
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 8];
    assert_eq!(
        s.recv(c, &mut buf, MsgFlags::default()),
        Err(Error::TimedOut)
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn two_shards_behind_one_set_of_descriptors_serve_the_connections_their_ports_name() {
    use rstcp::link::queues::shard_of;
    if common::skip_without_root() {
        return;
    }
    let ns = Netns::new("shards");
    ns.enter();
    let cfg = RuntimeConfig {
        tun: ns.dev_name(),
        addr: OURS,
        prefix_len: 24,
        msl: Duration::from_millis(500),
        shards: 2,
        ..RuntimeConfig::default()
    };
    let s = Arc::new(Sockets::start(&cfg).unwrap());
    assert_eq!(s.shard_count(), 2, "the steering program was refused");
    let total = 256 << 10;
    let kl = TcpListener::bind((KERNEL, 7021)).unwrap();
    let kernel_server = std::thread::spawn(move || {
        let mut served = Vec::new();
        for _ in 0..9 {
            let (mut k, _) = kl.accept().unwrap();
            served.push(std::thread::spawn(move || {
                let n = kernel_recv_stream(&mut k, 40);
                kernel_send_stream(&mut k, total, 50);
                n
            }));
        }
        served
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    // One listener: it listens in both shards, and accept takes from both.
    let l = listen(&s, 7020, 16);
    let server = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut by_shard = [0; 2];
            for _ in 0..16 {
                let (c, peer) = s.accept(l, false, None).unwrap();
                let (local, shard) = (s.local_addr(c).unwrap(), s.shard_of_fd(c).unwrap());
                assert_eq!(shard_of(local.port(), peer.port(), 2), shard, "{peer}");
                by_shard[shard] += 1;
                assert_eq!(recv_stream(&s, c, 60), total);
                send_stream(&s, c, total, 61);
                s.close(c).unwrap();
            }
            by_shard
        })
    };
    let client = |s: Arc<Sockets>| {
        std::thread::spawn(move || {
            let c = s.socket(false, None).unwrap();
            s.connect(c, SocketAddrV4::new(KERNEL, 7021)).unwrap();
            let (local, peer) = (s.local_addr(c).unwrap(), s.peer_addr(c).unwrap());
            let shard = s.shard_of_fd(c).unwrap();
            assert_eq!(shard_of(local.port(), peer.port(), 2), shard);
            send_stream(&s, c, total, 40);
            s.shutdown(c, Shutdown::Write).unwrap();
            assert_eq!(recv_stream(&s, c, 50), total);
            s.close(c).unwrap();
            shard
        })
    };
    // One socket bound first to a port whose connection names the other
    // shard than the one it was made in: connect moves it there.
    let c = s.socket(false, None).unwrap();
    let home = s.shard_of_fd(c).unwrap();
    let port = (40000u16..)
        .find(|&p| shard_of(p, 7021, 2) != home)
        .unwrap();
    s.bind(c, SocketAddrV4::new(OURS, port)).unwrap();
    s.set_option(c, SockOpt::NoDelay(true)).unwrap();
    s.connect(c, SocketAddrV4::new(KERNEL, 7021)).unwrap();
    assert_eq!(s.shard_of_fd(c).unwrap(), 1 - home, "it did not move");
    assert_eq!(s.local_addr(c).unwrap().port(), port);
    assert_eq!(
        s.get_option(c, SockOptName::NoDelay).unwrap(),
        SockOpt::NoDelay(true),
        "its options moved with it"
    );
    send_stream(&s, c, total, 40);
    s.shutdown(c, Shutdown::Write).unwrap();
    assert_eq!(recv_stream(&s, c, 50), total);
    s.close(c).unwrap();
    // Eight connections out, each from the shard it was made in (they
    // alternate between the shards).
    let clients: Vec<_> = (0..8).map(|_| client(s.clone())).collect();
    let kernel_clients: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                let mut k = TcpStream::connect((OURS, 7020)).unwrap();
                kernel_send_stream(&mut k, total, 60);
                k.shutdown(NetShutdown::Write).unwrap();
                kernel_recv_stream(&mut k, 61)
            })
        })
        .collect();
    let out: Vec<usize> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(out.contains(&0) && out.contains(&1), "{out:?}");
    assert!(kernel_server.join().unwrap().iter().all(|&n| n == total));
    for k in kernel_clients {
        assert_eq!(k.join().unwrap(), total);
    }
    // Both shards took some of the sixteen (all in one: 2^-15).
    let by_shard = server.join().unwrap();
    assert!(by_shard.iter().all(|&n| n > 0), "{by_shard:?}");
    // Each shard's stack counted its own.
    let opens = s.with_stacks(|_, st| st.stats().tcp_passive_opens);
    assert_eq!(opens.iter().sum::<u64>(), 16, "{opens:?}");
    // Shut down, the listener stops listening in every shard: each of
    // eight new connections is refused, whichever shard it lands on.
    s.shutdown(l, Shutdown::Both).unwrap();
    for _ in 0..8 {
        let e = TcpStream::connect((OURS, 7020)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    }
    s.close(l).unwrap();
}
