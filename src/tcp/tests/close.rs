//! Closing a connection: every state on the way (FIN-WAIT-1/2, CLOSING,
//! TIME-WAIT, CLOSE-WAIT, LAST-ACK), the 2·MSL and FIN timeouts, the
//! retransmitted FIN, and half-close in either direction.

use super::*;

#[test]
fn closed_state_ignores_segments_and_sends_nothing() {
    let mut t = Script::active(&simple(), ISS);
    // shutdown before the SYN went out: straight to CLOSED.
    t.tcb.shutdown_write().unwrap();
    assert_eq!(t.state(), State::Closed);
    t.expect_nothing();
    t.inject(seg(SYN | ACK, 5000, 1001));
    assert_eq!(t.state(), State::Closed);
    t.expect_nothing();
    assert!(t.tcb.is_finished());
    // As on Linux: writing to a socket whose connection is gone is EPIPE.
    assert_eq!(t.tcb.send(b"x"), Err(Error::BrokenPipe));
}

#[test]
fn active_close_fin_wait_1_fin_wait_2_time_wait_closed_after_exactly_2msl() {
    let cfg = Config {
        msl: ms(100),
        ..simple()
    };
    let mut t = Script::established(&cfg);
    t.tcb.shutdown_write().unwrap();
    assert_eq!(t.state(), State::FinWait1);
    t.expect(FIN | ACK, 1001, 5001);
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 1002));
    assert_eq!(t.state(), State::FinWait2);
    t.expect_nothing();
    t.advance(10);
    t.inject(seg(FIN | ACK, 5001, 1002));
    assert_eq!(t.state(), State::TimeWait);
    t.expect(ACK, 1002, 5002);
    assert_eq!(t.tcb.deadline(), Some(Instant::from_millis(10 + 200)));
    t.advance(199);
    assert_eq!(t.state(), State::TimeWait, "1 ms before 2·MSL");
    t.advance(1);
    assert_eq!(t.state(), State::Closed);
    t.expect_nothing();
    assert!(t.tcb.is_finished());
}

#[test]
fn fin_with_ack_of_our_fin_goes_from_fin_wait_1_straight_to_time_wait() {
    let mut t = Script::established(&simple());
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1001, 5001);
    t.inject(seg(FIN | ACK, 5001, 1002));
    assert_eq!(t.state(), State::TimeWait);
    t.expect(ACK, 1002, 5002);
    t.expect_nothing();
}

#[test]
fn simultaneous_close_fin_wait_1_closing_time_wait() {
    let cfg = Config {
        msl: ms(100),
        ..simple()
    };
    let mut t = Script::established(&cfg);
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1001, 5001);
    // The peer's FIN crosses ours: it does not acknowledge our FIN.
    t.inject(seg(FIN | ACK, 5001, 1001));
    assert_eq!(t.state(), State::Closing);
    t.expect(ACK, 1002, 5002);
    t.expect_nothing();
    t.inject(seg(ACK, 5002, 1002));
    assert_eq!(t.state(), State::TimeWait);
    t.advance(199);
    assert_eq!(t.state(), State::TimeWait);
    t.advance(1);
    assert_eq!(t.state(), State::Closed);
}

#[test]
fn passive_close_established_close_wait_last_ack_closed() {
    let mut t = Script::established(&simple());
    t.peer_closes();
    // EOF for the reader.
    assert_eq!(t.tcb.recv(&mut [0u8; 16], false), Ok(0));
    t.tcb.shutdown_write().unwrap();
    assert_eq!(t.state(), State::LastAck);
    t.expect(FIN | ACK, 1001, 5002);
    t.expect_nothing();
    t.inject(seg(ACK, 5002, 1002));
    assert_eq!(t.state(), State::Closed);
    assert!(t.tcb.is_finished());
    assert_eq!(t.tcb.take_error(), None);
    t.expect_nothing();
}

