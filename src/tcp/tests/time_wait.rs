//! The compact TIME-WAIT ([`TimeWait`]) answers as the control block does:
//! both are fed the same random segments at the same times, and every
//! packet they send is compared byte for byte.

use super::*;
use crate::link::faults::SplitMix64 as Rng;
use crate::tcp::{TimeWait, TimeWaitReply};

/// The peer's timestamp clock in the scripted exchanges.
const PEER_TS: u32 = 100;

/// A connection in TIME-WAIT after data both ways: we close first (or
/// both at once), with every option negotiated when `options` is set.
fn into_time_wait(options: bool, simultaneous: bool) -> Script {
    let cfg = Config {
        msl: ms(1000),
        window_scaling: options,
        timestamps: options,
        sack: options,
        ..simple()
    };
    let mut t = Script::active(&cfg, ISS);
    let syn = t.expect(SYN, ISS, 0);
    let ts = |t: &Script, val: u32| -> TcpOptions {
        TcpOptions {
            timestamps: options.then(|| (val, t.tcb.ts_now(t.now))),
            ..TcpOptions::default()
        }
    };
    t.advance(10);
    let synack = TcpOptions {
        mss: Some(1460),
        window_scale: options.then_some(7),
        sack_permitted: options,
        timestamps: options.then(|| (PEER_TS, syn.options.timestamps.unwrap().0)),
        ..TcpOptions::default()
    };
    t.inject(seg(SYN | ACK, PEER_ISS, ISS + 1).win(512).opts(synack));
    t.expect(ACK, ISS + 1, PEER_ISS + 1);
    t.advance(5);
    let o = ts(&t, PEER_TS + 5);
    t.inject(
        seg(PSH | ACK, PEER_ISS + 1, ISS + 1)
            .win(512)
            .data(&bytes(100))
            .opts(o),
    );
    t.expect(ACK, ISS + 1, PEER_ISS + 101);
    assert_eq!(t.read_all().len(), 100);
    t.send(&bytes(50));
    t.expect_len(PSH | ACK, ISS + 1, PEER_ISS + 101, 50);
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, ISS + 51, PEER_ISS + 101);
    t.advance(10);
    if simultaneous {
        let o = ts(&t, PEER_TS + 15);
        t.inject(seg(FIN | ACK, PEER_ISS + 101, ISS + 51).win(512).opts(o));
        assert_eq!(t.state(), State::Closing);
        t.expect(ACK, ISS + 52, PEER_ISS + 102);
        let o = ts(&t, PEER_TS + 16);
        t.inject(seg(ACK, PEER_ISS + 102, ISS + 52).win(512).opts(o));
    } else {
        let o = ts(&t, PEER_TS + 15);
        t.inject(seg(FIN | ACK, PEER_ISS + 101, ISS + 52).win(512).opts(o));
        t.expect(ACK, ISS + 52, PEER_ISS + 102);
    }
    assert_eq!(t.state(), State::TimeWait);
    t.expect_nothing();
    t
}

/// A segment near the edges that matter: RCV.NXT, the peer's FIN, its
/// ISN, our SND.NXT, the window, old and new timestamps.
fn random_segment(r: &mut Rng, ts_now: u32) -> In {
    let flags = [
        ACK,
        FIN | ACK,
        FIN,
        RST,
        RST | ACK,
        SYN,
        SYN | ACK,
        PSH | ACK,
        TcpFlags(0),
        FIN | PSH | ACK,
    ][r.below(10) as usize];
    let rcv_nxt = PEER_ISS + 102;
    let seq = match r.below(8) {
        0 => rcv_nxt,
        1 => rcv_nxt - 1,
        2 => PEER_ISS,
        3 => rcv_nxt.wrapping_add(r.below(70_000) as u32),
        4 => rcv_nxt.wrapping_sub(r.below(70_000) as u32),
        5 => rcv_nxt.wrapping_add(r.below(3000) as u32),
        _ => rcv_nxt.wrapping_add(r.next_u64() as u32),
    };
    let snd_nxt = ISS + 52;
    let ack = match r.below(6) {
        0 | 1 => snd_nxt,
        2 => snd_nxt - 1 - r.below(100) as u32,
        3 => snd_nxt.wrapping_sub(60_000 + r.below(200_000) as u32),
        4 => snd_nxt + 1 + r.below(10) as u32,
        _ => r.next_u64() as u32,
    };
    let mut s = seg(flags, seq, ack).win(r.below(65536) as u16);
    if r.below(3) == 0 {
        s = s.data(&bytes(1 + r.below(40) as usize));
    }
    let val = match r.below(6) {
        0 => None,
        1 => Some(PEER_TS.wrapping_sub(r.below(1 << 31) as u32)),
        2 => Some(PEER_TS + 15 - r.below(3) as u32),
        _ => Some(PEER_TS + 15 + r.below(5000) as u32),
    };
    if let Some(v) = val {
        s.options.timestamps = Some((v, ts_now));
    }
    s
}

