//! Retransmission: SYN and SYN|ACK retries, the RTO with exponential backoff
//! and its limits (RFC 6298), Karn's algorithm, timestamp RTT samples, fast
//! retransmit and limited transmit (RFC 3042).

use super::*;
use crate::tcp::{Algorithm, LossDetection};
use crate::wire::SackBlock;

#[test]
fn syn_retransmitted_after_1s_then_2s_then_4s() {
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, 1000, 0);
    for (wait, at) in [(1000, 1000), (2000, 3000), (4000, 7000), (8000, 15_000)] {
        t.advance(wait - 1);
        t.expect_nothing();
        t.advance(1);
        assert_eq!(t.now, Instant::from_millis(at));
        t.expect(SYN, 1000, 0);
        t.expect_nothing();
    }
    assert_eq!(t.state(), State::SynSent);
}

#[test]
fn syn_retries_exhausted_is_etimedout() {
    let cfg = Config {
        syn_retries: 2,
        ..simple()
    };
    let mut t = Script::active(&cfg, ISS);
    t.expect(SYN, 1000, 0);
    t.advance(1000);
    t.expect(SYN, 1000, 0);
    t.advance(2000);
    t.expect(SYN, 1000, 0);
    t.advance(3999);
    assert_eq!(t.state(), State::SynSent);
    t.advance(1);
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.tcb.take_error(), Some(Error::TimedOut));
    t.expect_nothing();
}

#[test]
fn syn_ack_retransmitted_and_passive_open_given_up_quietly() {
    let cfg = Config {
        syn_retries: 1,
        ..simple()
    };
    let mut t = Script::passive(&cfg, 7000, seg(SYN, 1000, 0));
    t.expect(SYN | ACK, 7000, 1001);
    t.advance(999);
    t.expect_nothing();
    t.advance(1);
    t.expect(SYN | ACK, 7000, 1001);
    t.advance(2000);
    assert_eq!(t.state(), State::Closed);
    t.expect_nothing();
}

#[test]
fn retransmitted_syn_in_syn_received_gets_syn_ack_again() {
    let mut t = Script::passive(&simple(), 7000, seg(SYN, 1000, 0));
    t.expect(SYN | ACK, 7000, 1001);
    t.inject(seg(SYN, 1000, 0));
    t.expect(SYN | ACK, 7000, 1001);
    assert_eq!(t.state(), State::SynReceived);
}

#[test]
fn data_retransmitted_on_rto_with_exponential_backoff() {
    // RTT 100 ms: SRTT 100, RTTVAR 50, RTO 300 ms.
    let mut t = Script::established_with(&simple(), 65535, Some(1460), 100);
    assert_eq!(t.tcb.rto(), ms(300));
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    for wait in [300, 600, 1200] {
        t.advance(wait - 1);
        t.expect_nothing();
        t.advance(1);
        t.expect_len(PSH | ACK, 1001, 5001, 100);
        t.expect_nothing();
    }
    t.inject(seg(ACK, 5001, 1101));
    assert_eq!(t.tcb.send_queue(), 0);
    assert_eq!(t.tcb.deadline(), None);
}

#[test]
fn data_retries_exhausted_is_etimedout() {
    let cfg = Config {
        retries: 2,
        ..simple()
    };
    let mut t = Script::established(&cfg);
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    t.advance(200);
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    t.advance(400);
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    t.advance(799);
    assert_eq!(t.state(), State::Established);
    t.advance(1);
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.tcb.take_error(), Some(Error::TimedOut));
}

#[test]
fn rto_from_a_100ms_rtt_sample_is_srtt_plus_4_rttvar() {
    let mut t = Script::established_with(&simple(), 65535, Some(1460), 100);
    assert_eq!(t.tcb.srtt(), Some(ms(100)));
    // RTO = SRTT + 4·RTTVAR = 100 + 4·50.
    assert_eq!(t.tcb.rto(), ms(300));
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    assert_eq!(t.tcb.deadline(), Some(Instant::from_millis(100 + 300)));
    // A second sample of 100 ms: RTTVAR = 3/4·50 + 1/4·0 = 37.5.
    t.advance(100);
    t.inject(seg(ACK, 5001, 1101));
    assert_eq!(t.tcb.srtt(), Some(ms(100)));
    assert_eq!(t.tcb.rto(), ms(250));
}

