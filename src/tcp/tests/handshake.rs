//! Opening a connection: the three-way handshake as RFC 9293 draws it,
//! active, passive (with data on the third segment) and simultaneous.

use super::*;

#[test]
fn active_open_three_way_handshake_as_drawn() {
    let mut t = Script::active(&simple(), ISS);
    assert_eq!(t.state(), State::SynSent);
    let syn = t.expect(SYN, 1000, 0);
    assert_eq!(syn.window, RCV_BUF as u16);
    t.expect_nothing();
    t.inject(seg(SYN | ACK, 5000, 1001).mss(1460));
    assert_eq!(t.state(), State::Established);
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
    // Data can go at once.
    t.send(b"hello");
    t.expect_data(PSH | ACK, 1001, 5001, b"hello");
}

#[test]
fn passive_open_three_way_handshake_as_drawn() {
    let mut t = Script::passive(&simple(), 7000, seg(SYN, 1000, 0).mss(1460));
    assert_eq!(t.state(), State::SynReceived);
    let synack = t.expect(SYN | ACK, 7000, 1001);
    assert_eq!(synack.options.mss, Some(1460));
    t.expect_nothing();
    t.inject(seg(ACK, 1001, 7001));
    assert_eq!(t.state(), State::Established);
    t.expect_nothing();
    t.send(b"hi");
    t.expect_data(PSH | ACK, 7001, 1001, b"hi");
}

#[test]
fn passive_open_third_segment_may_carry_data() {
    let mut t = Script::passive(&simple(), 7000, seg(SYN, 1000, 0).mss(1460));
    t.expect(SYN | ACK, 7000, 1001);
    t.inject(seg(ACK | PSH, 1001, 7001).data(b"GET /"));
    assert_eq!(t.state(), State::Established);
    assert_eq!(t.read_all(), b"GET /");
    t.advance(40);
    t.expect(ACK, 7001, 1006);
}

#[test]
fn simultaneous_open_syn_sent_to_syn_received_to_established() {
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, 1000, 0);
    // The peer's SYN crosses ours.
    t.inject(seg(SYN, 5000, 0).mss(1460));
    assert_eq!(t.state(), State::SynReceived);
    // We answer with SYN|ACK from our original ISS.
    t.expect(SYN | ACK, 1000, 5001);
    // The peer's SYN|ACK acknowledges our SYN.
    t.inject(seg(SYN | ACK, 5000, 1001).mss(1460));
    assert_eq!(t.state(), State::Established);
    t.send(b"x");
    t.expect_data(PSH | ACK, 1001, 5001, b"x");
}

#[test]
fn close_in_syn_received_goes_to_fin_wait_1_and_sends_fin_once_the_syn_is_acked() {
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, 1000, 0);
    t.inject(seg(SYN, 5000, 0).mss(1460));
    assert_eq!(t.state(), State::SynReceived);
    t.expect(SYN | ACK, 1000, 5001);
    let now = t.now;
    t.tcb.close(now);
    assert_eq!(t.state(), State::FinWait1);
    // The FIN must wait for the SYN to be acknowledged; a lost SYN|ACK is
    // sent again on the timeout.
    t.expect_nothing();
    t.advance(1000);
    t.expect(SYN | ACK, 1000, 5001);
    t.inject(seg(ACK, 5001, 1001));
    t.expect(FIN | ACK, 1001, 5001);
    t.inject(seg(ACK, 5001, 1002));
    assert_eq!(t.state(), State::FinWait2);
}
