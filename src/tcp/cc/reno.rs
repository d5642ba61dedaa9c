//! NewReno's window (RFC 5681): slow start by bytes acknowledged, one
//! segment per window in congestion avoidance, half the flight on loss.

use super::{window_in_use, AckSample, CongestionControl};
use crate::time::Instant;

/// The Reno window, in bytes.
#[derive(Clone, Debug)]
pub struct Reno {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged in congestion avoidance, not yet turned into growth.
    acked_in_ca: usize,
}

impl Reno {
    /// A window of `cwnd` bytes with threshold `ssthresh`.
    pub fn new(mss: usize, cwnd: usize, ssthresh: usize) -> Reno {
        Reno {
            mss: mss.max(1),
            cwnd,
            ssthresh,
            acked_in_ca: 0,
        }
    }
}

/// Slow start by bytes acknowledged (RFC 3465), without its L = 2 cap:
/// receive offloads make stretch ACKs covering many segments, and Linux
/// grows by all of them too. Never past ssthresh in one step.
pub(super) fn slow_start(cwnd: usize, acked: usize, ssthresh: usize, mss: usize) -> usize {
    (cwnd + acked).min(ssthresh.max(cwnd + mss))
}

impl CongestionControl for Reno {
    fn name(&self) -> &'static str {
        "reno"
    }

    fn window(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
    }

    fn set_window(&mut self, cwnd: usize) {
        self.cwnd = cwnd;
        self.acked_in_ca = 0;
    }

    fn on_ack(&mut self, s: &AckSample) {
        if !window_in_use(s, self.cwnd, self.mss) {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = slow_start(self.cwnd, s.acked, self.ssthresh, self.mss);
        } else {
            self.acked_in_ca += s.acked;
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd += self.mss;
            }
        }
    }

    fn on_congestion(&mut self, _now: Instant, flight: usize) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.ssthresh;
        self.acked_in_ca = 0;
    }

    fn on_recovery_end(&mut self, _now: Instant) {
        // RFC 6582, 3.2 step 3, option 1. Option 2 bases it on what is still
        // in flight, often nothing: one segment, which a Linux peer then
        // answers only after its 40 ms delayed-ACK timer.
        self.cwnd = self.ssthresh.max(2 * self.mss);
    }

    fn on_timeout(&mut self, _now: Instant, flight: usize) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.mss;
        self.acked_in_ca = 0;
    }
}
