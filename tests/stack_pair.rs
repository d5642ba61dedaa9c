//! Two stacks over an in-memory link with faults, in virtual time: bulk
//! transfers both ways are compared byte for byte, and the close ends in the
//! right states.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use rstcp::link::FaultConfig;
use rstcp::stack::{Stack, StackConfig};
use rstcp::tcp::State;
use rstcp::Error;

mod sim;

use sim::{Flow, Sim, A, B};

fn bulk_both_ways(faults: FaultConfig, bytes: usize) {
    bulk_both_ways_on(Sim::new(faults), bytes);
}

fn bulk_both_ways_on(mut sim: Sim, bytes: usize) {
    let (c, s) = sim.connect(5001);
    let mut up = Flow::new(bytes, 1);
    let mut down = Flow::new(bytes, 2);
    sim.run_until(Duration::from_secs(3600), |sim| {
        let now = sim.now;
        up.pump(now, &mut sim.a, c, &mut sim.b, s);
        down.pump(now, &mut sim.b, s, &mut sim.a, c);
        up.done() && down.done()
    });
    for (_, t) in sim.a.connections().chain(sim.b.connections()) {
        eprintln!("{:?} virtual {:?}", t.stats(), sim.now);
    }
    assert_eq!(up.sent_hash.finish(), up.received_hash.finish());
    assert_eq!(down.sent_hash.finish(), down.received_hash.finish());
    // Orderly close from both sides: the active closer ends in TIME-WAIT.
    sim.close_from_a(c, s);
    sim.run_until(Duration::from_secs(5), |sim| {
        sim.a.socket_count() == 0 && sim.b.socket_count() == 1
    });
}

#[test]
fn bulk_with_heavy_loss_on_the_alternatives_reno_and_rfc6675() {
    // The defaults are CUBIC and RACK; the older pair stays correct.
    let faults = FaultConfig::parse("loss=0.05,seed=8,delay=5ms").unwrap();
    let mut fb = faults.clone();
    fb.seed += 1;
    let tcp = rstcp::tcp::Config {
        congestion: rstcp::tcp::Algorithm::Reno,
        loss_detection: rstcp::tcp::LossDetection::Rfc6675,
        ..rstcp::tcp::Config::default()
    };
    bulk_both_ways_on(Sim::with_tcp(faults, fb, tcp), 2 << 20);
}

#[test]
fn bulk_clean_link() {
    bulk_both_ways(FaultConfig::default(), 10 << 20);
}

#[test]
fn bulk_with_loss_reorder_duplication_corruption() {
    let faults = FaultConfig::parse(
        "loss=0.01,dup=0.01,reorder=0.01,corrupt=0.01,delay=2ms,jitter=1ms,seed=42",
    )
    .unwrap();
    bulk_both_ways(faults, 10 << 20);
}

#[test]
fn bulk_with_heavy_loss() {
    let faults = FaultConfig::parse("loss=0.05,seed=7,delay=5ms").unwrap();
    bulk_both_ways(faults, 2 << 20);
}

#[test]
fn simultaneous_open_through_both_stacks() {
    let mut sim = Sim::new(FaultConfig::default());
    let a = sim.a.socket_tcp();
    let b = sim.b.socket_tcp();
    sim.a.bind(a, SocketAddrV4::new(A, 6000)).unwrap();
    sim.b.bind(b, SocketAddrV4::new(B, 6001)).unwrap();
    let now = sim.now;
    sim.a.connect(now, a, SocketAddrV4::new(B, 6001)).unwrap();
    sim.b.connect(now, b, SocketAddrV4::new(A, 6000)).unwrap();
    // Both SYNs cross; each side answers SYN|ACK and ends ESTABLISHED.
    sim.run_until(Duration::from_secs(10), |s| {
        s.a.state(a).unwrap() == State::Established && s.b.state(b).unwrap() == State::Established
    });
    assert_eq!(sim.a.send(sim.now, a, b"hi").unwrap(), 2);
    let mut buf = [0u8; 8];
    sim.run_until(Duration::from_secs(5), |s| {
        s.b.recv(s.now, b, &mut buf, true).is_ok()
    });
    assert_eq!(sim.b.recv(sim.now, b, &mut buf, false), Ok(2));
    assert_eq!(&buf[..2], b"hi");
    // And a simultaneous close: both in CLOSING or straight to TIME-WAIT.
    let now = sim.now;
    sim.a.shutdown(now, a, false, true).unwrap();
    sim.b.shutdown(now, b, false, true).unwrap();
    sim.run_until(Duration::from_secs(10), |s| {
        s.a.state(a).unwrap() == State::TimeWait && s.b.state(b).unwrap() == State::TimeWait
    });
}

