//! Flow control: the advertised window, the peer's window, zero-window
//! persist probing and its timeout, and window scaling.

use super::*;
use crate::tcp::seq;
use crate::wire::SackBlock;

#[test]
fn advertised_window_shrinks_as_data_is_buffered_unread() {
    let mut t = Script::established(&simple());
    t.inject(seg(ACK, 5001, 1001).data(&bytes(1000)));
    t.inject(seg(ACK, 6001, 1001).data(&bytes(1000)));
    assert_eq!(t.expect(ACK, 1001, 7001).window, 8000);
    t.inject(seg(ACK, 7001, 1001).data(&bytes(1000)));
    t.inject(seg(ACK, 8001, 1001).data(&bytes(1000)));
    assert_eq!(t.expect(ACK, 1001, 9001).window, 6000);
    // Reading 3000 bytes opens the window by more than 2·MSS: a window update.
    let mut out = vec![0; 3000];
    assert_eq!(t.tcb.recv(&mut out, false), Ok(3000));
    assert_eq!(t.expect(ACK, 1001, 9001).window, 9000);
}

#[test]
fn small_reads_do_not_send_window_updates() {
    let mut t = Script::established(&simple());
    t.inject(seg(ACK, 5001, 1001).data(&bytes(1000)));
    t.inject(seg(ACK, 6001, 1001).data(&bytes(1000)));
    assert_eq!(t.expect(ACK, 1001, 7001).window, 8000);
    assert_eq!(t.tcb.recv(&mut [0u8; 100], false), Ok(100));
    t.expect_nothing();
}

#[test]
fn sender_never_sends_beyond_the_peer_window() {
    let mut t = Script::established_with(&simple(), 1000, Some(1460), 0);
    t.send(&bytes(3000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_nothing();
    // The window slides: 1000 more, and no more.
    t.inject(seg(ACK, 5001, 2001).win(1000));
    t.expect_len(ACK, 2001, 5001, 1000);
    t.expect_nothing();
    // Half acknowledged, window still 1000: 500 bytes of room (half the
    // peer's largest window, so silly window avoidance lets it go).
    t.inject(seg(ACK, 5001, 2501).win(1000));
    t.expect_len(ACK, 3001, 5001, 500);
    t.expect_nothing();
}

#[test]
fn zero_window_persist_probes_with_backoff_then_data_flows() {
    let mut t = Script::established_with(&simple(), 1000, Some(1460), 0);
    assert_eq!(t.tcb.rto(), ms(200));
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.inject(seg(ACK, 5001, 2001).win(0));
    t.expect_nothing();
    assert_eq!(t.tcb.rto(), ms(200));
    // Probes of one byte after an RTO, then twice as long, then four times.
    for wait in [200, 400, 800] {
        t.advance(wait - 1);
        t.expect_nothing();
        t.advance(1);
        t.expect_len(ACK, 2001, 5001, 1);
        t.expect_nothing();
        // The peer's window is still closed.
        t.inject(seg(ACK, 5001, 2001).win(0));
        t.expect_nothing();
    }
    assert_eq!(t.state(), State::Established);
    // The window opens: the rest flows, from the probed byte on.
    t.inject(seg(ACK, 5001, 2001).win(4000));
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
    t.inject(seg(ACK, 5001, 3001).win(4000));
    assert_eq!(t.tcb.send_queue(), 0);
}

#[test]
fn zero_window_probing_never_times_out_while_the_peer_answers() {
    let cfg = Config {
        retries: 3,
        max_rto: ms(2000),
        ..simple()
    };
    let mut t = Script::established_with(&cfg, 1000, Some(1460), 0);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.inject(seg(ACK, 5001, 2001).win(0));
    t.expect_nothing();
    let mut probes = 0;
    for _ in 0..60_000 {
        t.advance(1);
        if let Some(out) = t.poll() {
            assert_eq!((out.seq, out.payload.len()), (2001, 1));
            probes += 1;
            t.inject(seg(ACK, 5001, 2001).win(0));
        }
    }
    assert_eq!(t.state(), State::Established);
    assert!(probes >= 30, "{probes} probes in a minute");
    t.inject(seg(ACK, 5001, 2001).win(1000));
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
}

#[test]
fn unanswered_zero_window_probes_time_out() {
    let cfg = Config {
        retries: 3,
        ..simple()
    };
    let mut t = Script::established_with(&cfg, 1000, Some(1460), 0);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.inject(seg(ACK, 5001, 2001).win(0));
    t.expect_nothing();
    // Probes at 200, 600, 1400 ms; nobody answers.
    for wait in [200, 400, 800] {
        t.advance(wait);
        t.expect_len(ACK, 2001, 5001, 1);
    }
    t.advance(1599);
    assert_eq!(t.state(), State::Established);
    t.advance(1);
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.tcb.take_error(), Some(Error::TimedOut));
}

#[test]
fn rto_with_a_window_shrunk_to_zero_hands_over_to_persist_probes() {
    let mut t = Script::established_with(&simple(), 2000, Some(1000), 0);
    t.tcb.set_nodelay(true);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
    // The peer takes the first segment and shrinks its window to nothing:
    // the second segment is outside it now.
    t.inject(seg(ACK, 5001, 2001).win(0));
    t.expect_nothing();
    // The RTO finds nothing that fits; the backed-off RTO (400 ms) later, a probe.
    t.advance(200);
    t.expect_nothing();
    t.advance(399);
    t.expect_nothing();
    t.advance(1);
    t.expect_len(ACK, 2001, 5001, 1);
    t.inject(seg(ACK, 5001, 2001).win(1000));
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
    assert_eq!(t.state(), State::Established);
}

#[test]
fn window_reopening_releases_held_data() {
    let mut t = Script::established_with(&simple(), 0, Some(1460), 0);
    t.send(&bytes(500));
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 1001).win(1000));
    t.expect_len(PSH | ACK, 1001, 5001, 500);
}

