//! Sequence numbers: accounting and acceptability (RFC 9293, 3.10.7.4),
//! wrap-around, old and out-of-window segments, and the acceptability rules
//! of a zero receive window.

use super::*;

#[test]
fn data_bytes_advance_seq_and_ack_exactly() {
    let mut t = Script::established(&simple());
    t.send(&bytes(300));
    t.expect_len(PSH | ACK, 1001, 5001, 300);
    t.inject(seg(ACK, 5001, 1301));
    assert_eq!(t.tcb.send_queue(), 0);
    t.inject(seg(PSH | ACK, 5001, 1301).data(&bytes(200)));
    t.advance(40);
    t.expect(ACK, 1301, 5201);
    t.inject(seg(PSH | ACK, 5201, 1301).data(&bytes(100)));
    t.advance(40);
    t.expect(ACK, 1301, 5301);
    t.send(&bytes(50));
    t.expect_len(PSH | ACK, 1301, 5301, 50);
    assert_eq!(t.read_all().len(), 300);
}

#[test]
fn sequence_numbers_wrap_around_zero() {
    let mut t = Script::active(&simple(), 0xffff_fff0);
    t.expect(SYN, 0xffff_fff0, 0);
    t.inject(seg(SYN | ACK, 0xffff_ff00, 0xffff_fff1).mss(1460));
    t.expect(ACK, 0xffff_fff1, 0xffff_ff01);
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 0xffff_fff1, 0xffff_ff01, 100);
    t.inject(seg(ACK, 0xffff_ff01, 0x55));
    assert_eq!(t.tcb.send_queue(), 0);
    let data = bytes(0x200);
    t.inject(seg(PSH | ACK, 0xffff_ff01, 0x55).data(&data));
    t.advance(40);
    t.expect(ACK, 0x55, 0x101);
    assert_eq!(t.read_all(), data);
}

#[test]
fn segment_beyond_the_window_is_acked_and_dropped() {
    let mut t = Script::established(&simple());
    // The window is 10 000: 5001 + 10 000 is the first byte outside it.
    t.inject(seg(PSH | ACK, 5001 + 10_000, 1001).data(&bytes(10)));
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
    t.inject(seg(PSH | ACK, 5001 + 50_000, 1001).data(&bytes(10)));
    t.expect(ACK, 1001, 5001);
    assert_eq!(t.read_all(), b"");
    assert_eq!(t.tcb.rcv_nxt_value(), 5001);
}

#[test]
fn old_duplicate_segment_is_acked_and_dropped() {
    let mut t = Script::established(&simple());
    let data = bytes(100);
    t.inject(seg(PSH | ACK, 5001, 1001).data(&data));
    t.advance(40);
    t.expect(ACK, 1001, 5101);
    // The same segment again: entirely old.
    t.inject(seg(PSH | ACK, 5001, 1001).data(&data));
    t.expect(ACK, 1001, 5101);
    t.expect_nothing();
    assert_eq!(t.read_all(), data);
}

#[test]
fn segment_overlapping_the_left_edge_contributes_only_new_bytes() {
    let mut t = Script::established(&simple());
    let data = bytes(250);
    t.inject(seg(PSH | ACK, 5001, 1001).data(&data[..100]));
    t.advance(40);
    t.expect(ACK, 1001, 5101);
    t.inject(seg(PSH | ACK, 5051, 1001).data(&data[50..]));
    assert_eq!(t.tcb.rcv_nxt_value(), 5251);
    t.advance(40);
    t.expect(ACK, 1001, 5251);
    assert_eq!(t.read_all(), data);
}

#[test]
fn far_too_old_ack_is_challenged_and_dropped() {
    // RFC 5961, 5.2: SEG.ACK below SND.UNA - MAX.SND.WND (at least 64 KiB).
    let mut t = Script::established(&simple());
    t.inject(seg(PSH | ACK, 5001, 1001u32.wrapping_sub(70_000)).data(b"forged"));
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
    assert_eq!(t.tcb.recv_queue(), 0);
}

#[test]
fn data_after_the_peer_fin_is_acked_and_dropped() {
    let mut t = Script::established(&simple());
    t.peer_closes();
    t.inject(seg(PSH | ACK, 5002, 1001).data(b"after FIN"));
    t.expect(ACK, 1001, 5002);
    assert_eq!(t.tcb.recv_queue(), 0);
    assert_eq!(t.tcb.recv(&mut [0u8; 8], false), Ok(0));
}

#[test]
fn ack_of_unsent_data_is_acked_and_dropped() {
    let mut t = Script::established(&simple());
    t.inject(seg(PSH | ACK, 5001, 1501).data(b"bogus"));
    t.expect(ACK, 1001, 5001);
    assert_eq!(t.read_all(), b"");
}

// ---------------------------------------------------------------------------
// Acceptability with a zero receive window.