#[test]
fn rto_is_never_below_min_rto() {
    // RTT 10 ms: 10 + 4·5 = 30 ms, raised to min_rto = 200 ms.
    let mut t = Script::established_with(&simple(), 65535, Some(1460), 10);
    assert_eq!(t.tcb.srtt(), Some(ms(10)));
    assert_eq!(t.tcb.rto(), ms(200));
    t.send(b"x");
    t.expect_len(PSH | ACK, 1001, 5001, 1);
    t.advance(199);
    t.expect_nothing();
    t.advance(1);
    t.expect_len(PSH | ACK, 1001, 5001, 1);
}

#[test]
fn karn_no_rtt_sample_from_a_retransmitted_segment() {
    let mut t = Script::established_with(&simple(), 65535, Some(1460), 100);
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    t.advance(300);
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    assert_eq!(t.tcb.rto(), ms(600));
    // The ACK is ambiguous: the original (310 ms) or the retransmission (10 ms)?
    t.advance(10);
    t.inject(seg(ACK, 5001, 1101));
    assert_eq!(t.tcb.srtt(), Some(ms(100)), "no sample taken");
    assert_eq!(t.tcb.rto(), ms(600), "backed-off RTO kept until a sample");
    // New data, sent once: its ACK is a sample (50 ms).
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1101, 5001, 100);
    t.advance(50);
    t.inject(seg(ACK, 5001, 1201));
    // SRTT = 7/8·100 + 1/8·50; RTTVAR = 3/4·50 + 1/4·50; RTO = SRTT + 4·RTTVAR.
    assert_eq!(t.tcb.srtt(), Some(Duration::from_micros(93_750)));
    assert_eq!(t.tcb.rto(), Duration::from_micros(293_750));
}

#[test]
fn timestamps_give_rtt_samples_and_echo_the_peer_clock() {
    let cfg = Config {
        timestamps: true,
        ..simple()
    };
    let mut t = Script::active(&cfg, ISS);
    let syn = t.expect(SYN, 1000, 0);
    let (tsval, tsecr) = syn.options.timestamps.expect("SYN offers timestamps");
    assert_eq!(tsecr, 0);
    t.advance(50);
    let opts = TcpOptions {
        mss: Some(1460),
        timestamps: Some((777, tsval)),
        ..TcpOptions::default()
    };
    t.inject(seg(SYN | ACK, 5000, 1001).opts(opts));
    assert_eq!(t.tcb.srtt(), Some(ms(50)));
    let ack = t.expect(ACK, 1001, 5001);
    assert_eq!(ack.options.timestamps, Some((tsval.wrapping_add(50), 777)));
    // Options take 12 of the 1460 bytes of each segment.
    assert_eq!(t.tcb.send_mss(), 1448);
    t.tcb.set_nodelay(true);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1448);
    t.expect_len(PSH | ACK, 2449, 5001, 552);
}

// ---------------------------------------------------------------------------
// Duplicate ACKs: fast retransmit and limited transmit.

#[test]
fn fast_retransmit_after_three_duplicate_acks() {
    let mut t = Script::established_with(&simple(), 65535, Some(1000), 0);
    t.tcb.set_nodelay(true);
    t.send(&bytes(5000));
    for i in 0..5 {
        let flags = if i == 4 { PSH | ACK } else { ACK };
        t.expect_len(flags, 1001 + i * 1000, 5001, 1000);
    }
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 2001));
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 2001));
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 2001));
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 2001));
    // The third duplicate: the first unacknowledged segment goes again, well
    // before any RTO.
    t.expect_len(ACK, 2001, 5001, 1000);
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 6001));
    assert_eq!(t.tcb.send_queue(), 0);
    assert_eq!(t.tcb.deadline(), None);
}

