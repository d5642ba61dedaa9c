//! Two stacks over an in-memory link with faults, driven in virtual time
//! (`mod sim;` in stack-to-stack tests), and bulk flows whose bytes are
//! checked at the receiver and hashed on both sides.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use rstcp::link::{FaultConfig, Faulty, Link, Pair, PairEnd};
use rstcp::stack::{SocketId, Stack, StackConfig};
use rstcp::tcp::State;
use rstcp::time::Instant;
use rstcp::Error;

pub const A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);

/// Stack A and stack B, each behind its own fault injector, at a virtual
/// `now` that jumps to the next deadline whenever nothing moves.
pub struct Sim {
    pub now: Instant,
    pub a: Stack,
    pub b: Stack,
    pub la: Faulty<PairEnd>,
    pub lb: Faulty<PairEnd>,
    buf: Vec<u8>,
}

impl Sim {
    /// The same faults at both ends, so every packet crosses two fault
    /// stages (A's send side and B's receive side, or the reverse) but only
    /// one that corrupts: two bit flips in one packet can cancel out in the
    /// Internet checksum (RFC 1071), and then no TCP could tell.
    pub fn new(faults: FaultConfig) -> Sim {
        let mut fb = faults.clone();
        fb.seed = faults.seed.wrapping_add(1);
        fb.corrupt = 0.0;
        Sim::with_faults(faults, fb)
    }

    /// `fa` around A's end of the link and `fb` around B's: a packet from A
    /// to B crosses A's send side, then B's receive side.
    pub fn with_faults(fa: FaultConfig, fb: FaultConfig) -> Sim {
        Sim::with_tcp(fa, fb, rstcp::tcp::Config::default())
    }

    /// Like [`Sim::with_faults`], with connections using `tcp`.
    pub fn with_tcp(fa: FaultConfig, fb: FaultConfig, tcp: rstcp::tcp::Config) -> Sim {
        let (ea, eb) = Pair::new(1500);
        let cfg = |addr| StackConfig {
            addr,
            tcp: tcp.clone(),
            ..StackConfig::default()
        };
        Sim {
            now: Instant::from_millis(1000),
            a: Stack::new(cfg(A)),
            b: Stack::new(cfg(B)),
            la: Faulty::new(ea, fa),
            lb: Faulty::new(eb, fb),
            // Room for packets of many segments when `tcp.gso_max` asks.
            buf: vec![0; 65536 + 128],
        }
    }

    /// Moves packets and fires timers at the current time; returns whether anything happened.
    pub fn pump(&mut self) -> bool {
        let mut moved = false;
        self.a.on_timer(self.now);
        self.b.on_timer(self.now);
        while let Some(t) = self.a.poll_transmit(self.now, &mut self.buf) {
            send(&mut self.la, self.now, &self.buf[..t.len], t.gso);
            moved = true;
        }
        while let Some(t) = self.b.poll_transmit(self.now, &mut self.buf) {
            trace("B->", self.now, &self.buf[..t.len]);
            send(&mut self.lb, self.now, &self.buf[..t.len], t.gso);
            moved = true;
        }
        while let Some(n) = self.la.recv(self.now, &mut self.buf).unwrap() {
            trace("->A", self.now, &self.buf[..n]);
            self.a.on_packet(self.now, &self.buf[..n]);
            moved = true;
        }
        while let Some(n) = self.lb.recv(self.now, &mut self.buf).unwrap() {
            trace("->B", self.now, &self.buf[..n]);
            self.b.on_packet(self.now, &self.buf[..n]);
            moved = true;
        }
        moved
    }

    /// Pumps until nothing moves, then jumps to the next deadline.
    pub fn step(&mut self) {
        if self.pump() || self.la.inner().pending() > 0 || self.lb.inner().pending() > 0 {
            return;
        }
        let next = [
            self.a.poll_timeout(),
            self.b.poll_timeout(),
            self.la.next_release(),
            self.lb.next_release(),
        ]
        .into_iter()
        .flatten()
        .min();
        self.now = match next {
            Some(t) if t > self.now => t,
            _ => self.now + Duration::from_millis(1),
        };
    }