#[test]
fn the_ack_of_the_peers_fin_waits_for_the_application_as_on_linux() {
    // Its reply carries the ACK...
    let mut t = Script::established(&simple());
    t.peer_closes();
    t.send(b"bye");
    t.expect_data(PSH | ACK, 1001, 5002, b"bye");
    t.expect_nothing();
    // ...or its close (one packet, not two)...
    let mut t = Script::established(&simple());
    t.peer_closes();
    t.advance(10);
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1001, 5002);
    t.expect_nothing();
    // ...or, if it does nothing, the delayed-ACK timer.
    let mut t = Script::established(&simple());
    t.peer_closes();
    t.advance(39);
    t.expect_nothing();
    t.advance(1);
    t.expect(ACK, 1001, 5002);
    // A FIN that ends our own close is ACKed at once (TIME-WAIT).
    let mut t = Script::established(&simple());
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1001, 5001);
    t.inject(seg(FIN | ACK, 5001, 1002));
    t.expect(ACK, 1002, 5002);
}

#[test]
fn last_ack_retransmits_fin_on_rto() {
    let mut t = Script::established(&simple());
    assert_eq!(t.tcb.rto(), ms(200));
    t.peer_closes();
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1001, 5002);
    t.advance(199);
    t.expect_nothing();
    t.advance(1);
    t.expect(FIN | ACK, 1001, 5002);
    assert_eq!(t.state(), State::LastAck);
    t.inject(seg(ACK, 5002, 1002));
    assert_eq!(t.state(), State::Closed);
}

#[test]
fn half_close_fin_wait_2_keeps_receiving_data() {
    let mut t = Script::established(&simple());
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1001, 5001);
    t.inject(seg(ACK, 5001, 1002));
    assert_eq!(t.state(), State::FinWait2);
    assert_eq!(t.tcb.send(b"late"), Err(Error::BrokenPipe));
    let data = bytes(300);
    t.inject(seg(PSH | ACK, 5001, 1002).data(&data));
    assert_eq!(t.state(), State::FinWait2);
    assert_eq!(t.read_all(), data);
    t.advance(40);
    t.expect(ACK, 1002, 5301);
    t.inject(seg(FIN | ACK, 5301, 1002));
    assert_eq!(t.state(), State::TimeWait);
    t.expect(ACK, 1002, 5302);
    assert_eq!(t.tcb.recv(&mut [0u8; 8], false), Ok(0));
}

#[test]
fn half_close_close_wait_side_can_still_send() {
    let mut t = Script::established(&simple());
    t.peer_closes();
    t.send(b"reply after your FIN");
    t.expect_data(PSH | ACK, 1001, 5002, b"reply after your FIN");
    t.inject(seg(ACK, 5002, 1021));
    assert_eq!(t.state(), State::CloseWait);
    assert_eq!(t.tcb.send_queue(), 0);
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1021, 5002);
}

#[test]
fn time_wait_reacks_a_retransmitted_fin_and_restarts_its_timer() {
    let cfg = Config {
        msl: ms(100),
        ..simple()
    };
    let mut t = Script::established(&cfg);
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1001, 5001);
    t.inject(seg(FIN | ACK, 5001, 1002));
    assert_eq!(t.state(), State::TimeWait);
    t.expect(ACK, 1002, 5002);
    // Our ACK was lost; the peer sends its FIN again 150 ms later.
    t.advance(150);
    t.inject(seg(FIN | ACK, 5001, 1002));
    t.expect(ACK, 1002, 5002);
    t.expect_nothing();
    // The original 2·MSL (200 ms) passes: the restarted timer holds.
    t.advance(199);
    assert_eq!(t.state(), State::TimeWait);
    t.advance(1);
    assert_eq!(t.state(), State::Closed);
}

#[test]
fn orphaned_fin_wait_2_gives_up_after_fin_timeout() {
    let cfg = Config {
        fin_timeout: ms(1000),
        ..simple()
    };
    let mut t = Script::established(&cfg);
    let now = t.now;
    t.tcb.close(now);
    assert_eq!(t.state(), State::FinWait1);
    t.expect(FIN | ACK, 1001, 5001);
    t.inject(seg(ACK, 5001, 1002));
    assert_eq!(t.state(), State::FinWait2);
    t.advance(999);
    assert_eq!(t.state(), State::FinWait2);
    t.advance(1);
    assert_eq!(t.state(), State::Closed);
}