#[test]
fn window_updates_are_not_duplicate_acks() {
    let mut t = Script::established_with(&simple(), 65535, Some(1000), 0);
    t.tcb.set_nodelay(true);
    t.send(&bytes(3000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_len(ACK, 2001, 5001, 1000);
    t.expect_len(PSH | ACK, 3001, 5001, 1000);
    for w in [60000, 50000, 40000, 30000] {
        t.inject(seg(ACK, 5001, 1001).win(w));
        t.expect_nothing();
    }
}

#[test]
fn limited_transmit_sends_new_data_on_the_first_two_duplicates() {
    let mut t = Script::established_with(&simple(), 65535, Some(1000), 0);
    // The initial congestion window (10 segments) limits the sender.
    t.send(&bytes(20_000));
    for i in 0..10 {
        t.expect_len(ACK, 1001 + i * 1000, 5001, 1000);
    }
    t.expect_nothing();
    // The first is lost: each of the first two duplicate ACKs lets one new
    // segment out beyond the congestion window (RFC 3042).
    t.inject(seg(ACK, 5001, 1001).win(65535));
    t.expect_len(ACK, 11001, 5001, 1000);
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 1001).win(65535));
    t.expect_len(ACK, 12001, 5001, 1000);
    t.expect_nothing();
    // The third duplicate: fast retransmit of the first segment.
    t.inject(seg(ACK, 5001, 1001).win(65535));
    t.expect_len(ACK, 1001, 5001, 1000);
}

#[test]
fn tail_loss_probe_resends_the_last_segment_after_two_round_trips() {
    let cfg = Config {
        tail_loss_probe: true,
        ..simple()
    };
    let mut t = Script::established_with(&cfg, 65535, Some(1000), 20);
    assert_eq!(t.tcb.rto(), ms(200));
    t.send(&bytes(3000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_len(ACK, 2001, 5001, 1000);
    t.expect_len(PSH | ACK, 3001, 5001, 1000);
    // Nothing comes back: after 2·SRTT = 40 ms the last segment goes again.
    t.advance(39);
    t.expect_nothing();
    t.advance(1);
    t.expect_len(PSH | ACK, 3001, 5001, 1000);
    t.expect_nothing();
    // Only one probe per flight; then the RTO (200 ms after the first send).
    t.advance(159);
    t.expect_nothing();
    t.advance(1);
    t.expect_len(ACK, 1001, 5001, 1000);
    assert_eq!(t.tcb.stats().tail_loss_probes, 1);
}

#[test]
fn a_tail_loss_probe_that_repairs_the_tail_avoids_the_timeout() {
    let cfg = Config {
        tail_loss_probe: true,
        ..simple()
    };
    let mut t = Script::established_with(&cfg, 65535, Some(1000), 20);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
    // The first arrives and is acknowledged; the second is lost.
    t.advance(20);
    t.inject(seg(ACK, 5001, 2001));
    t.expect_nothing();
    // One segment out: the probe waits for the peer's delayed ACK too
    // (SRTT + 40 ms + 2 ms) rather than 2·SRTT.
    t.advance(61);
    t.expect_nothing();
    t.advance(1);
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
    t.inject(seg(ACK, 5001, 3001));
    assert_eq!(t.tcb.send_queue(), 0);
    t.advance(1000);
    t.expect_nothing();
    assert_eq!(t.tcb.stats().timeouts, 0);
}

#[test]
fn early_retransmit_needs_fewer_duplicates_when_few_segments_are_out() {
    let mut t = Script::established_with(&simple(), 65535, Some(1000), 20);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
    // Two segments out and nothing new to send: one duplicate ACK is
    // all the peer can produce, and it is enough (RFC 5827).
    t.inject(seg(ACK, 5001, 1001));
    t.expect_len(ACK, 1001, 5001, 1000);
    assert_eq!(t.tcb.stats().timeouts, 0);
}

#[test]
fn a_lost_fast_retransmission_is_sent_again_before_the_rto() {
    let mut t = Script::established_with(&simple(), 65535, Some(1000), 20);
    t.send(&bytes(10_000));
    for i in 0..10 {
        t.expect_len(
            if i == 9 { PSH | ACK } else { ACK },
            1001 + i * 1000,
            5001,
            1000,
        );
    }
    // The first segment is lost: three duplicates, fast retransmit.
    for _ in 0..3 {
        t.inject(seg(ACK, 5001, 1001));
    }
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_nothing();
    // Duplicates keep coming a round trip later and 1001 is still missing:
    // the retransmission was lost too, so it goes again, long before the
    // 200 ms RTO.
    t.advance(30);
    t.inject(seg(ACK, 5001, 1001));
    t.expect_len(ACK, 1001, 5001, 1000);
    assert_eq!(t.tcb.stats().lost_retransmissions, 1);
    assert_eq!(t.tcb.stats().timeouts, 0);
}

/// A SACK block `[3001, end)`.
fn sack_from_3001(end: u32) -> TcpOptions {
    TcpOptions {
        sack_blocks: [
            SackBlock { start: 3001, end },
            SackBlock::default(),
            SackBlock::default(),
            SackBlock::default(),
        ],
        sack_len: 1,
        ..TcpOptions::default()
    }
}

#[test]
fn rfc6675_recovery_resends_the_holes_as_the_pipe_allows() {
    let cfg = Config {
        sack: true,
        loss_detection: LossDetection::Rfc6675,
        ..simple()
    };
    let mut t = Script::established_sack_with(&cfg, 1000, 0);
    t.send(&bytes(20_000));
    for i in 0..10 {
        t.expect_len(ACK, 1001 + i * 1000, 5001, 1000);
    }
    t.expect_nothing();
    // Segments 1001 and 2001 are lost; the peer SACKs 3001.. as they come.
    // Each SACKed segment has left the network, so a new one may go
    // (counting the pipe as RFC 6675 does).
    t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(4001)));
    t.expect_len(ACK, 11001, 5001, 1000);
    t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(5001)));
    t.expect_len(ACK, 12001, 5001, 1000);
    t.expect_nothing();
    // Three segments SACKed above both holes: IsLost holds for both, and
    // recovery starts (ssthresh = 12 000 / 2). The first hole goes at once;
    // the pipe (12 000 − 3000 SACKed − 1000 lost = 8000) holds the second.
    t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(6001)));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(7001)));
    t.expect_nothing();
    // Pipe 12 000 − 6000 − 1000 = 5000 < 6000: the second hole.
    t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(9001)));
    t.expect_len(ACK, 2001, 5001, 1000);
    t.expect_nothing();
    // SACKs drain the pipe to 4000: two new segments fit in cwnd 6000.
    t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(11001)));
    t.expect_len(ACK, 13001, 5001, 1000);
    t.expect_len(ACK, 14001, 5001, 1000);
    t.expect_nothing();
    // The holes arrive: recovery ends with cwnd = ssthresh.
    t.inject(seg(ACK, 5001, 13001));
    assert_eq!(t.tcb.congestion_window(), 6000);
    assert_eq!(t.tcb.stats().timeouts, 0);
}

