//! Scripted tests of the TCP state machine, in the spirit of packetdrill.
//!
//! A [`Script`] wraps one [`Tcb`] and a virtual clock. The test plays the
//! peer: it injects segments it builds by hand (`t.inject(seg(SYN | ACK,
//! 5000, 1001))`) and checks, field by field, each packet the connection hands
//! out (`t.expect(ACK, 1001, 5001)`). Time moves only by `t.advance(ms)`,
//! which runs the timers that expired. Every check is exact: flags, sequence
//! and acknowledgment numbers, lengths and windows.
//!
//! Unless a test says otherwise the connection uses [`simple`]: no window
//! scaling, timestamps or SACK, so headers carry only what the test is about.
//! Our ISS is 1000 and the peer's 5000: after the handshake our next byte is
//! 1001 and the peer's is 5001.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::{Config, State, Tcb};
use crate::error::Error;
use crate::time::Instant;
use crate::wire::{parse_ipv4, parse_tcp, SackBlock, TcpFlags, TcpOptions, TcpSegment};

const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;
const FIN: TcpFlags = TcpFlags::FIN;
const RST: TcpFlags = TcpFlags::RST;
const PSH: TcpFlags = TcpFlags::PSH;

const LOCAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 40000);
const REMOTE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 80);

/// Our initial sequence number.
const ISS: u32 = 1000;
/// The peer's initial sequence number.
const PEER_ISS: u32 = 5000;
/// The receive buffer of [`simple`]: the window we advertise at first.
const RCV_BUF: usize = 10_000;