#[test]
fn closing_a_listener_resets_connections_nobody_accepted() {
    let mut sim = Sim::new(FaultConfig::default());
    let l = sim.b.socket_tcp();
    sim.b.bind(l, SocketAddrV4::new(B, 6002)).unwrap();
    sim.b.listen(l, 4).unwrap();
    let c = sim.a.socket_tcp();
    sim.a
        .connect(sim.now, c, SocketAddrV4::new(B, 6002))
        .unwrap();
    sim.run_until(Duration::from_secs(5), |s| {
        s.a.state(c).unwrap() == State::Established
    });
    // The handshake completed in the stack; nobody called accept.
    sim.b.close(sim.now, l).unwrap();
    sim.run_until(Duration::from_secs(5), |s| {
        s.a.state(c).unwrap() == State::Closed
    });
    let mut buf = [0u8; 4];
    assert_eq!(
        sim.a.recv(sim.now, c, &mut buf, false),
        Err(Error::ConnectionReset)
    );
    sim.run_until(Duration::from_secs(1), |s| s.b.socket_count() == 0);
}

#[test]
fn a_child_reset_during_its_handshake_is_never_handed_out() {
    let mut sim = Sim::new(FaultConfig::default());
    let l = sim.b.socket_tcp();
    sim.b.bind(l, SocketAddrV4::new(B, 6003)).unwrap();
    sim.b.listen(l, 4).unwrap();
    let c1 = sim.a.socket_tcp();
    sim.a
        .connect(sim.now, c1, SocketAddrV4::new(B, 6003))
        .unwrap();
    sim.run_until(Duration::from_secs(5), |s| {
        s.a.state(c1).unwrap() == State::Established
    });
    // The first client aborts (RST) right away: the server's side of the
    // handshake had not completed (its ACK is still on the wire).
    assert_eq!(
        sim.b.connections().next().unwrap().1.state(),
        State::SynReceived
    );
    sim.a.abort(sim.now, c1).unwrap();
    let c2 = sim.a.socket_tcp();
    sim.a
        .connect(sim.now, c2, SocketAddrV4::new(B, 6003))
        .unwrap();
    sim.run_until(Duration::from_secs(5), |s| {
        s.a.state(c2).unwrap() == State::Established
    });
    sim.run_until(Duration::from_secs(1), |_| true);
    for _ in 0..10 {
        sim.step();
    }
    // Only the live one comes out of accept; the reset one is gone.
    assert_eq!(sim.b.connections().count(), 1);
    let child = sim.b.accept(l).unwrap();
    assert_eq!(
        sim.b.peer_addr(child).unwrap(),
        sim.a.local_addr(c2).unwrap()
    );
    assert_eq!(sim.b.accept(l), Err(Error::WouldBlock));
}

#[test]
fn a_new_syn_reopens_a_connection_in_time_wait() {
    let mut sim = Sim::new(FaultConfig::default());
    let (c, s) = sim.connect(6004);
    let port = sim.a.local_addr(c).unwrap().port();
    // The server closes first, so the server side waits in TIME-WAIT.
    sim.b.close(sim.now, s).unwrap();
    sim.run_until(Duration::from_secs(5), |sim| {
        sim.a.state(c).unwrap() == State::CloseWait
    });
    sim.a.close(sim.now, c).unwrap();
    sim.run_until(Duration::from_secs(5), |sim| {
        sim.b.time_waits().count() == 1 && sim.a.socket_count() == 0
    });
    // The client comes back from the same port: its new SYN starts above
    // the old connection's sequence numbers, so the listener takes it.
    let again = sim.a.socket_tcp();
    sim.a.bind(again, SocketAddrV4::new(A, port)).unwrap();
    sim.a
        .connect(sim.now, again, SocketAddrV4::new(B, 6004))
        .unwrap();
    sim.run_until(Duration::from_secs(5), |sim| {
        sim.a.state(again).unwrap() == State::Established
    });
    assert_eq!(
        sim.b.time_wait_count(),
        0,
        "the new connection took its place"
    );
}