/// RACK on a path with a 100 ms round trip: ten segments out at t = 100.
fn rack_flight() -> Script {
    let cfg = Config {
        sack: true,
        ..simple()
    };
    let mut t = Script::established_sack_with(&cfg, 1000, 100);
    assert_eq!(t.tcb.cfg.loss_detection, LossDetection::Rack);
    t.send(&bytes(10_000));
    for i in 0..10 {
        let flags = if i == 9 { PSH | ACK } else { ACK };
        t.expect_len(flags, 1001 + i * 1000, 5001, 1000);
    }
    t
}

#[test]
fn rack_marks_a_segment_lost_a_quarter_round_trip_after_a_later_one_arrived() {
    let mut t = rack_flight();
    // One round trip later the peer SACKs the third segment: the first
    // two were sent before it, but reordering is forgiven for a quarter
    // of the minimum RTT (25 ms) — one SACK is not three duplicates.
    t.advance(100);
    t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(4001)));
    t.expect_nothing();
    t.advance(20);
    t.expect_nothing();
    // At 125 ms past their send the reordering timer declares both lost:
    // the first goes at once, and (cwnd 10 → 5, pipe 10 − 1 SACKed − 1
    // lost = 8) the second waits for the pipe.
    t.advance(5);
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_nothing();
    assert_eq!(t.tcb.stats().timeouts, 0);
    let info = t.tcb.info(Instant::ZERO);
    assert_eq!(
        (info.lost, info.ca_state),
        (1, 3),
        "one still to resend, in recovery"
    );
    // More SACKs drain the pipe: at 5 SACKed it is 4, and the second hole
    // goes.
    for end in [5001, 6001, 7001] {
        t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(end)));
        t.expect_nothing();
    }
    t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(8001)));
    t.expect_len(ACK, 2001, 5001, 1000);
    t.expect_nothing();
}

