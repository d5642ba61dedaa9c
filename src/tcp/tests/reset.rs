//! RST and SYN rules (RFC 9293, 3.10.7; RFC 5961): RST in each state, the
//! challenge ACK, bad ACKs answered with RST, and close/abort sending RST.

use super::*;

#[test]
fn rst_in_syn_sent_with_acceptable_ack_is_econnrefused() {
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, 1000, 0);
    t.inject(seg(RST | ACK, 0, 1001).win(0));
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.tcb.take_error(), Some(Error::ConnectionRefused));
    t.expect_nothing();
}

#[test]
fn rst_without_ack_in_syn_sent_is_ignored() {
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, 1000, 0);
    t.inject(seg(RST, 5000, 0).win(0));
    assert_eq!(t.state(), State::SynSent);
    assert_eq!(t.tcb.take_error(), None);
    t.expect_nothing();
    t.inject(seg(SYN | ACK, 5000, 1001).mss(1460));
    assert_eq!(t.state(), State::Established);
}

#[test]
fn rst_with_unacceptable_ack_in_syn_sent_is_ignored() {
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, 1000, 0);
    t.inject(seg(RST | ACK, 0, 3000).win(0));
    assert_eq!(t.state(), State::SynSent);
    t.expect_nothing();
}

#[test]
fn bad_ack_in_syn_sent_gets_rst_with_seq_of_the_ack() {
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, 1000, 0);
    t.inject(seg(SYN | ACK, 5000, 2000));
    t.expect(RST, 2000, 0);
    assert_eq!(t.state(), State::SynSent);
    // ACK = ISS acknowledges nothing: just as bad.
    t.inject(seg(ACK, 5000, 1000));
    t.expect(RST, 1000, 0);
    assert_eq!(t.state(), State::SynSent);
    t.expect_nothing();
}

#[test]
fn bad_ack_in_syn_received_gets_rst() {
    let mut t = Script::passive(&simple(), 7000, seg(SYN, 1000, 0));
    t.expect(SYN | ACK, 7000, 1001);
    t.inject(seg(ACK, 1001, 9000));
    t.expect(RST, 9000, 0);
    assert_eq!(t.state(), State::SynReceived);
}

#[test]
fn rst_in_syn_received_of_passive_open_closes_quietly() {
    let mut t = Script::passive(&simple(), 7000, seg(SYN, 1000, 0));
    t.expect(SYN | ACK, 7000, 1001);
    t.inject(seg(RST, 1001, 0));
    assert_eq!(t.state(), State::Closed);
    t.expect_nothing();
}

#[test]
fn in_window_rst_not_at_rcv_nxt_gets_challenge_ack() {
    let mut t = Script::established(&simple());
    t.inject(seg(RST, 5101, 0));
    assert_eq!(t.state(), State::Established);
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
    assert_eq!(t.tcb.take_error(), None);
}

#[test]
fn exact_rst_in_established_is_econnreset_from_recv() {
    let mut t = Script::established(&simple());
    t.inject(seg(RST, 5001, 0));
    assert_eq!(t.state(), State::Closed);
    t.expect_nothing();
    assert_eq!(
        t.tcb.recv(&mut [0u8; 8], false),
        Err(Error::ConnectionReset)
    );
    // Reported once; later calls see a dead connection.
    assert_eq!(t.tcb.recv(&mut [0u8; 8], false), Ok(0));
    assert_eq!(t.tcb.send(b"x"), Err(Error::BrokenPipe));
}

#[test]
fn exact_rst_in_established_is_econnreset_from_take_error() {
    let mut t = Script::established(&simple());
    t.inject(seg(PSH | ACK, 5001, 1001).data(b"unread"));
    t.inject(seg(RST | ACK, 5007, 1001));
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.tcb.take_error(), Some(Error::ConnectionReset));
    assert_eq!(t.tcb.take_error(), None);
    t.expect_nothing();
}

#[test]
fn out_of_window_rst_is_ignored_without_reply() {
    let mut t = Script::established(&simple());
    t.inject(seg(RST, 5001 + 50_000, 0));
    t.inject(seg(RST, 4000, 0));
    assert_eq!(t.state(), State::Established);
    t.expect_nothing();
}

#[test]
fn rst_in_close_wait_reports_epipe() {
    let mut t = Script::established(&simple());
    t.peer_closes();
    t.inject(seg(RST, 5002, 0));
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.tcb.take_error(), Some(Error::BrokenPipe));
}

#[test]
fn rst_in_time_wait_closes() {
    let mut t = Script::established(&simple());
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1001, 5001);
    t.inject(seg(FIN | ACK, 5001, 1002));
    t.expect(ACK, 1002, 5002);
    t.inject(seg(RST, 5002, 0));
    assert_eq!(t.state(), State::Closed);
}

#[test]
fn syn_in_established_gets_challenge_ack() {
    let mut t = Script::established(&simple());
    // A new SYN (a restarted peer) inside the window.
    t.inject(seg(SYN, 5100, 0));
    assert_eq!(t.state(), State::Established);
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
    // Its original SYN again (same sequence number).
    t.inject(seg(SYN, 5000, 0));
    assert_eq!(t.state(), State::Established);
    t.expect(ACK, 1001, 5001);
}

#[test]
fn retransmitted_syn_ack_after_our_lost_ack_is_acked_again() {
    let mut t = Script::established(&simple());
    // Our ACK of the SYN|ACK was lost: the peer sends SYN|ACK again.
    t.advance(1000);
    t.inject(seg(SYN | ACK, 5000, 1001).mss(1460));
    assert_eq!(t.state(), State::Established);
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
}

#[test]
fn close_with_unread_data_sends_rst() {
    let mut t = Script::established(&simple());
    t.inject(seg(PSH | ACK, 5001, 1001).data(&bytes(100)));
    let now = t.now;
    t.tcb.close(now);
    assert_eq!(t.state(), State::Closed);
    t.expect(RST | ACK, 1001, 5101);
    t.expect_nothing();
    assert!(t.tcb.is_finished());
}

#[test]
fn abort_sends_rst_and_closes() {
    let mut t = Script::established(&simple());
    t.send(&bytes(10));
    t.expect_len(PSH | ACK, 1001, 5001, 10);
    t.tcb.abort();
    assert_eq!(t.state(), State::Closed);
    t.expect(RST | ACK, 1011, 5001);
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 1011));
    t.expect_nothing();
}

#[test]
fn a_flood_of_bad_rsts_syns_and_acks_gets_rate_limited_challenge_acks() {
    // RFC 5961, 7 (and Linux's per-socket limit of one every 500 ms): a
    // spoofed flood must not turn the connection into an ACK reflector.
    let mut t = Script::established(&simple());
    let mut acks = 0;
    for i in 0..300u32 {
        let bad = match i % 3 {
            0 => seg(RST, 5101 + i, 0),
            1 => seg(SYN, 5201 + i, 0),
            _ => seg(ACK, 5001, 900_000),
        };
        t.inject(bad);
        while t.poll().is_some() {
            acks += 1;
        }
        t.advance_us(1000);
    }
    assert_eq!(t.state(), State::Established);
    // 300 ms of flood: one answer in the first 500 ms window.
    assert_eq!(acks, 1, "{acks} ACKs for 300 forged segments");
    // Data segments are never held back (they are not an ACK loop).
    t.advance(500);
    for _ in 0..2 {
        t.inject(seg(ACK, 4001, 1001).data(&bytes(10)));
        t.expect(ACK, 1001, 5001);
    }
}