#[test]
fn an_established_child_reset_before_accept_is_accepted_and_reports_econnreset() {
    // As on Linux: the accept queue keeps it; reading shows the reset.
    let mut sim = Sim::new(FaultConfig::default());
    let l = sim.b.socket_tcp();
    sim.b.bind(l, SocketAddrV4::new(B, 6005)).unwrap();
    sim.b.listen(l, 4).unwrap();
    let c = sim.a.socket_tcp();
    sim.a
        .connect(sim.now, c, SocketAddrV4::new(B, 6005))
        .unwrap();
    sim.run_until(Duration::from_secs(5), |s| {
        s.b.readiness(l).unwrap() & libc::POLLIN != 0
    });
    sim.a.abort(sim.now, c).unwrap();
    sim.run_until(Duration::from_secs(5), |s| {
        s.b.connections().all(|(_, t)| t.state() == State::Closed)
    });
    let child = sim.b.accept(l).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(
        sim.b.recv(sim.now, child, &mut buf, false),
        Err(Error::ConnectionReset)
    );
    assert_eq!(sim.b.recv(sim.now, child, &mut buf, false), Ok(0));
    sim.b.close(sim.now, child).unwrap();
    sim.run_until(Duration::from_secs(1), |s| s.b.socket_count() == 1);
}

#[test]
fn a_full_syn_queue_answers_with_cookies_and_the_connection_works() {
    use rstcp::wire::{emit_ipv4_tcp, TcpFlags, TcpHeader, TcpOptions};
    let mut sim = Sim::new(FaultConfig::default());
    let l = sim.b.socket_tcp();
    sim.b.bind(l, SocketAddrV4::new(B, 9100)).unwrap();
    sim.b.listen(l, 2).unwrap();
    // Spoofed SYNs from hosts that will never answer fill the SYN queue.
    let mut pkt = vec![0u8; 128];
    for i in 0..50u32 {
        let header = TcpHeader {
            src_port: 40000 + i as u16,
            dst_port: 9100,
            seq: 7777 * i,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 65535,
            options: TcpOptions {
                mss: Some(1460),
                ..TcpOptions::default()
            },
        };
        let src = Ipv4Addr::new(10, 9, 0, 100 + i as u8);
        let n = emit_ipv4_tcp(&mut pkt, src, B, i as u16, &header, 0);
        let now = sim.now;
        sim.b.on_packet(now, &pkt[..n]);
    }
    assert_eq!(sim.b.stats().syn_cookies_sent, 48, "2 queued, 48 cookies");
    // A real client still gets in (through a cookie) and data flows.
    let c = sim.a.socket_tcp();
    let now = sim.now;
    sim.a.connect(now, c, SocketAddrV4::new(B, 9100)).unwrap();
    let mut server = None;
    sim.run_until(Duration::from_secs(5), |s| {
        if server.is_none() {
            server = s.b.accept(l).ok();
        }
        server.is_some() && s.a.state(c).unwrap() == State::Established
    });
    let s = server.unwrap();
    assert_eq!(sim.b.stats().syn_cookies_accepted, 1);
    // The cookie kept window scaling and SACK (in the timestamp).
    let tcb = sim.b.tcb(s).unwrap();
    assert_eq!(tcb.info(sim.now).options & 7, 7, "timestamps, SACK, wscale");
    let bytes = 300_000;
    let mut up = Flow::new(bytes, 11);
    let mut down = Flow::new(bytes, 12);
    sim.run_until(Duration::from_secs(60), |sim| {
        let now = sim.now;
        up.pump(now, &mut sim.a, c, &mut sim.b, s);
        down.pump(now, &mut sim.b, s, &mut sim.a, c);
        up.done() && down.done()
    });
    // A forged ACK with a wrong cookie gets a RST, not a connection.
    let header = TcpHeader {
        src_port: 41000,
        dst_port: 9100,
        seq: 5,
        ack: 123_456,
        flags: TcpFlags::ACK,
        window: 1000,
        options: TcpOptions::default(),
    };
    let n = emit_ipv4_tcp(&mut pkt, Ipv4Addr::new(10, 9, 0, 99), B, 0, &header, 0);
    let before = sim.b.stats().rst_sent_no_socket;
    let now = sim.now;
    sim.b.on_packet(now, &pkt[..n]);
    assert_eq!(sim.b.stats().syn_cookies_accepted, 1);
    assert_eq!(sim.b.stats().rst_sent_no_socket, before + 1);
}