#[test]
fn rack_finds_a_lost_retransmission_without_waiting_for_the_timeout() {
    let mut t = rack_flight();
    t.advance(100);
    t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(8001)));
    // Five SACKed and no reordering seen: no window, both holes lost now.
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_len(ACK, 2001, 5001, 1000);
    t.expect_nothing();
    // The resent 2001 arrives, the resent 1001 is lost again. When the
    // ACK for 2001 comes a round trip later, 1001 (sent at the same time,
    // before it) is overdue: it goes a third time, well before the RTO.
    t.advance(100);
    let opts = TcpOptions {
        sack_blocks: [
            SackBlock {
                start: 2001,
                end: 11001,
            },
            SackBlock::default(),
            SackBlock::default(),
            SackBlock::default(),
        ],
        sack_len: 1,
        ..TcpOptions::default()
    };
    t.inject(seg(ACK, 5001, 1001).opts(opts));
    t.advance(1);
    t.expect_len(ACK, 1001, 5001, 1000);
    t.inject(seg(ACK, 5001, 11001));
    assert_eq!(t.tcb.stats().timeouts, 0);
    assert_eq!(t.tcb.send_queue(), 0);
}

#[test]
fn rack_tolerates_reordering_once_it_has_seen_it() {
    let mut t = rack_flight();
    t.advance(100);
    // The third segment first, then the first two: reordering, not loss.
    t.inject(seg(ACK, 5001, 1001).opts(sack_from_3001(4001)));
    t.advance(10);
    t.inject(seg(ACK, 5001, 4001));
    t.expect_nothing();
    // From now on even three SACKed segments above a hole wait for the
    // reordering window (25 ms) instead of resending at once.
    t.inject(seg(ACK, 5001, 4001).opts(TcpOptions {
        sack_blocks: [
            SackBlock {
                start: 5001,
                end: 8001,
            },
            SackBlock::default(),
            SackBlock::default(),
            SackBlock::default(),
        ],
        sack_len: 1,
        ..TcpOptions::default()
    }));
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 11001));
    t.advance(100);
    assert_eq!(t.tcb.stats().retransmitted_segments, 0);
}

#[test]
fn after_a_lost_syn_the_initial_window_is_one_segment() {
    // RFC 5681, 3.1 (and RFC 6298, 5.7): when the SYN had to be sent again,
    // the sender starts with one segment, not the usual ten.
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, ISS, 0);
    t.advance(1000);
    t.expect(SYN, ISS, 0);
    t.inject(seg(SYN | ACK, PEER_ISS, ISS + 1).mss(1460));
    t.expect(ACK, ISS + 1, PEER_ISS + 1);
    assert_eq!(t.tcb.congestion_window(), 1460);
    t.send(&bytes(5000));
    t.expect_len(ACK, ISS + 1, PEER_ISS + 1, 1460);
    t.expect_nothing();
}

#[test]
fn after_an_idle_period_longer_than_the_rto_the_window_restarts() {
    // RFC 5681, 4.1: a sender idle for more than an RTO may not burst its
    // old window into the network; it restarts from the initial window.
    let mut t = Script::established(&simple());
    // Grow the window well past the initial ten segments.
    let mut next = ISS + 1;
    for _ in 0..6 {
        t.send(&bytes(14600));
        while let Some(out) = t.poll() {
            next = out.seq.wrapping_add(out.payload.len() as u32);
        }
        t.inject(seg(ACK, PEER_ISS + 1, next));
    }
    assert!(t.tcb.congestion_window() > 14600);
    t.advance(5000);
    t.send(&bytes(40_000));
    let mut burst = 0;
    while let Some(out) = t.poll() {
        burst += out.payload.len();
    }
    assert_eq!(burst, 14600, "the old window went out after the idle time");
}

