//! HyStart++ (RFC 9406): leave slow start when the round-trip time starts
//! to climb (a queue is building), before slow start overshoots into a
//! burst of losses. Slow start is watched per round; a round ends when the
//! data sent at its start is acknowledged.

use super::AckSample;
use std::time::Duration;

/// RTT samples a round needs before its minimum is trusted.
const N_RTT_SAMPLE: u32 = 8;
/// Bounds of the RTT increase that counts as a queue building.
const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
/// Conservative slow start grows this many times more slowly.
pub const CSS_GROWTH_DIVISOR: usize = 4;
/// Rounds of conservative slow start before congestion avoidance.
const CSS_ROUNDS: u32 = 5;

/// Where slow start stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Ordinary slow start.
    SlowStart,
    /// Conservative slow start: the RTT rose; grow a quarter as fast.
    Conservative,
    /// Slow start is over: set ssthresh to cwnd and go on in avoidance.
    Exit,
}

/// HyStart++'s state for one connection.
#[derive(Clone, Debug, Default)]
pub struct HyStart {
    /// The round ends when this sequence number is acknowledged.
    window_end: Option<u32>,
    last_round_min: Option<Duration>,
    current_round_min: Option<Duration>,
    samples: u32,
    /// Set in conservative slow start: the round minimum that began it.
    css_baseline: Option<Duration>,
    css_rounds: u32,
    /// HyStart++ no longer watches: plain slow start (up to ssthresh).
    done: bool,
}

impl HyStart {
    /// The phase slow start is in (never `Exit`: that is an answer of
    /// [`HyStart::on_ack`], once).
    fn phase(&self) -> Phase {
        if self.css_baseline.is_some() {
            Phase::Conservative
        } else {
            Phase::SlowStart
        }
    }

    /// Slow start is over for good (a loss, or HyStart++ ended it): RFC
    /// 9406 runs only in the initial slow start; after a timeout, slow
    /// start up to ssthresh is bounded anyway.
    pub fn finish(&mut self) {
        self.done = true;
    }

    /// Takes one ACK in slow start and says how to grow. `Exit` comes once,
    /// when HyStart++ ends slow start; after that (or after `finish`) it
    /// answers `SlowStart`: slow start below a known ssthresh is plain.
    pub fn on_ack(&mut self, s: &AckSample) -> Phase {
        if self.done {
            return Phase::SlowStart;
        }
        if self
            .window_end
            .is_none_or(|end| crate::tcp::seq::ge(s.ack, end))
        {
            self.window_end = Some(s.snd_max);
            self.last_round_min = self.current_round_min;
            self.current_round_min = None;
            self.samples = 0;
            if self.css_baseline.is_some() {
                self.css_rounds += 1;
                if self.css_rounds >= CSS_ROUNDS {
                    self.done = true;
                    return Phase::Exit;
                }
            }
        }
        if let Some(rtt) = s.rtt {
            self.current_round_min = Some(self.current_round_min.map_or(rtt, |m| m.min(rtt)));
            self.samples += 1;
        }
        let current = match self.current_round_min {
            Some(c) if self.samples >= N_RTT_SAMPLE => c,
            _ => return self.phase(),
        };
        match (self.css_baseline, self.last_round_min) {
            (Some(baseline), _) if current < baseline => {
                // The rise was a blip: back to ordinary slow start.
                self.css_baseline = None;
            }
            (None, Some(last)) => {
                let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                if current >= last + thresh {
                    self.css_baseline = Some(current);
                    self.css_rounds = 0;
                }
            }
            _ => {}
        }
        self.phase()
    }
}
