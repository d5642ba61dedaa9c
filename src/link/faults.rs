//! Fault injection: loss, duplication, reordering, corruption and delay, in
//! both directions, around any [`Link`].
//!
//! Faults are drawn from a small seeded generator, so a failing run can be
//! repeated exactly with the same `seed` and the same sequence of calls.
//!
//! Packets held back (by delay, jitter or reordering) wait in a queue ordered
//! by release time. Held *received* packets are returned by `recv` once
//! `now` reaches their release time. Held *sent* packets are passed to the
//! inner link by the first `send` or `recv` call made at or after their
//! release time; [`Link::next_release`] covers both kinds, so a runtime that
//! wakes at that time and calls `recv` keeps both directions moving.

use super::Link;
use crate::time::Instant;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// How long a packet picked for reordering waits for a successor before it
/// is released anyway, so a lone last packet is late rather than lost.
pub const REORDER_MAX_HOLD: Duration = Duration::from_millis(5);

/// Packets held per direction before further ones are dropped, so a large
/// delay at a high rate cannot grow memory without bound.
const HELD_LIMIT: usize = 65536;

/// Receives from the inner link per `recv` call while every packet read is
/// lost or held; beyond this `recv` returns `Ok(None)` and the still-readable
/// descriptor brings the runtime straight back.
const RECV_BATCH: usize = 64;

/// Emptied buffers kept for reuse.
const SPARE_LIMIT: usize = 256;

/// Which faults to inject, and how often.
///
/// Probabilities are per packet and direction, in 0..=1.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// Probability that a packet is dropped.
    pub loss: f64,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Probability that a packet is held back and delivered after the next
    /// one (or after [`REORDER_MAX_HOLD`] if no other packet comes).
    pub reorder: f64,
    /// Probability that one random bit of a packet is flipped.
    pub corrupt: f64,
    /// Fixed delay added to every packet.
    pub delay: Duration,
    /// Extra delay, uniform in `0..=jitter`, added to every packet; packets
    /// may overtake each other as a result.
    pub jitter: Duration,
    /// Seed of the fault generator.
    pub seed: u64,
}

impl Default for FaultConfig {
    /// No faults at all.
    fn default() -> FaultConfig {
        FaultConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            seed: 0,
        }
    }
}

impl FaultConfig {
    /// Parses the `RSTCP_FAULTS` syntax, e.g.
    /// `loss=0.02,dup=0.01,reorder=0.05,corrupt=0.01,delay=10ms,jitter=2ms,seed=7`.
    ///
    /// Keys may come in any order and any may be left out (`duplicate` is
    /// accepted for `dup`); durations take a unit of `s`, `ms` or `us` (a
    /// bare `0` is also accepted). An empty string means no faults.
    pub fn parse(s: &str) -> Result<FaultConfig, String> {
        let mut config = FaultConfig::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("fault `{item}` is not of the form key=value"))?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "loss" => config.loss = probability(key, value)?,
                "dup" | "duplicate" => config.duplicate = probability(key, value)?,
                "reorder" => config.reorder = probability(key, value)?,
                "corrupt" => config.corrupt = probability(key, value)?,
                "delay" => config.delay = duration(key, value)?,
                "jitter" => config.jitter = duration(key, value)?,
                "seed" => {
                    config.seed = value
                        .parse()
                        .map_err(|_| format!("seed={value}: not an unsigned integer"))?
                }
                _ => {
                    return Err(format!(
                        "unknown fault `{key}` (known: loss, dup, reorder, corrupt, delay, jitter, seed)"
                    ))
                }
            }
        }
        Ok(config)
    }

    /// Whether any fault is configured (the seed alone does not count).
    pub fn is_active(&self) -> bool {
        self.loss > 0.0
            || self.duplicate > 0.0
            || self.reorder > 0.0
            || self.corrupt > 0.0
            || !self.delay.is_zero()
            || !self.jitter.is_zero()
    }
}

impl fmt::Display for FaultConfig {
    /// The syntax [`FaultConfig::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loss={},dup={},reorder={},corrupt={},delay={}us,jitter={}us,seed={}",
            self.loss,
            self.duplicate,
            self.reorder,
            self.corrupt,
            self.delay.as_micros(),
            self.jitter.as_micros(),
            self.seed
        )
    }
}