    /// Steps until `done`; panics if `limit` of virtual time passes first.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Sim) -> bool) {
        let end = self.now + limit;
        while !done(self) {
            if self.now >= end {
                for (_, t) in self.a.connections().chain(self.b.connections()) {
                    eprintln!("{t:?}");
                }
            }
            assert!(self.now < end, "timed out (virtual time)");
            self.step();
        }
    }

    /// A listener on B at `port` and a connection from A to it; returns
    /// (A's socket, B's accepted socket) once both are established.
    pub fn connect(&mut self, port: u16) -> (SocketId, SocketId) {
        let l = self.b.socket_tcp();
        self.b.bind(l, SocketAddrV4::new(B, port)).unwrap();
        self.b.listen(l, 8).unwrap();
        let c = self.a.socket_tcp();
        self.a
            .connect(self.now, c, SocketAddrV4::new(B, port))
            .unwrap();
        let mut server = None;
        self.run_until(Duration::from_secs(60), |s| {
            if server.is_none() {
                server = s.b.accept(l).ok();
            }
            server.is_some() && s.a.state(c).unwrap() == State::Established
        });
        (c, server.unwrap())
    }

    /// An orderly close started by A: B sees the end of the stream, closes,
    /// and A goes through TIME-WAIT to CLOSED and is freed.
    pub fn close_from_a(&mut self, c: SocketId, s: SocketId) {
        self.a.shutdown(self.now, c, false, true).unwrap();
        self.run_until(Duration::from_secs(60), |sim| {
            sim.b.state(s).unwrap() == State::CloseWait
                && sim.a.state(c).unwrap() == State::FinWait2
        });
        let mut buf = [0u8; 16];
        assert_eq!(self.b.recv(self.now, s, &mut buf, false), Ok(0));
        self.b.close(self.now, s).unwrap();
        self.run_until(Duration::from_secs(60), |sim| {
            sim.a.state(c).unwrap() == State::TimeWait
        });
        self.run_until(Duration::from_secs(120), |sim| {
            sim.a.state(c).unwrap() == State::Closed
        });
        self.a.close(self.now, c).unwrap();
    }
}

/// Prints a packet when the environment has TRACE set.
/// Hands a packet to the link: one of several segments is cut in software
/// there, so the fault injector sees what a wire would carry.
fn send(link: &mut Faulty<PairEnd>, now: Instant, packet: &[u8], gso: Option<u16>) {
    match gso {
        Some(mss) => link.send_gso(now, packet, mss),
        None => link.send(now, packet),
    }
    .unwrap();
}

pub fn trace(dir: &str, now: Instant, p: &[u8]) {
    if std::env::var_os("TRACE").is_none() {
        return;
    }
    let ip = rstcp::wire::parse_ipv4(p).unwrap();
    match rstcp::wire::parse_tcp(ip.src, ip.dst, ip.payload) {
        Ok(s) => eprintln!(
            "{dir} {:?} {} seq={} ack={} win={} len={} opts={:?}",
            now,
            s.flags,
            s.seq,
            s.ack,
            s.window,
            s.payload.len(),
            s.options
        ),
        Err(e) => eprintln!("{dir} bad {e:?}"),
    }
}

/// A deterministic byte stream (xorshift64, eight bytes a step) so both
/// ends can check content; any split of the stream into `fill` calls gives
/// the same bytes.
pub struct Stream {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Stream {
    pub fn new(seed: u64) -> Stream {
        Stream {
            // xorshift stays at zero from zero.
            state: seed | 1 << 63,
            word: [0; 8],
            used: 8,
        }
    }