/// Fills a 1000-byte receive buffer: the last ACK advertises window 0.
fn zero_window() -> Script {
    let cfg = Config {
        recv_buffer: 1000,
        ..simple()
    };
    let mut t = Script::established(&cfg);
    t.inject(seg(ACK, 5001, 1001).data(&bytes(500)));
    t.inject(seg(PSH | ACK, 5501, 1001).data(&bytes(500)));
    let out = t.expect(ACK, 1001, 6001);
    assert_eq!(out.window, 0);
    t
}

#[test]
fn zero_window_accepts_an_empty_segment_only_at_rcv_nxt() {
    let mut t = zero_window();
    t.inject(seg(ACK, 6001, 1001));
    t.expect_nothing();
    t.inject(seg(ACK, 6002, 1001));
    let out = t.expect(ACK, 1001, 6001);
    assert_eq!(out.window, 0);
    // Out-of-window ACKs are answered at most every 500 ms.
    t.inject(seg(ACK, 6000, 1001));
    t.expect_nothing();
    t.advance(500);
    t.inject(seg(ACK, 6000, 1001));
    t.expect(ACK, 1001, 6001);
}

#[test]
fn zero_window_data_is_not_acceptable_and_is_acked() {
    let mut t = zero_window();
    // A zero-window probe: one byte at RCV.NXT.
    t.inject(seg(ACK, 6001, 1001).data(b"z"));
    let out = t.expect(ACK, 1001, 6001);
    assert_eq!(out.window, 0);
    assert_eq!(t.tcb.recv_queue(), 1000);
}

#[test]
fn zero_window_still_processes_the_ack_field() {
    let mut t = zero_window();
    t.send(&bytes(10));
    t.expect_len(PSH | ACK, 1001, 6001, 10);
    t.inject(seg(ACK, 6001, 1011).data(b"z"));
    assert_eq!(t.tcb.send_queue(), 0, "the ACK of our data was taken");
    t.expect(ACK, 1011, 6001);
}

#[test]
fn window_update_after_the_application_reads() {
    let mut t = zero_window();
    assert_eq!(t.read_all().len(), 1000);
    let out = t.expect(ACK, 1001, 6001);
    assert_eq!(out.window, 1000);
    t.inject(seg(PSH | ACK, 6001, 1001).data(&bytes(100)));
    assert_eq!(t.tcb.recv_queue(), 100);
}

/// An active open with timestamps on both sides (the peer's clock at 1000),
/// and the options a peer segment carries: TSval `val`, echoing ours.
fn timestamped_open() -> (Script, impl Fn(u32) -> TcpOptions) {
    let cfg = Config {
        timestamps: true,
        ..simple()
    };
    let mut t = Script::active(&cfg, ISS);
    let syn = t.expect(SYN, 1000, 0);
    let (tsval, _) = syn.options.timestamps.unwrap();
    let ts = move |val: u32| TcpOptions {
        timestamps: Some((val, tsval)),
        ..TcpOptions::default()
    };
    t.inject(seg(SYN | ACK, 5000, 1001).opts(TcpOptions {
        mss: Some(1460),
        ..ts(1000)
    }));
    t.expect(ACK, 1001, 5001);
    (t, ts)
}

#[test]
fn paws_drops_a_segment_with_an_older_timestamp() {
    let (mut t, ts) = timestamped_open();
    t.inject(seg(ACK, 5001, 1001).data(b"new").opts(ts(1010)));
    t.advance(40);
    t.expect(ACK, 1001, 5004);
    // Right sequence number, but a timestamp from before: an old
    // duplicate (the sequence space may have wrapped). ACKed, not taken.
    t.inject(seg(ACK, 5004, 1001).data(b"old").opts(ts(1005)));
    t.expect(ACK, 1001, 5004);
    assert_eq!(t.read_all(), b"new");
    assert_eq!(t.tcb.stats().paws_rejected, 1);
    // The same timestamp as the newest is fine.
    t.inject(seg(ACK, 5004, 1001).data(b"ok").opts(ts(1010)));
    t.advance(40);
    t.expect(ACK, 1001, 5006);
    assert_eq!(t.read_all(), b"ok");
}

#[test]
fn with_delayed_acks_the_echoed_timestamp_is_the_oldest_unacked_segments() {
    // RFC 7323, 4.3: TS.Recent moves only for a segment at or before
    // Last.ACK.sent, so an ACK that covers two segments echoes the first
    // one's clock and the peer's RTT sample includes the ACK's delay.
    let (mut t, ts) = timestamped_open();
    t.no_quick_acks();
    t.inject(seg(ACK, 5001, 1001).data(&bytes(100)).opts(ts(1100)));
    t.expect_nothing();
    t.inject(seg(ACK, 5101, 1001).data(&bytes(100)).opts(ts(1200)));
    let ack = t.expect(ACK, 1001, 5201);
    assert_eq!(ack.options.timestamps.map(|(_, ecr)| ecr), Some(1100));
}