#[test]
fn time_wait_is_bounded() {
    // At most max_time_wait connections wait out 2·MSL; more active closes
    // go straight to CLOSED, so a churn of short connections cannot grow
    // the stack without bound.
    let mut sim = Sim::new(FaultConfig::default());
    sim.a = Stack::new(StackConfig {
        addr: A,
        max_time_wait: 2,
        ..StackConfig::default()
    });
    for i in 0..5u16 {
        let (c, s) = sim.connect(6000 + i);
        sim.a.close(sim.now, c).unwrap();
        sim.run_until(Duration::from_secs(10), |sim| {
            sim.b.state(s).unwrap() == State::CloseWait
        });
        sim.b.close(sim.now, s).unwrap();
        // A's FIN-WAIT-2 takes B's FIN: TIME-WAIT, or CLOSED when full.
        sim.run_until(Duration::from_secs(10), |sim| {
            sim.a.time_wait_count() + sim.a.stats().time_wait_overflow as usize
                == usize::from(i) + 1
        });
    }
    assert_eq!(sim.a.time_waits().count(), 2);
    assert_eq!(sim.a.time_wait_count(), 2);
    assert_eq!(sim.a.stats().time_wait_overflow, 3);
}

#[test]
fn tcp_counters_add_up_like_netstat_s() {
    // On a clean link every segment one side sends, the other receives.
    let mut sim = Sim::new(FaultConfig::default());
    let (c, s) = sim.connect(6100);
    let mut up = Flow::new(200_000, 21);
    sim.run_until(Duration::from_secs(60), |sim| {
        let now = sim.now;
        up.pump(now, &mut sim.a, c, &mut sim.b, s);
        up.received == 200_000
    });
    for _ in 0..50 {
        sim.step();
    }
    let (a, b) = (sim.a.stats().clone(), sim.b.stats().clone());
    assert_eq!((a.tcp_active_opens, a.tcp_passive_opens), (1, 0));
    assert_eq!((b.tcp_active_opens, b.tcp_passive_opens), (0, 1));
    assert!(a.tcp_out_segs > 100, "{a:?}");
    assert_eq!(a.tcp_out_segs, b.tcp_in_segs);
    assert_eq!(b.tcp_out_segs, a.tcp_in_segs);
    assert_eq!(sim.a.tcp_retrans_segs(), 0);
}

#[test]
fn sockets_with_data_take_turns_to_send() {
    // Two connections with their windows' worth queued: the stack sends
    // one packet of each in turn, not all of one and then the other.
    let mut sim = Sim::new(FaultConfig::default());
    let (c1, _) = sim.connect(5101);
    let (c2, _) = sim.connect(5102);
    let data = vec![7u8; 64 * 1024];
    let now = sim.now;
    assert_eq!(sim.a.send(now, c1, &data), Ok(data.len()));
    assert_eq!(sim.a.send(now, c2, &data), Ok(data.len()));
    let mut buf = [0u8; 2048];
    let mut ports = Vec::new();
    for _ in 0..8 {
        let n = sim
            .a
            .poll_transmit(now, &mut buf)
            .expect("data to send")
            .len;
        let ip = rstcp::wire::parse_ipv4(&buf[..n]).unwrap();
        let seg = rstcp::wire::parse_tcp(ip.src, ip.dst, ip.payload).unwrap();
        ports.push(seg.dst_port);
    }
    let alternations = ports.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(alternations >= 6, "sent in the order {ports:?}");
}

