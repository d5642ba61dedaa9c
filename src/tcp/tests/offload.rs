//! Segmentation offload: with `Config::gso_max`, new data leaves in packets
//! of several whole segments for the link to cut, while windows, the sent
//! record and loss recovery still count the segments the peer sees.

use super::*;
use crate::wire::SackBlock;

/// SACK on, Reno, a link cutting packets of up to `gso_max` bytes, and a
/// 100 ms round trip with the peer announcing an MSS of 1000.
fn offload(gso_max: usize) -> Script {
    let cfg = Config {
        sack: true,
        gso_max,
        ..simple()
    };
    Script::established_sack_with(&cfg, 1000, 100)
}

fn sack(start: u32, end: u32) -> TcpOptions {
    let mut o = TcpOptions::default();
    o.push_sack(SackBlock { start, end });
    o
}

#[test]
fn new_data_leaves_in_packets_of_whole_segments() {
    let mut t = offload(65535);
    t.send(&bytes(30_000));
    // The initial window (ten segments) as one packet of ten.
    let out = t.expect_len(ACK, 1001, 5001, 10_000);
    assert_eq!(out.gso, Some(1000));
    assert_eq!(out.payload, bytes(10_000));
    t.expect_nothing();
    assert_eq!(t.tcb.stats().segments_sent, 10);
    // Two segments acknowledged: slow start opens the window by two,
    // and four go (two freed, two more), as one packet.
    t.advance(100);
    t.inject(seg(ACK, 5001, 3001));
    let out = t.expect_len(ACK, 11_001, 5001, 4000);
    assert_eq!(out.gso, Some(1000));
    t.expect_nothing();
    // A window of one segment's room sends a plain packet.
    t.inject(seg(ACK, 5001, 14_001).win(2000));
    let out = t.expect_len(ACK, 15_001, 5001, 1000);
    assert_eq!(out.gso, None);
}

#[test]
fn the_link_limit_bounds_each_packet() {
    // Room for five segments of 1000 with the largest headers.
    let mut t = offload(5000 + 80);
    t.send(&bytes(10_000));
    for i in 0..2 {
        let flags = if i == 1 { PSH | ACK } else { ACK };
        let out = t.expect_len(flags, 1001 + i * 5000, 5001, 5000);
        assert_eq!(out.gso, Some(1000));
    }
    t.expect_nothing();
}

#[test]
fn psh_and_fin_ride_on_the_last_segment_and_a_short_tail_counts_as_small() {
    let mut t = offload(65535);
    t.send(&bytes(2500));
    t.tcb.close(t.now);
    let out = t.expect_len(FIN | PSH | ACK, 1001, 5001, 2500);
    assert_eq!(out.gso, Some(1000));
    assert_eq!(t.tcb.stats().segments_sent, 3);
    // The short last segment is in flight: Nagle holds a new small write
    // until it is acknowledged (after the close nothing more may be sent,
    // so look at the mark itself).
    assert_eq!(t.tcb.snd_sml, 3501);
    t.advance(100);
    t.inject(seg(ACK, 5001, 3502));
    assert_eq!(t.state(), State::FinWait2);
}

#[test]
fn a_segment_lost_inside_a_packet_is_resent_alone() {
    let mut t = offload(65535);
    t.send(&bytes(10_000));
    assert_eq!(t.expect_len(PSH | ACK, 1001, 5001, 10_000).gso, Some(1000));
    // The peer got all but the second segment (a wire loses segments, not
    // the packet they were sent in): it SACKs the rest as it comes.
    t.advance(100);
    t.inject(seg(ACK, 5001, 2001));
    for end in [4001, 5001, 6001] {
        t.inject(seg(ACK, 5001, 2001).opts(sack(3001, end)));
    }
    // RACK marks it lost after a quarter round trip of reordering window.
    t.advance(25);
    let out = t.expect_len(ACK, 2001, 5001, 1000);
    assert_eq!(out.gso, None);
    assert_eq!(out.payload, bytes(10_000)[1000..2000]);
    assert_eq!(t.tcb.stats().retransmitted_segments, 1);
    assert_eq!(t.tcb.stats().timeouts, 0);
    // The resend and the rest arrive: everything is acknowledged.
    t.advance(100);
    t.inject(seg(ACK, 5001, 11_001));
    assert_eq!(t.tcb.send_queue(), 0);
}

