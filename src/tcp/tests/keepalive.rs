//! Keep-alive probes (RFC 1122, 4.2.3.6): when they go out, what they look
//! like, what resets the idle clock, and giving up on a silent peer.

use super::*;
use crate::tcp::keepalive::KeepAlive;

fn keepalive() -> KeepAlive {
    KeepAlive {
        enabled: true,
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        count: 3,
    }
}

#[test]
fn an_idle_connection_is_probed_and_an_answer_resets_the_clock() {
    let mut t = Script::established(&simple());
    let now = t.now;
    t.tcb.set_keepalive(now, keepalive());
    t.advance(9_999);
    t.expect_nothing();
    t.advance(1);
    // The probe: one below SND.UNA, no data, so the peer must ACK it.
    t.expect(ACK, 1000, 5001);
    t.inject(seg(ACK, 5001, 1001));
    t.expect_nothing();
    // Answered: the next probe is a full idle period later.
    t.advance(9_999);
    t.expect_nothing();
    t.advance(1);
    t.expect(ACK, 1000, 5001);
    assert_eq!(t.state(), State::Established);
}

#[test]
fn a_peer_that_stops_answering_is_reset_with_etimedout() {
    let mut t = Script::established(&simple());
    let now = t.now;
    t.tcb.set_keepalive(now, keepalive());
    t.advance(10_000);
    t.expect(ACK, 1000, 5001);
    t.advance(1_000);
    t.expect(ACK, 1000, 5001);
    t.advance(1_000);
    t.expect(ACK, 1000, 5001);
    t.expect_nothing();
    // Three unanswered: the connection is reset and the error reported.
    t.advance(1_000);
    t.expect(RST | ACK, 1001, 5001);
    assert_eq!(t.state(), State::Closed);
    let mut buf = [0u8; 4];
    assert_eq!(t.tcb.recv(&mut buf, false), Err(Error::TimedOut));
    assert_eq!(t.tcb.stats().keepalive_timeouts, 1);
}

#[test]
fn data_from_the_peer_restarts_the_idle_time() {
    let mut t = Script::established(&simple());
    let now = t.now;
    t.tcb.set_keepalive(now, keepalive());
    t.advance(8_000);
    t.inject(seg(ACK, 5001, 1001).data(b"hello"));
    t.advance(40);
    t.expect(ACK, 1001, 5006);
    // Ten seconds after the data, not after the first idle period started.
    t.advance(9_959);
    t.expect_nothing();
    t.advance(1);
    t.expect(ACK, 1000, 5006);
}

#[test]
fn off_by_default_and_turning_it_off_stops_probes() {
    let mut t = Script::established(&simple());
    t.advance(3_600_000);
    t.expect_nothing();
    let now = t.now;
    t.tcb.set_keepalive(now, keepalive());
    let now = t.now;
    t.tcb.set_keepalive(
        now,
        KeepAlive {
            enabled: false,
            ..keepalive()
        },
    );
    t.advance(60_000);
    t.expect_nothing();
}

#[test]
fn a_peers_keepalive_probe_is_answered_with_an_ack() {
    let mut t = Script::established(&simple());
    // seq = RCV.NXT - 1, no data: old, so unacceptable, so ACKed.
    t.inject(seg(ACK, 5000, 1001));
    t.expect(ACK, 1001, 5001);
}

#[test]
fn forged_segments_do_not_keep_a_dead_connection_alive() {
    // Only acceptable segments restart the idle clock: out-of-window data,
    // an inexact RST or an ACK of unsent data may be forged.
    let mut t = Script::established(&simple());
    let now = t.now;
    t.tcb.set_keepalive(now, keepalive());
    for forged in [
        seg(ACK, 900_000, 1001).data(b"x"),
        seg(RST, 5101, 0),
        seg(ACK, 5001, 99_999),
    ] {
        t.advance(2_000);
        t.inject(forged);
        // Each is answered (an ACK or a challenge ACK), never believed.
        t.expect(ACK, 1001, 5001);
    }
    t.advance(1_000);
    // Still probed ten seconds after the last real word from the peer.
    t.advance(2_999);
    t.expect_nothing();
    t.advance(1);
    t.expect(ACK, 1000, 5001);
}