#[test]
fn window_scale_applies_to_windows_after_the_syn() {
    let cfg = Config {
        window_scaling: true,
        recv_buffer: 256 * 1024,
        ..simple()
    };
    let shift = cfg.window_shift();
    assert_eq!(shift, 7);
    let mut t = Script::active(&cfg, ISS);
    let syn = t.expect(SYN, 1000, 0);
    assert_eq!(syn.options.window_scale, Some(7));
    assert_eq!(syn.window, 65535, "the SYN's window is never scaled");
    let opts = TcpOptions {
        mss: Some(1460),
        window_scale: Some(2),
        ..TcpOptions::default()
    };
    t.inject(seg(SYN | ACK, 5000, 1001).win(1000).opts(opts));
    assert_eq!(
        t.tcb.send_window(),
        1000,
        "the SYN|ACK's window is never scaled"
    );
    let ack = t.expect(ACK, 1001, 5001);
    assert_eq!(ack.window, ((256 * 1024) >> 7) as u16);
    t.inject(seg(ACK, 5001, 1001).win(1000));
    assert_eq!(t.tcb.send_window(), 4000);
}

#[test]
fn acks_sent_while_probing_keep_a_sequence_number_the_peer_accepts() {
    let mut t = Script::established_with(&simple(), 1000, Some(1460), 0);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.inject(seg(ACK, 5001, 2001).win(0));
    t.expect_nothing();
    t.advance(200);
    t.expect_len(ACK, 2001, 5001, 1);
    // The peer sends data while its window stays shut: our ACK of it carries
    // seq 2001 (the probe byte is not counted as sent), which the peer's
    // RCV.NXT of 2001 accepts.
    t.inject(seg(ACK, 5001, 2001).win(0).data(b"abc"));
    t.advance(40);
    t.expect(ACK, 2001, 5004);
    // The peer took the probe byte: its ACK of 2002 is accepted.
    t.inject(seg(ACK, 5004, 2002).win(3000));
    t.expect_len(PSH | ACK, 2002, 5004, 999);
}

#[test]
fn sacked_bytes_never_let_the_sender_past_the_peers_window() {
    // The peer's window is 5000 from SND.UNA. SACKed bytes leave the pipe
    // (congestion control may send more) but not the peer's buffer: nothing
    // new may go beyond SND.UNA + SND.WND.
    let mut t = Script::established_sack(1000);
    t.inject(seg(ACK, 5001, 1001).win(5000));
    t.send(&bytes(20_000));
    for i in 0..5 {
        t.expect_len(ACK, 1001 + i * 1000, 5001, 1000);
    }
    t.expect_nothing();
    let sack = |end: u32| TcpOptions {
        sack_blocks: [
            SackBlock { start: 2001, end },
            SackBlock::default(),
            SackBlock::default(),
            SackBlock::default(),
        ],
        sack_len: 1,
        ..TcpOptions::default()
    };
    let mut sent = Vec::new();
    for end in [3001, 4001, 5001, 6001] {
        t.inject(seg(ACK, 5001, 1001).win(5000).opts(sack(end)));
        while let Some(out) = t.poll() {
            sent.push((out.seq, out.payload.len()));
        }
    }
    for &(seq, len) in &sent {
        assert!(
            seq::le(seq.wrapping_add(len as u32), 6001),
            "sent {len} bytes at {seq}, past the peer's window edge 6001: {sent:?}"
        );
    }
    // The hole itself goes again (fast retransmit), within the window.
    assert!(sent.contains(&(1001, 1000)), "{sent:?}");
}