fn probability(key: &str, value: &str) -> Result<f64, String> {
    let p: f64 = value
        .parse()
        .map_err(|_| format!("{key}={value}: not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!(
            "{key}={value}: a probability must be between 0 and 1"
        ))
    }
}

fn duration(key: &str, value: &str) -> Result<Duration, String> {
    let bad = || format!("{key}={value}: expected a duration such as 10ms, 500us or 1s");
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    // "ms" and "us" end in "s" too, so they are tried first.
    let (digits, make): (&str, fn(u64) -> Duration) = if let Some(d) = value.strip_suffix("ms") {
        (d, Duration::from_millis)
    } else if let Some(d) = value.strip_suffix("us") {
        (d, Duration::from_micros)
    } else if let Some(d) = value.strip_suffix('s') {
        (d, Duration::from_secs)
    } else {
        return Err(bad());
    };
    digits.trim().parse().map(make).map_err(|_| bad())
}

/// Counts of the faults a [`Faulty`] has injected, both directions together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Packets dropped by `loss`.
    pub lost: u64,
    /// Extra copies made by `duplicate`.
    pub duplicated: u64,
    /// Packets held back by `reorder`.
    pub reordered: u64,
    /// Packets with a flipped bit.
    pub corrupted: u64,
    /// Packets dropped because too many were already held.
    pub overflowed: u64,
}

/// A link wrapper that injects the faults of a [`FaultConfig`] into the
/// packets it sends and receives.
#[derive(Debug)]
pub struct Faulty<L: Link> {
    inner: L,
    config: FaultConfig,
    rng: SplitMix64,
    rx: Side,
    tx: Side,
    /// Tie-breaker that keeps packets with equal release times in order.
    seq: u64,
    /// Where packets from the inner link land before faults are applied.
    scratch: Vec<u8>,
    spare: Vec<Vec<u8>>,
    stats: FaultStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Rx,
    Tx,
}

#[derive(Debug, Default)]
struct Side {
    held: BinaryHeap<Reverse<Held>>,
    /// A packet picked for reordering, and when it is released regardless.
    reorder: Option<(Vec<u8>, Instant)>,
}

#[derive(Debug)]
struct Held {
    release: Instant,
    seq: u64,
    data: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Held) -> Ordering {
        (self.release, self.seq).cmp(&(other.release, other.seq))
    }
}

impl<L: Link> Faulty<L> {
    /// Wraps `inner`, injecting the faults of `config` in both directions.
    pub fn new(inner: L, config: FaultConfig) -> Faulty<L> {
        let scratch = vec![0; inner.max_packet().max(1)];
        Faulty {
            inner,
            rng: SplitMix64(config.seed),
            config,
            rx: Side::default(),
            tx: Side::default(),
            seq: 0,
            scratch,
            spare: Vec::new(),
            stats: FaultStats::default(),
        }
    }

