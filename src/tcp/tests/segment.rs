//! Segment sizes and timing: the MSS, Nagle's algorithm and delayed ACKs
//! (RFC 1122, 4.2.3.2).

use super::*;

// ---------------------------------------------------------------------------
// MSS.

#[test]
fn our_syn_carries_the_configured_mss() {
    let cfg = Config {
        mss: 1200,
        ..simple()
    };
    let mut t = Script::active(&cfg, ISS);
    let syn = t.expect(SYN, 1000, 0);
    assert_eq!(syn.options.mss, Some(1200));
    assert_eq!(syn.options.window_scale, None);
    assert!(!syn.options.sack_permitted);
    assert_eq!(syn.options.timestamps, None);
}

#[test]
fn default_syn_offers_every_option() {
    let cfg = Config::default();
    let mut t = Script::active(&cfg, ISS);
    let syn = t.expect(SYN, 1000, 0);
    assert_eq!(syn.options.mss, Some(1460));
    assert_eq!(syn.options.window_scale, Some(cfg.window_shift()));
    assert!(syn.options.sack_permitted);
    assert!(syn.options.timestamps.is_some_and(|(_, ecr)| ecr == 0));
}

#[test]
fn segments_never_exceed_the_peer_mss_of_536() {
    let mut t = Script::established_with(&simple(), 65535, Some(536), 0);
    assert_eq!(t.tcb.send_mss(), 536);
    t.tcb.set_nodelay(true);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 536);
    t.expect_len(ACK, 1537, 5001, 536);
    t.expect_len(ACK, 2073, 5001, 536);
    t.expect_len(PSH | ACK, 2609, 5001, 392);
    t.expect_nothing();
}

#[test]
fn no_mss_option_from_the_peer_means_536() {
    let mut t = Script::established_with(&simple(), 65535, None, 0);
    assert_eq!(t.tcb.send_mss(), 536);
    t.tcb.set_nodelay(true);
    t.send(&bytes(1000));
    t.expect_len(ACK, 1001, 5001, 536);
    t.expect_len(PSH | ACK, 1537, 5001, 464);
}

#[test]
fn our_smaller_mss_bounds_our_segments_too() {
    let cfg = Config {
        mss: 1000,
        ..simple()
    };
    let mut t = Script::established_with(&cfg, 65535, Some(1460), 0);
    assert_eq!(t.tcb.send_mss(), 1000);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
}

// ---------------------------------------------------------------------------
// Nagle.

#[test]
fn nagle_holds_a_small_segment_while_one_is_unacked() {
    let mut t = Script::established(&simple());
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    t.send(&bytes(100));
    t.expect_nothing();
    t.send(&bytes(100));
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 1101));
    // What was held goes as one segment.
    t.expect_len(PSH | ACK, 1101, 5001, 200);
}

#[test]
fn nagle_lets_the_tail_of_a_reply_go_when_only_full_segments_are_unacked() {
    // Minshall's rule, as Linux applies Nagle: a small segment waits only
    // while another small one is unacknowledged. The last piece of a large
    // reply goes at once instead of waiting for the peer's delayed ACK.
    let mut t = Script::established(&simple());
    t.send(&bytes(1460 * 2 + 300));
    t.expect_len(ACK, 1001, 5001, 1460);
    t.expect_len(ACK, 2461, 5001, 1460);
    t.expect_len(PSH | ACK, 3921, 5001, 300);
    // Now a small segment is in flight: the next small one waits for it.
    t.send(&bytes(50));
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 3921));
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 4221));
    t.expect_len(PSH | ACK, 4221, 5001, 50);
}

#[test]
fn congestion_room_counts_whole_segments_as_linux_does() {
    // Initial window 10 x 1460. A small segment first, then full ones: the
    // room left for the tenth is 1360 bytes, less than a segment. Holding
    // it (silly window) waits for the peer's delayed ACK; Linux counts its
    // window in segments, so the tenth segment goes whole.
    let mut t = Script::established(&simple());
    t.tcb.set_nodelay(true);
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    t.send(&bytes(1460 * 10 + 500));
    for i in 0..10 {
        t.expect_len(ACK, 1101 + i * 1460, 5001, 1460);
    }
    t.expect_nothing();
}