#[test]
fn a_window_smaller_than_a_segment_with_nothing_in_flight_is_probed_with_data() {
    // The peer once offered 65535 and now offers 500: a 500-byte segment is
    // silly by RFC 9293's rule (less than half the largest window), so the
    // sender holds it — but with nothing in flight no ACK will ever come.
    // The persist timer overrides the hold (3.8.6.2.1) and sends what fits,
    // as Linux's probe timer does; each answer restarts it from one RTO.
    let mut t = Script::established_with(&simple(), 65535, Some(1460), 0);
    assert_eq!(t.tcb.rto(), ms(200));
    t.inject(seg(ACK, 5001, 1001).win(500));
    t.send(&bytes(1700));
    t.expect_nothing();
    t.advance(199);
    t.expect_nothing();
    t.advance(1);
    t.expect_len(ACK, 1001, 5001, 500);
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 1501).win(500));
    t.expect_nothing();
    t.advance(200);
    t.expect_len(ACK, 1501, 5001, 500);
    // The window opens wide: the rest goes at once.
    t.inject(seg(ACK, 5001, 2001).win(65535));
    t.expect_len(PSH | ACK, 2001, 5001, 700);
    t.inject(seg(ACK, 5001, 2701).win(65535));
    assert_eq!(t.tcb.send_queue(), 0);
}

#[test]
fn the_window_never_opens_by_a_silly_amount() {
    // Receiver-side silly window avoidance (RFC 1122, 4.2.3.3): with the
    // buffer full, reading 100 bytes must not advertise a 100-byte window
    // (the peer would send 100-byte segments); the right edge moves only
    // by min(half the buffer, one MSS).
    let mut t = Script::established(&simple());
    t.no_quick_acks();
    let mut last = None;
    for i in 0..10u32 {
        t.inject(seg(ACK, 5001 + i * 1000, 1001).data(&bytes(1000)));
        while let Some(out) = t.poll() {
            last = Some((out.ack, out.window));
        }
    }
    assert_eq!(last, Some((15001, 0)));
    assert_eq!(t.tcb.recv(&mut [0u8; 100], false), Ok(100));
    // A window probe: the answer still says 0, and the byte is not taken.
    t.inject(seg(ACK, 15001, 1001).data(&bytes(1)));
    t.advance(40);
    let ack = t.expect(ACK, 1001, 15001);
    assert_eq!(ack.window, 0, "a 100-byte window was offered");
    // Reading more than a segment's worth opens it properly (and the byte
    // is taken, leaving still more than a segment free).
    let mut out = vec![0; 1400];
    assert_eq!(t.tcb.recv(&mut out, false), Ok(1400));
    t.inject(seg(ACK, 15001, 1001).data(&bytes(1)));
    t.advance(40);
    let ack = t.expect(ACK, 1001, 15002);
    assert_eq!(ack.window, 1499);
}

#[test]
fn the_receive_buffer_grows_when_the_window_limits_the_peer() {
    // The peer sends more than half the window every 10 ms round trip and
    // the application keeps up: the window is the bottleneck, so the buffer
    // doubles (up to the maximum), and the advertised window with it.
    let cfg = Config {
        recv_autotune: true,
        recv_buffer_max: 40_000,
        ..simple()
    };
    let mut t = Script::established_with(&cfg, 65535, Some(1460), 10);
    let mut seq = 5001u32;
    let mut windows = Vec::new();
    for _ in 0..6 {
        for _ in 0..16 {
            t.inject(seg(ACK, seq, 1001).data(&bytes(1000)));
            seq += 1000;
            t.read_all();
        }
        while let Some(out) = t.poll() {
            windows.push(out.window);
        }
        t.advance(10);
    }
    assert_eq!(
        t.tcb.stats().recv_buffer_grown,
        2,
        "10 kB -> 20 kB -> 40 kB"
    );
    assert!(windows.iter().any(|&w| w > 30_000), "{windows:?}");
    // An application that set SO_RCVBUF keeps its size.
    let mut fixed = Script::established_with(&cfg, 65535, Some(1460), 10);
    fixed.tcb.set_recv_buffer(10_000);
    let mut seq = 5001u32;
    for _ in 0..6 {
        for _ in 0..8 {
            fixed.inject(seg(ACK, seq, 1001).data(&bytes(1000)));
            seq += 1000;
            fixed.read_all();
        }
        while fixed.poll().is_some() {}
        fixed.advance(10);
    }
    assert_eq!(fixed.tcb.stats().recv_buffer_grown, 0);
}

#[test]
fn the_send_buffer_grows_to_twice_the_congestion_window_unless_set() {
    // Linux's send-buffer autotuning: a growing window must be kept full,
    // one window in flight and one being written. SO_SNDBUF fixes the size.
    for fixed in [false, true] {
        let cfg = Config {
            send_buffer: 16 * 1024,
            ..simple()
        };
        let mut t = Script::established_with(&cfg, 65535, Some(1000), 0);
        if fixed {
            t.tcb.set_send_buffer(16 * 1024);
        }
        t.tcb.set_nodelay(true);
        t.send(&bytes(16 * 1024));
        for i in 0..10 {
            t.expect_len(ACK, 1001 + i * 1000, 5001, 1000);
        }
        // Slow start: ten segments acknowledged, cwnd 20 000.
        t.inject(seg(ACK, 5001, 11001));
        let (send, _) = t.tcb.buffer_sizes();
        assert_eq!(
            send,
            if fixed { 16 * 1024 } else { 40_000 },
            "fixed {fixed}"
        );
    }
}
