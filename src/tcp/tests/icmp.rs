//! ICMP errors about our segments: unreachable while opening, soft errors
//! on open connections, and path MTU discovery (RFC 1191).

use super::*;

#[test]
fn port_unreachable_fails_a_connect_at_once() {
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, ISS, 0);
    let now = t.now;
    t.tcb.on_icmp_unreachable(now, 3, ISS);
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.tcb.take_error(), Some(Error::ConnectionRefused));
    t.advance(1000);
    t.expect_nothing();
}

#[test]
fn host_unreachable_fails_a_connect_with_ehostunreach() {
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, ISS, 0);
    let now = t.now;
    t.tcb.on_icmp_unreachable(now, 1, ISS);
    assert_eq!(t.tcb.take_error(), Some(Error::HostUnreachable));
}

#[test]
fn an_error_quoting_a_sequence_number_we_never_sent_is_ignored() {
    // RFC 5927, 4.1: a blind attacker cannot know SND.UNA..SND.MAX.
    let mut t = Script::active(&simple(), ISS);
    t.expect(SYN, ISS, 0);
    let now = t.now;
    t.tcb.on_icmp_unreachable(now, 3, ISS + 5000);
    assert_eq!(t.state(), State::SynSent);
    t.advance(1000);
    t.expect(SYN, ISS, 0);
}

#[test]
fn an_open_connection_keeps_going_and_reports_the_error_if_it_times_out() {
    let cfg = Config {
        retries: 2,
        ..simple()
    };
    let mut t = Script::established(&cfg);
    t.send(&bytes(100));
    t.expect_len(PSH | ACK, 1001, 5001, 100);
    let now = t.now;
    t.tcb.on_icmp_unreachable(now, 1, 1001);
    assert_eq!(t.state(), State::Established);
    for wait in [200, 400] {
        t.advance(wait);
        t.expect_len(PSH | ACK, 1001, 5001, 100);
    }
    t.advance(800);
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.tcb.take_error(), Some(Error::HostUnreachable));
}

#[test]
fn fragmentation_needed_shrinks_segments_and_resends_at_the_new_size() {
    let mut t = Script::established(&simple());
    t.send(&bytes(4000));
    t.expect_len(ACK, 1001, 5001, 1460);
    t.expect_len(ACK, 2461, 5001, 1460);
    t.expect_len(PSH | ACK, 3921, 5001, 1080);
    // A router with a 1000-byte MTU drops the first and says so.
    let now = t.now;
    t.tcb.on_path_mtu(now, 1000, 1001);
    assert_eq!(t.tcb.send_mss(), 960);
    t.expect_len(ACK, 1001, 5001, 960);
    t.expect_len(ACK, 1961, 5001, 960);
    t.expect_len(ACK, 2921, 5001, 960);
    t.expect_len(ACK, 3881, 5001, 960);
    t.expect_len(PSH | ACK, 4841, 5001, 160);
}

#[test]
fn a_forged_tiny_mtu_is_floored() {
    let mut t = Script::established(&simple());
    t.send(&bytes(3000));
    t.expect_len(ACK, 1001, 5001, 1460);
    let now = t.now;
    t.tcb.on_path_mtu(now, 68, 1001);
    assert_eq!(t.tcb.send_mss(), usize::from(MIN_PATH_MTU) - 40);
}