/// A configuration that keeps segments plain: no window scaling, no
/// timestamps, no SACK, and a 10 000-byte receive buffer.
fn simple() -> Config {
    Config {
        recv_buffer: RCV_BUF,
        window_scaling: false,
        timestamps: false,
        sack: false,
        ..Config::default()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` bytes of a recognisable pattern.
fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A segment the test injects, as the peer would send it.
#[derive(Clone, Debug)]
struct In {
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    window: u16,
    options: TcpOptions,
    payload: Vec<u8>,
}

/// A segment from the peer with a 65535-byte window and no options or data.
fn seg(flags: TcpFlags, seq: u32, ack: u32) -> In {
    In {
        flags,
        seq,
        ack,
        window: 65535,
        options: TcpOptions::default(),
        payload: Vec::new(),
    }
}

impl In {
    fn win(mut self, window: u16) -> In {
        self.window = window;
        self
    }

    fn data(mut self, payload: &[u8]) -> In {
        self.payload = payload.to_vec();
        self
    }

    fn mss(mut self, mss: u16) -> In {
        self.options.mss = Some(mss);
        self
    }

    fn opts(mut self, options: TcpOptions) -> In {
        self.options = options;
        self
    }
}

/// A segment the connection sent, parsed back from the IPv4 packet.
#[derive(Clone, Debug)]
struct Out {
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    window: u16,
    options: TcpOptions,
    payload: Vec<u8>,
}

/// One connection, a virtual clock, and the test playing the peer.
struct Script {
    tcb: Tcb,
    now: Instant,
    buf: Vec<u8>,
}

impl Script {
    /// connect(): SYN-SENT, the SYN not yet polled.
    fn active(cfg: &Config, iss: u32) -> Script {
        Script::wrap(Tcb::connect(cfg, LOCAL, REMOTE, iss))
    }

    /// A listener took `syn`: SYN-RECEIVED, the SYN|ACK not yet polled.
    fn passive(cfg: &Config, iss: u32, syn: In) -> Script {
        let syn = TcpSegment {
            src_port: REMOTE.port(),
            dst_port: LOCAL.port(),
            seq: syn.seq,
            ack: syn.ack,
            flags: syn.flags,
            window: syn.window,
            urgent: 0,
            options: syn.options,
            payload: &syn.payload,
        };
        Script::wrap(Tcb::accept_syn(cfg, LOCAL, REMOTE, iss, &syn))
    }

    fn wrap(tcb: Tcb) -> Script {
        Script {
            tcb,
            now: Instant::ZERO,
            buf: vec![0; 65536 + 100],
        }
    }

    /// Active open completed: SYN (ISS 1000) out, SYN|ACK (5000, MSS 1460,
    /// window 65535) in after `rtt_ms`, ACK out. The first RTT sample is
    /// `rtt_ms`, so the RTO is max(200 ms, 3·rtt_ms).
    fn established(cfg: &Config) -> Script {
        Script::established_with(cfg, 65535, Some(1460), 0)
    }

    fn established_with(cfg: &Config, window: u16, mss: Option<u16>, rtt_ms: u64) -> Script {
        let mut t = Script::active(cfg, ISS);
        t.expect(SYN, ISS, 0);
        t.advance(rtt_ms);
        let opts = TcpOptions {
            mss,
            ..TcpOptions::default()
        };
        t.inject(seg(SYN | ACK, PEER_ISS, ISS + 1).win(window).opts(opts));
        t.expect(ACK, ISS + 1, PEER_ISS + 1);
        assert_eq!(t.state(), State::Established);
        t
    }

    fn state(&self) -> State {
        self.tcb.state()
    }

    /// Hands `s` to the connection at the current time.
    fn inject(&mut self, s: In) {
        let seg = TcpSegment {
            src_port: REMOTE.port(),
            dst_port: LOCAL.port(),
            seq: s.seq,
            ack: s.ack,
            flags: s.flags,
            window: s.window,
            urgent: 0,
            options: s.options,
            payload: &s.payload,
        };
        self.tcb.on_segment(self.now, &seg);
    }

    /// The next packet the connection wants to send now, if any.
    fn poll(&mut self) -> Option<Out> {
        let n = self.tcb.poll_transmit(self.now, &mut self.buf)?;
        let ip = parse_ipv4(&self.buf[..n]).expect("our packet parses as IPv4");
        assert_eq!(ip.src, *LOCAL.ip());
        assert_eq!(ip.dst, *REMOTE.ip());
        let tcp = parse_tcp(ip.src, ip.dst, ip.payload).expect("our segment parses as TCP");
        assert_eq!(tcp.src_port, LOCAL.port());
        assert_eq!(tcp.dst_port, REMOTE.port());
        Some(Out {
            flags: tcp.flags,
            seq: tcp.seq,
            ack: tcp.ack,
            window: tcp.window,
            options: tcp.options,
            payload: tcp.payload.to_vec(),
        })
    }

    /// The next packet must have exactly these flags, seq and ack, and no data.
    fn expect(&mut self, flags: TcpFlags, seq: u32, ack: u32) -> Out {
        self.expect_len(flags, seq, ack, 0)
    }

    /// The next packet must have exactly these flags, seq, ack and payload length.
    fn expect_len(&mut self, flags: TcpFlags, seq: u32, ack: u32, len: usize) -> Out {
        let at = self.now;
        let out = self.poll().unwrap_or_else(|| {
            panic!(
                "at {at:?}: expected {flags} seq={seq} ack={ack} len={len}, got nothing (state {})",
                self.state()
            )
        });
        assert_eq!(
            (out.flags, out.seq, out.ack, out.payload.len()),
            (flags, seq, ack, len),
            "at {at:?}: (flags, seq, ack, len) of {out:?}"
        );
        out
    }

    /// The next packet must carry exactly `data`.
    fn expect_data(&mut self, flags: TcpFlags, seq: u32, ack: u32, data: &[u8]) -> Out {
        let out = self.expect_len(flags, seq, ack, data.len());
        assert!(out.payload == data, "payload differs at seq {seq}");
        out
    }

    /// Nothing is to be sent now.
    fn expect_nothing(&mut self) {
        if let Some(out) = self.poll() {
            panic!("at {:?}: expected nothing, got {out:?}", self.now);
        }
    }

    /// Moves the clock forward and runs the timers that expired.
    fn advance(&mut self, ms: u64) {
        self.advance_us(ms * 1000);
    }

    fn advance_us(&mut self, us: u64) {
        self.now = Instant::from_micros(self.now.micros() + us);
        if self.tcb.deadline().is_some_and(|d| d <= self.now) {
            self.tcb.on_timer(self.now);
        }
    }

    fn send(&mut self, data: &[u8]) {
        assert_eq!(self.tcb.send(data), Ok(data.len()));
    }

    /// Reads everything that is readable.
    fn read_all(&mut self) -> Vec<u8> {
        let mut out = vec![0; 1 << 20];
        match self.tcb.recv(&mut out, false) {
            Ok(n) => out.truncate(n),
            Err(Error::WouldBlock) => out.clear(),
            Err(e) => panic!("recv failed: {e:?}"),
        }
        out
    }

    /// FIN from the peer at 5001 acknowledging 1001; our ACK of it checked.
    fn peer_closes(&mut self) {
        self.inject(seg(FIN | ACK, PEER_ISS + 1, ISS + 1));
        self.expect(ACK, ISS + 1, PEER_ISS + 2);
        assert_eq!(self.state(), State::CloseWait);
    }
}

// ---------------------------------------------------------------------------
// Opening: the handshake as RFC 9293 draws it.

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

// ---------------------------------------------------------------------------
// Closing: every state on the way, and the timers.

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
    assert_eq!(t.tcb.send(b"x"), Err(Error::NotConnected));
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
    t.tcb.close();
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

// ---------------------------------------------------------------------------
// Sequence numbers: accounting and acceptability (RFC 9293, 3.10.7.4).

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

// ---------------------------------------------------------------------------
// RST and SYN rules (RFC 9293, 3.10.7; RFC 5961).

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
    t.tcb.close();
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

// ---------------------------------------------------------------------------
// Retransmission (RFC 6298) and Karn's algorithm.

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
// Out-of-order data, duplicate ACKs and SACK.

#[test]
fn out_of_order_segments_are_reassembled_in_order() {
    let mut t = Script::established(&simple());
    let data = bytes(300);
    t.inject(seg(ACK, 5101, 1001).data(&data[100..200]));
    t.inject(seg(PSH | ACK, 5201, 1001).data(&data[200..]));
    assert_eq!(t.tcb.recv_queue(), 0);
    t.inject(seg(ACK, 5001, 1001).data(&data[..100]));
    assert_eq!(t.tcb.recv_queue(), 300);
    assert_eq!(t.read_all(), data);
}

#[test]
fn each_out_of_order_segment_gets_a_duplicate_ack_at_once() {
    let mut t = Script::established(&simple());
    let data = bytes(300);
    t.inject(seg(ACK, 5101, 1001).data(&data[100..200]));
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
    t.inject(seg(PSH | ACK, 5201, 1001).data(&data[200..]));
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
    // Filling the hole is acknowledged at once too.
    t.inject(seg(ACK, 5001, 1001).data(&data[..100]));
    t.expect(ACK, 1001, 5301);
    t.expect_nothing();
}

#[test]
fn out_of_order_segments_in_a_batch_get_one_dup_ack_each() {
    let mut t = Script::established(&simple());
    let data = bytes(300);
    t.inject(seg(ACK, 5101, 1001).data(&data[100..200]));
    t.inject(seg(PSH | ACK, 5201, 1001).data(&data[200..]));
    t.expect(ACK, 1001, 5001);
    t.expect(ACK, 1001, 5001);
    t.expect_nothing();
}

#[test]
fn sack_blocks_in_dup_acks_when_negotiated() {
    let cfg = Config {
        sack: true,
        ..simple()
    };
    let mut t = Script::active(&cfg, ISS);
    let syn = t.expect(SYN, 1000, 0);
    assert!(syn.options.sack_permitted);
    let opts = TcpOptions {
        mss: Some(1460),
        sack_permitted: true,
        ..TcpOptions::default()
    };
    t.inject(seg(SYN | ACK, 5000, 1001).opts(opts));
    t.expect(ACK, 1001, 5001);
    let data = bytes(500);
    t.inject(seg(ACK, 5101, 1001).data(&data[100..200]));
    let out = t.expect(ACK, 1001, 5001);
    assert_eq!(
        out.options.sack(),
        &[SackBlock {
            start: 5101,
            end: 5201
        }]
    );
    t.inject(seg(ACK, 5301, 1001).data(&data[300..400]));
    let out = t.expect(ACK, 1001, 5001);
    // RFC 2018, 4: the first block holds the segment that triggered the ACK.
    assert_eq!(
        out.options.sack(),
        &[
            SackBlock {
                start: 5301,
                end: 5401
            },
            SackBlock {
                start: 5101,
                end: 5201
            }
        ]
    );
    t.inject(seg(ACK, 5201, 1001).data(&data[200..300]));
    let out = t.expect(ACK, 1001, 5001);
    assert_eq!(
        out.options.sack(),
        &[SackBlock {
            start: 5101,
            end: 5401
        }]
    );
    t.inject(seg(ACK, 5001, 1001).data(&data[..100]));
    let out = t.expect(ACK, 1001, 5401);
    assert!(out.options.sack().is_empty());
    assert_eq!(t.read_all(), &data[..400]);
}

#[test]
fn sack_reports_the_newest_block_first_even_beyond_three_holes() {
    let cfg = Config {
        sack: true,
        ..simple()
    };
    let mut t = Script::active(&cfg, ISS);
    t.expect(SYN, 1000, 0);
    let opts = TcpOptions {
        mss: Some(1460),
        sack_permitted: true,
        ..TcpOptions::default()
    };
    t.inject(seg(SYN | ACK, 5000, 1001).opts(opts));
    t.expect(ACK, 1001, 5001);
    // Four holes: 10-byte segments at 5101, 5201, 5301, 5401.
    for k in 1..=4u32 {
        let start = 5001 + 100 * k;
        t.inject(seg(ACK, start, 1001).data(&bytes(10)));
        let out = t.expect(ACK, 1001, 5001);
        let sack = out.options.sack();
        assert_eq!(sack.len(), k.min(3) as usize);
        assert_eq!(
            sack[0],
            SackBlock {
                start,
                end: start + 10
            },
            "segment {k} first"
        );
    }
}

#[test]
fn no_sack_blocks_when_the_peer_did_not_permit_sack() {
    let cfg = Config {
        sack: true,
        ..simple()
    };
    let mut t = Script::established(&cfg);
    t.inject(seg(ACK, 5101, 1001).data(&bytes(100)));
    let out = t.expect(ACK, 1001, 5001);
    assert!(out.options.sack().is_empty());
}

// ---------------------------------------------------------------------------
// Flow control and zero-window probing.

#[test]
fn advertised_window_shrinks_as_data_is_buffered_unread() {
    let mut t = Script::established(&simple());
    t.inject(seg(ACK, 5001, 1001).data(&bytes(1000)));
    t.inject(seg(ACK, 6001, 1001).data(&bytes(1000)));
    assert_eq!(t.expect(ACK, 1001, 7001).window, 8000);
    t.inject(seg(ACK, 7001, 1001).data(&bytes(1000)));
    t.inject(seg(ACK, 8001, 1001).data(&bytes(1000)));
    assert_eq!(t.expect(ACK, 1001, 9001).window, 6000);
    // Reading 3000 bytes opens the window by more than 2·MSS: a window update.
    let mut out = vec![0; 3000];
    assert_eq!(t.tcb.recv(&mut out, false), Ok(3000));
    assert_eq!(t.expect(ACK, 1001, 9001).window, 9000);
}

#[test]
fn small_reads_do_not_send_window_updates() {
    let mut t = Script::established(&simple());
    t.inject(seg(ACK, 5001, 1001).data(&bytes(1000)));
    t.inject(seg(ACK, 6001, 1001).data(&bytes(1000)));
    assert_eq!(t.expect(ACK, 1001, 7001).window, 8000);
    assert_eq!(t.tcb.recv(&mut [0u8; 100], false), Ok(100));
    t.expect_nothing();
}

#[test]
fn sender_never_sends_beyond_the_peer_window() {
    let mut t = Script::established_with(&simple(), 1000, Some(1460), 0);
    t.send(&bytes(3000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_nothing();
    // The window slides: 1000 more, and no more.
    t.inject(seg(ACK, 5001, 2001).win(1000));
    t.expect_len(ACK, 2001, 5001, 1000);
    t.expect_nothing();
    // Half acknowledged, window still 1000: 500 bytes of room (half the
    // peer's largest window, so silly window avoidance lets it go).
    t.inject(seg(ACK, 5001, 2501).win(1000));
    t.expect_len(ACK, 3001, 5001, 500);
    t.expect_nothing();
}

#[test]
fn zero_window_persist_probes_with_backoff_then_data_flows() {
    let mut t = Script::established_with(&simple(), 1000, Some(1460), 0);
    assert_eq!(t.tcb.rto(), ms(200));
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.inject(seg(ACK, 5001, 2001).win(0));
    t.expect_nothing();
    assert_eq!(t.tcb.rto(), ms(200));
    // Probes of one byte after an RTO, then twice as long, then four times.
    for wait in [200, 400, 800] {
        t.advance(wait - 1);
        t.expect_nothing();
        t.advance(1);
        t.expect_len(ACK, 2001, 5001, 1);
        t.expect_nothing();
        // The peer's window is still closed.
        t.inject(seg(ACK, 5001, 2001).win(0));
        t.expect_nothing();
    }
    assert_eq!(t.state(), State::Established);
    // The window opens: the rest flows, from the probed byte on.
    t.inject(seg(ACK, 5001, 2001).win(4000));
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
    t.inject(seg(ACK, 5001, 3001).win(4000));
    assert_eq!(t.tcb.send_queue(), 0);
}

#[test]
fn zero_window_probing_never_times_out_while_the_peer_answers() {
    let cfg = Config {
        retries: 3,
        max_rto: ms(2000),
        ..simple()
    };
    let mut t = Script::established_with(&cfg, 1000, Some(1460), 0);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.inject(seg(ACK, 5001, 2001).win(0));
    t.expect_nothing();
    let mut probes = 0;
    for _ in 0..60_000 {
        t.advance(1);
        if let Some(out) = t.poll() {
            assert_eq!((out.seq, out.payload.len()), (2001, 1));
            probes += 1;
            t.inject(seg(ACK, 5001, 2001).win(0));
        }
    }
    assert_eq!(t.state(), State::Established);
    assert!(probes >= 30, "{probes} probes in a minute");
    t.inject(seg(ACK, 5001, 2001).win(1000));
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
}

#[test]
fn unanswered_zero_window_probes_time_out() {
    let cfg = Config {
        retries: 3,
        ..simple()
    };
    let mut t = Script::established_with(&cfg, 1000, Some(1460), 0);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.inject(seg(ACK, 5001, 2001).win(0));
    t.expect_nothing();
    // Probes at 200, 600, 1400 ms; nobody answers.
    for wait in [200, 400, 800] {
        t.advance(wait);
        t.expect_len(ACK, 2001, 5001, 1);
    }
    t.advance(1599);
    assert_eq!(t.state(), State::Established);
    t.advance(1);
    assert_eq!(t.state(), State::Closed);
    assert_eq!(t.tcb.take_error(), Some(Error::TimedOut));
}

#[test]
fn rto_with_a_window_shrunk_to_zero_hands_over_to_persist_probes() {
    let mut t = Script::established_with(&simple(), 2000, Some(1000), 0);
    t.tcb.set_nodelay(true);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
    // The peer takes the first segment and shrinks its window to nothing:
    // the second segment is outside it now.
    t.inject(seg(ACK, 5001, 2001).win(0));
    t.expect_nothing();
    // The RTO finds nothing that fits; the backed-off RTO (400 ms) later, a probe.
    t.advance(200);
    t.expect_nothing();
    t.advance(399);
    t.expect_nothing();
    t.advance(1);
    t.expect_len(ACK, 2001, 5001, 1);
    t.inject(seg(ACK, 5001, 2001).win(1000));
    t.expect_len(PSH | ACK, 2001, 5001, 1000);
    assert_eq!(t.state(), State::Established);
}

#[test]
fn window_reopening_releases_held_data() {
    let mut t = Script::established_with(&simple(), 0, Some(1460), 0);
    t.send(&bytes(500));
    t.expect_nothing();
    t.inject(seg(ACK, 5001, 1001).win(1000));
    t.expect_len(PSH | ACK, 1001, 5001, 500);
}

#[test]
fn window_scale_applies_to_windows_after_the_syn() {
    let cfg = Config {
        window_scaling: true,
        recv_buffer: 256 * 1024,
        ..simple()
    };
    let shift = cfg.window_shift();
    assert_eq!(shift, 7);
    let mut t = Script::active(&cfg, ISS);
    let syn = t.expect(SYN, 1000, 0);
    assert_eq!(syn.options.window_scale, Some(7));
    assert_eq!(syn.window, 65535, "the SYN's window is never scaled");
    let opts = TcpOptions {
        mss: Some(1460),
        window_scale: Some(2),
        ..TcpOptions::default()
    };
    t.inject(seg(SYN | ACK, 5000, 1001).win(1000).opts(opts));
    assert_eq!(
        t.tcb.send_window(),
        1000,
        "the SYN|ACK's window is never scaled"
    );
    let ack = t.expect(ACK, 1001, 5001);
    assert_eq!(ack.window, ((256 * 1024) >> 7) as u16);
    t.inject(seg(ACK, 5001, 1001).win(1000));
    assert_eq!(t.tcb.send_window(), 4000);
}

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
// Fast retransmit, Nagle.

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
fn acks_sent_while_probing_keep_a_sequence_number_the_peer_accepts() {
    let mut t = Script::established_with(&simple(), 1000, Some(1460), 0);
    t.send(&bytes(2000));
    t.expect_len(ACK, 1001, 5001, 1000);
    t.inject(seg(ACK, 5001, 2001).win(0));
    t.expect_nothing();
    t.advance(200);
    t.expect_len(ACK, 2001, 5001, 1);
    // The peer sends data while its window stays shut: our ACK of it carries
    // seq 2001 (the probe byte is not counted as sent), which the peer's
    // RCV.NXT of 2001 accepts.
    t.inject(seg(ACK, 5001, 2001).win(0).data(b"abc"));
    t.advance(40);
    t.expect(ACK, 2001, 5004);
    // The peer took the probe byte: its ACK of 2002 is accepted.
    t.inject(seg(ACK, 5004, 2002).win(3000));
    t.expect_len(PSH | ACK, 2002, 5004, 999);
}

#[test]
fn a_lost_fin_is_wanted_again_after_the_timeout() {
    let mut t = Script::established_with(&simple(), 1000, Some(1460), 0);
    t.inject(seg(FIN | ACK, 5001, 1001));
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