/// Feeds both the same segments and compares what they send and when
/// they end, over many random runs.
fn compare(options: bool, simultaneous: bool, seed: u64) {
    let mut r = Rng(seed);
    let mut t = into_time_wait(options, simultaneous);
    let mut tw: TimeWait = t.tcb.time_wait().expect("a quiet TIME-WAIT compacts");
    let mut buf = vec![0; 2000];
    for step in 0..400 {
        let span = if r.below(4) == 0 { 600_000 } else { 20_000 };
        t.advance_us(r.below(span));
        if t.state() == State::Closed {
            assert!(
                t.now >= tw.deadline(),
                "seed {seed} step {step}: ended early"
            );
            return;
        }
        assert!(t.now < tw.deadline(), "seed {seed} step {step}: outlived");
        let s = random_segment(&mut r, t.tcb.ts_now(t.now));
        t.inject(s.clone());
        let reply = tw.on_segment(t.now, &s.segment());
        let full = t.tcb.poll_transmit(t.now, &mut t.buf);
        let what = format!("seed {seed} step {step}: {s:?} → {reply:?}");
        match reply {
            TimeWaitReply::Closed => {
                assert!(full.is_none(), "{what}");
                assert_eq!(t.state(), State::Closed, "{what}");
                return;
            }
            TimeWaitReply::Ack => {
                let n = tw.emit_ack(t.now, &mut buf);
                let full = full.unwrap_or_else(|| panic!("{what}: the block sent nothing"));
                assert_eq!(&t.buf[..full.len], &buf[..n], "{what}");
            }
            TimeWaitReply::Nothing => assert!(full.is_none(), "{what}: the block sent"),
        }
        assert!(t.tcb.poll_transmit(t.now, &mut t.buf).is_none(), "{what}");
        assert_eq!(t.state(), State::TimeWait, "{what}");
        assert_eq!(t.tcb.deadline(), Some(tw.deadline()), "{what}");
    }
}

#[test]
fn compact_time_wait_answers_as_the_control_block_without_options() {
    for seed in 1..=40 {
        compare(false, false, seed);
    }
}

#[test]
fn compact_time_wait_answers_as_the_control_block_with_every_option() {
    for seed in 1..=40 {
        compare(true, false, seed);
        compare(true, true, seed + 1000);
    }
}

#[test]
fn only_a_quiet_time_wait_compacts() {
    let mut t = into_time_wait(true, false);
    // A retransmitted FIN owes an ACK: not yet.
    t.inject(seg(FIN | ACK, PEER_ISS + 101, ISS + 52));
    assert!(t.tcb.time_wait().is_none());
    t.expect(ACK, ISS + 52, PEER_ISS + 102);
    assert!(t.tcb.time_wait().is_some());
    // Not in TIME-WAIT at all.
    let t = Script::established(&simple());
    assert!(t.tcb.time_wait().is_none());
}

#[test]
fn a_compact_time_wait_is_a_small_fraction_of_a_control_block() {
    let (tw, tcb) = (std::mem::size_of::<TimeWait>(), std::mem::size_of::<Tcb>());
    eprintln!("TimeWait {tw} B, Tcb {tcb} B");
    assert!(tw <= 160 && tw * 10 <= tcb, "TimeWait {tw} B, Tcb {tcb} B");
}

#[test]
fn a_new_syn_reopens_by_sequence_or_by_a_newer_timestamp() {
    let rcv_nxt = PEER_ISS + 102;
    let syn = |seq: u32, ts: Option<u32>| {
        let mut s = seg(SYN, seq, 0);
        s.options.timestamps = ts.map(|v| (v, 0));
        s
    };
    // TS.Recent is PEER_TS + 15, from the peer's FIN.
    let cases = [
        (syn(rcv_nxt + 1, None), true, "beyond RCV.NXT"),
        (
            syn(rcv_nxt - 9, Some(PEER_TS + 99)),
            true,
            "lower, newer clock",
        ),
        (
            syn(rcv_nxt - 9, Some(PEER_TS + 15)),
            false,
            "lower, same clock",
        ),
        (
            syn(rcv_nxt + 1, Some(PEER_TS + 2)),
            false,
            "beyond, but old (PAWS)",
        ),
        (seg(SYN | ACK, rcv_nxt + 1, 0), false, "SYN|ACK"),
        (seg(SYN | RST, rcv_nxt + 1, 0), false, "SYN|RST"),
        (syn(rcv_nxt, None), false, "at RCV.NXT"),
    ];
    let t = into_time_wait(true, false);
    let tw = t.tcb.time_wait().unwrap();
    for (s, want, what) in &cases {
        assert_eq!(t.tcb.syn_reopens(&s.segment()), *want, "{what}");
        assert_eq!(tw.syn_reopens(&s.segment()), *want, "{what}, compact");
    }
    // Without timestamps only the sequence number counts.
    let t = into_time_wait(false, false);
    assert!(t.tcb.syn_reopens(&syn(rcv_nxt + 1, None).segment()));
    assert!(!t
        .tcb
        .syn_reopens(&syn(rcv_nxt - 9, Some(PEER_TS + 99)).segment()));
    // Only in TIME-WAIT.
    let t = Script::established(&simple());
    assert!(!t.tcb.syn_reopens(&syn(PEER_ISS + 9999, None).segment()));
}