#[test]
fn nodelay_sends_small_segments_at_once() {
    let mut t = Script::established(&simple());
    t.tcb.set_nodelay(true);
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1101, 5001, 100);
}

#[test]
fn nagle_does_not_hold_full_segments() {
    let mut t = Script::established(&simple());
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    t.send(&bytes(1460 + 10));
    t.expect_len(ACK, 1101, 5001, 1460);
    t.expect_nothing();
}

// ---------------------------------------------------------------------------
// Delayed ACK (RFC 1122, 4.2.3.2).

#[test]
fn one_segment_is_acked_after_the_delayed_ack_time() {
    let mut t = Script::established(&simple());
    t.no_quick_acks();
    t.inject(seg(PSH | ACK, 5001, 1001).data(&bytes(100)));
    t.expect_nothing();
    t.advance(39);
    t.expect_nothing();
    t.advance(1);
    t.expect(ACK, 1001, 5101);
    t.expect_nothing();
}

#[test]
fn two_full_segments_are_acked_at_once() {
    let mut t = Script::established(&simple());
    t.no_quick_acks();
    t.inject(seg(ACK, 5001, 1001).data(&bytes(1460)));
    t.expect_nothing();
    t.inject(seg(ACK, 6461, 1001).data(&bytes(1460)));
    t.expect(ACK, 1001, 7921);
    t.expect_nothing();
}

#[test]
fn data_we_send_carries_the_delayed_ack() {
    let mut t = Script::established(&simple());
    t.inject(seg(PSH | ACK, 5001, 1001).data(&bytes(100)));
    t.send(b"reply");
    t.expect_data(PSH | ACK, 1001, 5101, b"reply");
    t.advance(40);
    t.expect_nothing();
}

#[test]
fn tcp_info_reports_the_connection_in_linux_units() {
    let mut t = Script::established_with(&simple(), 65535, Some(1460), 30);
    t.send(&bytes(3000));
    t.expect_len(ACK, 1001, 5001, 1460);
    t.expect_len(ACK, 2461, 5001, 1460);
    t.expect_len(PSH | ACK, 3921, 5001, 80);
    t.advance(5);
    let i = t.tcb.info(t.now);
    assert_eq!(i.state, 1, "ESTABLISHED");
    assert_eq!(i.ca_state, 0);
    assert_eq!(i.snd_mss, 1460);
    assert_eq!(i.unacked, 3, "segments in flight");
    assert_eq!(i.snd_cwnd, 10);
    assert_eq!(i.snd_ssthresh, 0x7fff_ffff, "Linux's infinity");
    assert_eq!(i.rtt, 30_000, "the handshake's sample, in microseconds");
    assert_eq!(i.rto, 200_000);
    assert_eq!(i.last_data_sent, 5);
    assert_eq!(i.segs_out, 3, "data segments (pure ACKs are not counted)");
    t.advance(200);
    t.expect_len(ACK, 1001, 5001, 1460);
    let i = t.tcb.info(t.now);
    assert_eq!((i.retransmits, i.ca_state, i.total_retrans), (1, 4, 1));
}

#[test]
fn the_first_segments_are_acked_at_once_like_linux_quick_ack() {
    // A sender in slow start waits for our ACKs: the first segments of a
    // connection (half the window's worth, at most 16) are acknowledged
    // at once, then the delayed-ACK rules apply.
    let cfg = Config {
        recv_buffer: 64 * 1024,
        ..simple()
    };
    let mut t = Script::established(&cfg);
    for i in 0..16u32 {
        t.inject(seg(PSH | ACK, 5001 + i * 100, 1001).data(&bytes(100)));
        t.expect(ACK, 1001, 5101 + i * 100);
    }
    t.inject(seg(PSH | ACK, 6601, 1001).data(&bytes(100)));
    t.expect_nothing();
    t.advance(40);
    t.expect(ACK, 1001, 6701);
    // Silent for longer than an RTO: quick ACKs again.
    t.advance(1000);
    t.inject(seg(PSH | ACK, 6701, 1001).data(&bytes(100)));
    t.expect(ACK, 1001, 6801);
}