#[test]
fn sack_blocks_in_our_header_shrink_each_segment() {
    let mut t = offload(65535);
    // Data from the peer arrives out of order: our segments carry a SACK
    // block (12 bytes with its padding), so each carries 12 bytes less.
    t.inject(seg(ACK, 6001, 1001).data(&bytes(100)));
    let ack = t.expect(ACK, 1001, 5001);
    assert_eq!(ack.options.sack().len(), 1);
    t.send(&bytes(20_000));
    // The window's ten segments' worth, cut at whole smaller segments: no
    // runt of 120 bytes at the end of the packet.
    let out = t.expect_len(ACK, 1001, 5001, 9880);
    assert_eq!(out.options.sack().len(), 1);
    assert_eq!(out.gso, Some(988));
    // At the end of what is queued a short last segment is fine.
    let mut t = offload(65535);
    t.inject(seg(ACK, 6001, 1001).data(&bytes(100)));
    t.expect(ACK, 1001, 5001);
    t.send(&bytes(5000));
    let out = t.expect_len(PSH | ACK, 1001, 5001, 5000);
    assert_eq!(out.gso, Some(988));
}

/// The same exchange twice, with payloads copied into the packet and with
/// them left in the send ring (`Config::zero_copy`): the peer must see the
/// same segments byte for byte, through loss, a timeout's resend, and a
/// ring that grows and wraps while packets point into it.
#[test]
fn payloads_left_in_the_send_ring_make_the_same_segments() {
    let run = |zero_copy: bool| {
        let cfg = Config {
            sack: true,
            gso_max: 65535,
            zero_copy,
            ..simple()
        };
        let mut t = Script::established_sack_with(&cfg, 1000, 100);
        let mut outs = Vec::new();
        let drain = |t: &mut Script, outs: &mut Vec<Out>| {
            while let Some(o) = t.poll() {
                outs.push(o);
            }
        };
        t.send(&bytes(30_000));
        drain(&mut t, &mut outs);
        // Two segments arrive, the rest of the first packet is lost: the
        // timeout resends from 3001.
        t.advance(100);
        t.inject(seg(ACK, 5001, 3001));
        drain(&mut t, &mut outs);
        t.advance(1500);
        drain(&mut t, &mut outs);
        // Then everything is acknowledged as it goes, while the
        // application keeps writing more than the ring held at first.
        let stream: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let mut written = 0;
        for _ in 0..60 {
            written += t.tcb.send(&stream[written..]).unwrap_or(0);
            drain(&mut t, &mut outs);
            t.advance(100);
            let acked = t.tcb.snd_max;
            t.inject(seg(ACK, 5001, acked));
        }
        assert!(written > 200_000, "only {written} bytes went");
        (outs, t.tcb.stats().retransmitted_segments)
    };
    let (copied, resent) = run(false);
    let (in_place, resent_in_place) = run(true);
    assert!(resent > 0, "the script must resend something");
    assert_eq!(resent, resent_in_place);
    assert_eq!(copied.len(), in_place.len());
    let key = |o: &Out| {
        (
            o.flags,
            o.seq,
            o.ack,
            o.window,
            o.options,
            o.payload.clone(),
            o.gso,
        )
    };
    for (a, b) in copied.iter().zip(&in_place) {
        assert_eq!(key(a), key(b));
        assert!(!a.in_place, "copied unless asked");
        assert_eq!(b.in_place, !b.payload.is_empty(), "every payload in place");
    }
    assert!(in_place.iter().filter(|o| o.in_place).count() > 20);
}