#[test]
fn close_after_shutdown_in_fin_wait_2_still_gives_up_after_fin_timeout() {
    // shutdown(SHUT_WR), the FIN is acknowledged, then close(): the
    // connection is an orphan from then on and must not wait forever for a
    // FIN from a peer that may never send one.
    let cfg = Config {
        fin_timeout: ms(1000),
        ..simple()
    };
    let mut t = Script::established(&cfg);
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1001, 5001);
    t.inject(seg(ACK, 5001, 1002));
    assert_eq!(t.state(), State::FinWait2);
    t.advance(5000);
    assert_eq!(t.state(), State::FinWait2, "not an orphan yet: waits");
    let now = t.now;
    t.tcb.close(now);
    t.advance(999);
    assert_eq!(t.state(), State::FinWait2);
    t.advance(1);
    assert_eq!(t.state(), State::Closed);
}

#[test]
fn fin_queued_behind_data_goes_after_the_data() {
    let mut t = Script::established(&simple());
    t.send(&bytes(100));
    t.tcb.shutdown_write().unwrap();
    t.expect_len(FIN | PSH | ACK, 1001, 5001, 100);
    t.inject(seg(ACK, 5001, 1101));
    assert_eq!(t.state(), State::FinWait1, "data acked, FIN not yet");
    t.inject(seg(ACK, 5001, 1102));
    assert_eq!(t.state(), State::FinWait2);
}

#[test]
fn out_of_order_fin_is_taken_when_the_hole_fills() {
    let mut t = Script::established(&simple());
    let data = bytes(200);
    t.inject(seg(FIN | ACK, 5101, 1001).data(&data[100..]));
    assert_eq!(t.state(), State::Established);
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 1001).data(&data[..100]));
    assert_eq!(t.state(), State::CloseWait);
    t.expect(ACK, 1001, 5202);
    assert_eq!(t.read_all(), data);
    assert_eq!(t.tcb.recv(&mut [0u8; 8], false), Ok(0));
}

#[test]
fn a_lost_fin_is_wanted_again_after_the_timeout() {
    let mut t = Script::established_with(&simple(), 1000, Some(1460), 0);
    t.inject(seg(FIN | ACK, 5001, 1001));
    t.advance(40);
    t.expect(ACK, 1001, 5002);
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1001, 5002);
    assert_eq!(t.state(), State::LastAck);
    assert!(!t.tcb.wants_transmit());
    t.advance(200);
    // The stack only polls connections that say they want to send.
    assert!(t.tcb.wants_transmit(), "the FIN must go again");
    t.expect(FIN | ACK, 1001, 5002);
}

#[test]
fn each_direction_gives_its_buffers_back_when_it_is_finished() {
    // Data both ways takes storage; once our FIN is acknowledged the send
    // ring goes, once the peer's FIN is read the receive ring goes: a
    // connection in TIME-WAIT holds no buffers.
    let mut t = Script::established(&simple());
    t.send(b"request");
    t.expect_data(PSH | ACK, 1001, 5001, b"request");
    let reply = bytes(3000);
    t.inject(seg(PSH | ACK, 5001, 1008).data(&reply));
    assert!(t.tcb.buffer_storage() >= 2 * 4096);
    t.tcb.shutdown_write().unwrap();
    t.expect(FIN | ACK, 1008, 8001);
    t.inject(seg(ACK, 8001, 1009));
    assert_eq!(t.state(), State::FinWait2);
    // The send side is done; unread data keeps the receive ring.
    assert_eq!(t.tcb.buffer_storage(), 4096);
    t.inject(seg(FIN | ACK, 8001, 1009));
    assert_eq!(t.state(), State::TimeWait);
    assert_eq!(t.tcb.buffer_storage(), 4096);
    assert_eq!(t.read_all(), reply);
    assert_eq!(t.tcb.buffer_storage(), 0);
}
