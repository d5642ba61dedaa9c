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
//!
//! This file holds only the harness; the tests live one concept a file:
//! `handshake`, `close` (states, TIME-WAIT, half-close), `sequence`
//! (accounting and acceptability), `reset` (RST and RFC 5961 rules),
//! `retransmit` (RTO, Karn, backoff, SYN retries, fast retransmit, limited
//! transmit), `reassembly` (out-of-order data, SACK), `flow` (windows, zero
//! window, persist) and `segment` (MSS, Nagle, delayed ACK).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::{Config, State, Tcb, MIN_PATH_MTU};
use crate::error::Error;
use crate::time::Instant;
use crate::wire::{parse_ipv4, parse_tcp_with, Checksum, TcpFlags, TcpOptions, TcpSegment};

mod close;
mod flow;
mod handshake;
mod icmp;
mod keepalive;
mod offload;
mod reassembly;
mod reset;
mod retransmit;
mod segment;
mod sequence;
mod time_wait;

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
        // Most tests look at the RTO itself; tail loss probes have their own.
        tail_loss_probe: false,
        // A fixed window unless a test says otherwise.
        recv_autotune: false,
        // Window arithmetic in these scripts is Reno's (halving on loss);
        // CUBIC and HyStart++ have tests of their own (tcp/cc/tests.rs).
        congestion: crate::tcp::Algorithm::Reno,
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

    /// The segment as the connection takes it.
    fn segment(&self) -> TcpSegment<'_> {
        TcpSegment {
            src_port: REMOTE.port(),
            dst_port: LOCAL.port(),
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            urgent: 0,
            options: self.options,
            payload: &self.payload,
        }
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
    /// Payload bytes per segment of a packet for segmentation offload.
    gso: Option<u16>,
    /// The payload was left in the send ring (`Config::zero_copy`).
    in_place: bool,
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
        Script::wrap(Tcb::accept_syn(cfg, LOCAL, REMOTE, iss, &syn.segment()))
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

    /// An active open with SACK negotiated (both sides permit it), the
    /// peer announcing `mss` and a 65535-byte window.
    fn established_sack(mss: u16) -> Script {
        let cfg = Config {
            sack: true,
            ..simple()
        };
        Script::established_sack_with(&cfg, mss, 0)
    }

    /// Like `established_sack` with `cfg` and a handshake taking `rtt_ms`.
    fn established_sack_with(cfg: &Config, mss: u16, rtt_ms: u64) -> Script {
        let mut t = Script::active(cfg, ISS);
        let syn = t.expect(SYN, ISS, 0);
        t.advance(rtt_ms);
        assert!(syn.options.sack_permitted);
        let opts = TcpOptions {
            mss: Some(mss),
            sack_permitted: true,
            ..TcpOptions::default()
        };
        t.inject(seg(SYN | ACK, PEER_ISS, ISS + 1).win(65535).opts(opts));
        t.expect(ACK, ISS + 1, PEER_ISS + 1);
        t
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
        self.tcb.on_segment(self.now, &s.segment());
    }

    /// The next packet the connection wants to send now, if any.
    fn poll(&mut self) -> Option<Out> {
        let t = self.tcb.poll_transmit(self.now, &mut self.buf)?;
        // A payload left in the send ring goes after the headers, as the
        // link's gather write puts it.
        let len = t.len + t.payload.as_ref().map_or(0, |p| p.len());
        if let Some(p) = &t.payload {
            p.copy_to(&mut self.buf[t.len..len]);
        }
        let ip = parse_ipv4(&self.buf[..len]).expect("our packet parses as IPv4");
        assert_eq!(ip.src, *LOCAL.ip());
        assert_eq!(ip.dst, *REMOTE.ip());
        let tcp =
            parse_tcp_with(ip.src, ip.dst, ip.payload, t.checksum()).expect("our segment parses");
        if t.checksum() == Checksum::Partial {
            // Finished as the kernel does from the virtio-net header we
            // would write: the field must hold the pseudo-header sum.
            let mut whole = self.buf[..len].to_vec();
            let headers = len - tcp.payload.len();
            let hdr = crate::link::vnet::gso(20, headers, t.gso.unwrap_or(0), t.gso.is_some());
            assert!(crate::link::vnet::complete_checksum(&hdr, &mut whole));
            let ip = parse_ipv4(&whole).unwrap();
            assert!(parse_tcp_with(ip.src, ip.dst, ip.payload, Checksum::Full).is_ok());
        }
        assert_eq!(tcp.src_port, LOCAL.port());
        assert_eq!(tcp.dst_port, REMOTE.port());
        Some(Out {
            flags: tcp.flags,
            seq: tcp.seq,
            ack: tcp.ack,
            window: tcp.window,
            options: tcp.options,
            payload: tcp.payload.to_vec(),
            gso: t.gso,
            in_place: t.payload.is_some(),
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

    /// As if the connection were past its first segments: quick-ACK mode
    /// over, so the delayed-ACK rules show.
    fn no_quick_acks(&mut self) {
        self.tcb.quick_acks = 0;
        self.tcb.last_data_recv = Some(self.now);
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

    /// FIN from the peer at 5001 acknowledging 1001. Our ACK of it waits
    /// for what the application does next (see `close`).
    fn peer_closes(&mut self) {
        self.inject(seg(FIN | ACK, PEER_ISS + 1, ISS + 1));
        assert_eq!(self.state(), State::CloseWait);
        self.expect_nothing();
    }
}