#[test]
fn a_closed_connection_waits_out_time_wait_without_its_socket() {
    use rstcp::wire::{emit_ipv4_tcp, parse_ipv4, parse_tcp, TcpFlags, TcpHeader, TcpOptions};
    let mut sim = Sim::new(FaultConfig::default());
    let (c, s) = sim.connect(6010);
    let ours = sim.a.local_addr(c).unwrap();
    let theirs = SocketAddrV4::new(B, 6010);
    // Where B's FIN will sit, and just past ours, for the FIN sent again.
    let b_fin = sim.a.tcb(c).unwrap().rcv_nxt_value();
    sim.a.close(sim.now, c).unwrap();
    sim.run_until(Duration::from_secs(5), |sim| {
        sim.b.state(s).unwrap() == State::CloseWait
    });
    let a_end = sim.b.tcb(s).unwrap().rcv_nxt_value();
    sim.b.close(sim.now, s).unwrap();
    sim.run_until(Duration::from_secs(5), |sim| {
        sim.a.time_wait_count() == 1 && sim.b.socket_count() == 1
    });
    // No socket and no control block: a compact entry, still listed.
    assert_eq!(sim.a.socket_count(), 0);
    assert_eq!(sim.a.connections().count(), 0);
    assert_eq!(sim.a.time_waits().collect::<Vec<_>>(), [(ours, theirs)]);
    let mut rows = Vec::new();
    sim.a.socket_rows(sim.now, &mut rows);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].id, rows[0].state), (None, State::TimeWait));
    assert_eq!((rows[0].local, rows[0].peer), (ours, theirs));
    // Its port is held: only SO_REUSEADDR binds it (as on Linux).
    let x = sim.a.socket_tcp();
    assert_eq!(sim.a.bind(x, ours), Err(Error::AddressInUse));
    sim.a
        .set_options(sim.now, x, |o| o.reuse_addr = true)
        .unwrap();
    sim.a.bind(x, ours).unwrap();
    // And connecting from it to the same peer is refused while it waits.
    assert_eq!(
        sim.a.connect(sim.now, x, theirs),
        Err(Error::AddressNotAvailable)
    );
    sim.a.close(sim.now, x).unwrap();
    // B's FIN again a while later (our ACK was lost): answered with that ACK.
    sim.now = sim.now + Duration::from_secs(5);
    let fin = TcpHeader {
        src_port: 6010,
        dst_port: ours.port(),
        seq: b_fin,
        ack: a_end,
        flags: TcpFlags::FIN | TcpFlags::ACK,
        window: 65535,
        options: TcpOptions::default(),
    };
    let mut pkt = vec![0u8; 2048];
    let n = emit_ipv4_tcp(&mut pkt, B, A, 1, &fin, 0);
    let now = sim.now;
    sim.a.on_packet(now, &pkt[..n]);
    let sent = sim.a.poll_transmit(now, &mut pkt).expect("an ACK");
    let ip = parse_ipv4(&pkt[..sent.len]).unwrap();
    let ack = parse_tcp(ip.src, ip.dst, ip.payload).unwrap();
    assert_eq!(ack.flags, TcpFlags::ACK);
    assert_eq!((ack.seq, ack.ack), (a_end, b_fin.wrapping_add(1)));
    assert_eq!(ack.dst_port, 6010);
    assert!(sim.a.poll_transmit(now, &mut pkt).is_none());
    // 2·MSL after that FIN, the entry and its port are gone.
    let restarted = sim.now;
    let msl = sim.a.config().tcp.msl;
    sim.run_until(msl * 3, |sim| sim.a.time_wait_count() == 0);
    assert!(sim.now >= restarted + msl * 2, "the FIN restarted the wait");
    assert_eq!(sim.a.time_waits().count(), 0);
    let y = sim.a.socket_tcp();
    sim.a.bind(y, ours).unwrap();
}