#[test]
fn duplicate_acks_of_data_sent_before_a_timeout_start_no_fast_retransmit() {
    // RFC 6582, 4: after an RTO, recover = the highest sequence sent; three
    // duplicate ACKs that do not cover it are echoes of the old flight, and
    // the timeout's retransmission already deals with the loss.
    let mut t = Script::established(&simple());
    t.send(&bytes(14600));
    for i in 0..9 {
        t.expect_len(ACK, 1001 + i * 1460, 5001, 1460);
    }
    t.expect_len(PSH | ACK, 1001 + 9 * 1460, 5001, 1460);
    t.advance(200);
    t.expect_len(ACK, 1001, 5001, 1460);
    t.expect_nothing();
    for _ in 0..3 {
        t.inject(seg(ACK, 5001, 1001));
    }
    t.expect_nothing();
    assert_eq!(t.tcb.stats().fast_retransmits, 0);
}

/// An open connection with TCP_USER_TIMEOUT of one second.
fn with_user_timeout() -> Script {
    let cfg = Config {
        user_timeout: Some(ms(1000)),
        ..simple()
    };
    Script::established(&cfg)
}

#[test]
fn a_user_timeout_gives_up_on_unacknowledged_data_on_time() {
    // TCP_USER_TIMEOUT (RFC 5482): 1 s without an ACK for sent data ends
    // the connection then, not after the retry count (minutes), and the RTO
    // is cut short so that it happens on time.
    let mut t = with_user_timeout();
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    t.advance(200);
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    t.advance(400);
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    assert_eq!(t.state(), State::Established);
    t.advance(399);
    assert_eq!(t.state(), State::Established);
    t.advance(1);
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.tcb.take_error(), Some(Error::TimedOut));
}

#[test]
fn acknowledgments_restart_the_user_timeout() {
    let mut t = with_user_timeout();
    t.send(&bytes(3000));
    t.expect_len(ACK, 1001, 5001, 1460);
    t.expect_len(ACK, 2461, 5001, 1460);
    t.expect_len(PSH | ACK, 3921, 5001, 80);
    t.advance(150);
    t.inject(seg(ACK, 5001, 2461));
    t.advance(900);
    t.inject(seg(ACK, 5001, 3921));
    t.advance(900);
    assert_eq!(t.state(), State::Established, "progress restarts the clock");
}

#[test]
fn a_stretch_ack_in_slow_start_grows_the_window_by_what_it_acknowledges() {
    // Linux's receive offloads acknowledge many segments at once: RFC
    // 3465's L = 2 would hold slow start back to two segments per ACK.
    // Growth follows the bytes acknowledged (as Linux), up to ssthresh.
    let mut t = Script::established(&simple());
    t.send(&bytes(14_600));
    while t.poll().is_some() {}
    assert_eq!(t.tcb.congestion_window(), 14_600);
    t.inject(seg(ACK, 5001, 1001 + 14_600));
    assert_eq!(t.tcb.congestion_window(), 29_200);
}

#[test]
fn the_default_algorithm_is_cubic_and_a_loss_leaves_seven_tenths_of_the_window() {
    // The same loss under each algorithm: ten segments out, the first lost.
    // CUBIC (the default, as on Linux) goes on with 0.7 of the window,
    // NewReno with half of what was in flight.
    for (alg, after) in [(None, 7000), (Some(Algorithm::Reno), 5000)] {
        let cfg = Config {
            congestion: Config::default().congestion,
            ..simple()
        };
        let mut t = Script::established_with(&cfg, 65535, Some(1000), 0);
        assert_eq!(t.tcb.congestion(), Algorithm::Cubic);
        if let Some(a) = alg {
            t.tcb.set_congestion(a);
        }
        t.tcb.set_nodelay(true);
        t.send(&bytes(10_000));
        for i in 0..10 {
            let flags = if i == 9 { PSH | ACK } else { ACK };
            t.expect_len(flags, 1001 + i * 1000, 5001, 1000);
        }
        for _ in 0..3 {
            t.inject(seg(ACK, 5001, 1001));
        }
        t.expect_len(ACK, 1001, 5001, 1000);
        t.inject(seg(ACK, 5001, 11001));
        assert_eq!(t.tcb.congestion_window(), after, "{alg:?}");
    }
}