    pub fn fill(&mut self, mut out: &mut [u8]) {
        while !out.is_empty() {
            if self.used == 8 {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                self.word = self.state.to_le_bytes();
                self.used = 0;
            }
            let n = (8 - self.used).min(out.len());
            out[..n].copy_from_slice(&self.word[self.used..self.used + n]);
            self.used += n;
            out = &mut out[n..];
        }
    }
}

/// A 64-bit FNV-1a over little-endian words (the last partial word
/// zero-padded, then the length): cheap enough for gigabytes, and any
/// single changed, missing or extra byte changes it.
#[derive(Clone)]
pub struct Fnv64 {
    hash: u64,
    tail: [u8; 8],
    filled: usize,
    len: u64,
}

impl Default for Fnv64 {
    fn default() -> Fnv64 {
        Fnv64 {
            hash: 0xcbf2_9ce4_8422_2325,
            tail: [0; 8],
            filled: 0,
            len: 0,
        }
    }
}

impl Fnv64 {
    fn mix(&mut self, word: u64) {
        self.hash ^= word;
        self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.filled > 0 {
            let n = (8 - self.filled).min(data.len());
            self.tail[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.tail));
            self.filled = 0;
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().unwrap()));
        }
        let rest = words.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    pub fn finish(&self) -> u64 {
        let mut end = self.clone();
        if end.filled > 0 {
            end.tail[end.filled..].fill(0);
            end.mix(u64::from_le_bytes(end.tail));
        }
        end.mix(end.len);
        end.hash
    }
}

/// `total` bytes of stream `seed` from one socket to another: the receiver
/// compares each byte with the stream (a mismatch panics with its offset),
/// and both sides hash what they sent and received.
pub struct Flow {
    pub total: usize,
    pub sent: usize,
    pub received: usize,
    gen: Stream,
    check: Stream,
    pending: Vec<u8>,
    pub sent_hash: Fnv64,
    pub received_hash: Fnv64,
    buf: Vec<u8>,
    want: Vec<u8>,
}

impl Flow {
    pub fn new(total: usize, seed: u64) -> Flow {
        Flow {
            total,
            sent: 0,
            received: 0,
            gen: Stream::new(seed),
            check: Stream::new(seed),
            pending: Vec::new(),
            sent_hash: Fnv64::default(),
            received_hash: Fnv64::default(),
            buf: vec![0; 64 * 1024],
            want: vec![0; 64 * 1024],
        }
    }

    /// Whether every byte arrived.
    pub fn done(&self) -> bool {
        self.received == self.total
    }

    /// Sends what `tx` takes and reads what `rx` has, at `now`.
    pub fn pump(
        &mut self,
        now: Instant,
        tx: &mut Stack,
        txs: SocketId,
        rx: &mut Stack,
        rxs: SocketId,
    ) {
        loop {
            if self.pending.is_empty() && self.sent < self.total {
                let n = (self.total - self.sent).min(64 * 1024);
                self.pending.resize(n, 0);
                self.gen.fill(&mut self.pending);
                self.sent_hash.update(&self.pending);
            }
            if self.pending.is_empty() {
                break;
            }
            match tx.send(now, txs, &self.pending) {
                Ok(n) => {
                    self.sent += n;
                    self.pending.drain(..n);
                }
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        loop {
            match rx.recv(now, rxs, &mut self.buf, false) {
                Ok(0) => break,
                Ok(n) => self.check(n),
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
    }

    fn check(&mut self, n: usize) {
        let (buf, want) = (&self.buf[..n], &mut self.want[..n]);
        self.check.fill(want);
        if buf != want {
            let diffs: Vec<_> = (0..n)
                .filter(|&i| buf[i] != want[i])
                .map(|i| (i, buf[i] ^ want[i]))
                .take(10)
                .collect();
            panic!(
                "payload differs in the {n} bytes from byte {} on: (offset, xor) {diffs:?}",
                self.received
            );
        }
        self.received_hash.update(buf);
        self.received += n;
    }
}