    /// The faults injected so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// The wrapped link.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The wrapped link, mutably.
    pub fn inner_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    fn side(&mut self, dir: Dir) -> &mut Side {
        match dir {
            Dir::Rx => &mut self.rx,
            Dir::Tx => &mut self.tx,
        }
    }

    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.unit() < p
    }

    fn buffer(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        buf
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE_LIMIT {
            self.spare.push(buf);
        }
    }

    fn release_time(&mut self, from: Instant) -> Instant {
        let jitter = self.config.jitter.as_micros().min(u128::from(u64::MAX - 1)) as u64;
        let extra = if jitter == 0 {
            0
        } else {
            self.rng.below(jitter + 1)
        };
        from + self.config.delay + Duration::from_micros(extra)
    }

    fn schedule(&mut self, dir: Dir, release: Instant, data: Vec<u8>) {
        if self.side(dir).held.len() >= HELD_LIMIT {
            self.stats.overflowed += 1;
            self.recycle(data);
            return;
        }
        self.seq += 1;
        let seq = self.seq;
        self.side(dir)
            .held
            .push(Reverse(Held { release, seq, data }));
    }

    /// Applies loss and duplication, then passes each copy on to `emit`.
    fn process(&mut self, dir: Dir, now: Instant, packet: &[u8]) {
        if self.roll(self.config.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.roll(self.config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.emit(dir, now, packet);
        }
    }

    /// Applies corruption, reordering and delay to one copy of a packet.
    fn emit(&mut self, dir: Dir, now: Instant, packet: &[u8]) {
        let mut data = self.buffer(packet);
        if !data.is_empty() && self.roll(self.config.corrupt) {
            let byte = self.rng.below(data.len() as u64) as usize;
            let bit = self.rng.below(8);
            data[byte] ^= 1 << bit;
            self.stats.corrupted += 1;
        }
        if self.side(dir).reorder.is_none() && self.roll(self.config.reorder) {
            self.stats.reordered += 1;
            self.side(dir).reorder = Some((data, now + REORDER_MAX_HOLD));
            return;
        }
        let release = self.release_time(now);
        self.schedule(dir, release, data);
        // The held-back packet goes right behind this one: same release
        // time, later sequence number.
        if let Some((held, _)) = self.side(dir).reorder.take() {
            self.schedule(dir, release, held);
        }
    }

    /// Releases a reorder-held packet whose successor never came.
    fn expire_reorder(&mut self, dir: Dir, now: Instant) {
        let expired = matches!(self.side(dir).reorder, Some((_, deadline)) if deadline <= now);
        if expired {
            if let Some((data, deadline)) = self.side(dir).reorder.take() {
                let release = self.release_time(deadline);
                self.schedule(dir, release, data);
            }
        }
    }

    /// Passes every sent packet due by `now` to the inner link.
    fn flush_tx(&mut self, now: Instant) -> io::Result<()> {
        self.expire_reorder(Dir::Tx, now);
        while self.tx.held.peek().is_some_and(|h| h.0.release <= now) {
            let Some(Reverse(held)) = self.tx.held.pop() else {
                break;
            };
            let result = self.inner.send(now, &held.data);
            self.recycle(held.data);
            result?;
        }
        Ok(())
    }

    fn pop_due_rx(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.rx.held.peek().is_none_or(|h| h.0.release > now) {
            return None;
        }
        let Reverse(held) = self.rx.held.pop()?;
        let n = held.data.len().min(buf.len());
        buf[..n].copy_from_slice(&held.data[..n]);
        self.recycle(held.data);
        Some(n)
    }
}

impl<L: Link> Link for Faulty<L> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.flush_tx(now)?;
        self.expire_reorder(Dir::Rx, now);
        for _ in 0..RECV_BATCH {
            if let Some(n) = self.pop_due_rx(now, buf) {
                return Ok(Some(n));
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let received = self.inner.recv(now, &mut scratch);
            if let Ok(Some(n)) = received {
                self.process(Dir::Rx, now, &scratch[..n]);
            }
            self.scratch = scratch;
            if received?.is_none() {
                break;
            }
        }
        Ok(self.pop_due_rx(now, buf))
    }

    fn send(&mut self, now: Instant, packet: &[u8]) -> io::Result<()> {
        // Earlier packets that are due go first, so that without delay the
        // order on the wire is the order of the calls.
        self.flush_tx(now)?;
        self.process(Dir::Tx, now, packet);
        self.flush_tx(now)
    }

    fn readable_fd(&self) -> Option<RawFd> {
        self.inner.readable_fd()
    }

    fn next_release(&self) -> Option<Instant> {
        let mut earliest = self.inner.next_release();
        for side in [&self.rx, &self.tx] {
            let candidates = [
                side.held.peek().map(|h| h.0.release),
                side.reorder.as_ref().map(|(_, deadline)| *deadline),
            ];
            for t in candidates.into_iter().flatten() {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        earliest
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn max_packet(&self) -> usize {
        self.inner.max_packet()
    }
}

/// SplitMix64: tiny, fast, and good enough to draw faults (and the random
/// cases of tests); any seed (including 0) gives a full-period sequence.
#[derive(Debug)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (n > 0); the modulo bias is irrelevant for n far
    /// below 2^64.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
#[path = "faults_tests.rs"]
mod tests;