#[test]
fn blocks_of_one_ack_in_any_order_are_not_reordering() {
    // One ACK reports the newest block first, an older one after it (RFC
    // 2018, 4): the older block's segments are not "late", and the
    // reordering window must stay shut for the hole below them.
    let mut t = rack_flight();
    t.advance(100);
    let block = |start, end| SackBlock { start, end };
    t.inject(seg(ACK, 5001, 1001).opts(TcpOptions {
        sack_blocks: [
            block(7001, 8001),
            block(3001, 5001),
            block(0, 0),
            block(0, 0),
        ],
        sack_len: 2,
        ..TcpOptions::default()
    }));
    assert!(!t.tcb.rack.reordering_seen());
    // Three segments SACKed, no reordering: both holes are lost at once.
    t.expect_len(ACK, 1001, 5001, 1000);
}

#[test]
fn a_segment_received_twice_is_reported_with_a_dsack_block() {
    // RFC 2883: the ACK for a duplicate carries its range as the first SACK
    // block (below the cumulative ACK), once, so the sender can tell a
    // needless retransmission from a loss.
    let mut t = Script::established_sack(1000);
    let data = bytes(500);
    t.inject(seg(PSH | ACK, 5001, 1001).data(&data));
    t.expect(ACK, 1001, 5501);
    // (seq, len) sent, then the ACK expected and its SACK blocks.
    let steps: [(u32, usize, u32, &[SackBlock]); 3] = [
        (
            5001,
            500,
            5501,
            &[SackBlock {
                start: 5001,
                end: 5501,
            }],
        ),
        // Partly new: the old part is reported, the new part taken.
        (
            5301,
            400,
            5701,
            &[SackBlock {
                start: 5301,
                end: 5501,
            }],
        ),
        // Reported once only.
        (5701, 100, 5801, &[]),
    ];
    for (seq, len, ack, blocks) in steps {
        t.inject(seg(PSH | ACK, seq, 1001).data(&bytes(len)));
        t.advance(40);
        let out = t.expect(ACK, 1001, ack);
        assert_eq!(out.options.sack(), blocks, "after {seq}+{len}");
    }
}

#[test]
fn a_dsack_for_every_resend_undoes_the_window_cut_and_opens_the_reordering_window() {
    // The first segment is only late. Three SACKed segments above it and
    // no reordering seen yet: RACK calls it lost, the window is cut and it
    // goes again. Then the original arrives, and the peer reports the
    // resend as a duplicate: the cut was needless, and is undone.
    let mut t = rack_flight();
    let before = t.tcb.congestion_window();
    t.advance(100);
    t.inject(seg(ACK, 5001, 1001).opts(TcpOptions {
        sack_blocks: [
            SackBlock {
                start: 2001,
                end: 5001,
            },
            SackBlock::default(),
            SackBlock::default(),
            SackBlock::default(),
        ],
        sack_len: 1,
        ..TcpOptions::default()
    }));
    t.expect_len(ACK, 1001, 5001, 1000);
    assert!(t.tcb.congestion_window() < before);
    t.inject(seg(ACK, 5001, 11001));
    let dsack = |start, end| TcpOptions {
        sack_blocks: [
            SackBlock { start, end },
            SackBlock::default(),
            SackBlock::default(),
            SackBlock::default(),
        ],
        sack_len: 1,
        ..TcpOptions::default()
    };
    // The network duplicating a segment sent once says nothing.
    t.inject(seg(ACK, 5001, 11001).opts(dsack(6001, 7001)));
    assert_eq!(t.tcb.stats().spurious_recoveries_undone, 0);
    t.inject(seg(ACK, 5001, 11001).opts(dsack(1001, 2001)));
    assert_eq!(t.tcb.stats().spurious_recoveries_undone, 1);
    assert!(
        t.tcb.congestion_window() >= before,
        "{}",
        t.tcb.congestion_window()
    );
    assert!(t.tcb.rack.reordering_seen());
}
