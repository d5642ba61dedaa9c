//! CUBIC (RFC 9438): after a loss the window follows a cubic curve of the
//! time since the loss — fast while far below the window where the loss
//! happened, flat near it, probing faster again beyond it — so a long fat
//! path refills in seconds rather than Reno's one segment per round trip.
//! Slow start is HyStart++ (RFC 9406).

use super::hystart::{HyStart, Phase, CSS_GROWTH_DIVISOR};
use super::reno::slow_start;
use super::{window_in_use, AckSample, CongestionControl};
use crate::time::Instant;

/// The multiplicative decrease factor β_cubic.
const BETA: f64 = 0.7;
/// The scaling constant C, in segments per second cubed.
const C: f64 = 0.4;
/// The Reno-friendly additive increase α_cubic = 3(1 − β)/(1 + β).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// CUBIC's window and the curve it follows. Windows in bytes, the curve
/// in segments and seconds as RFC 9438 writes it.
#[derive(Clone, Debug)]
pub struct Cubic {
    mss: usize,
    cwnd: f64,
    ssthresh: usize,
    /// The window (segments) just before the last reduction.
    w_max: f64,
    /// The start of the current congestion-avoidance epoch.
    epoch: Option<Instant>,
    /// Seconds from the epoch start until the curve reaches `w_max`.
    k: f64,
    /// The window Reno would have now (segments), for the Reno-friendly
    /// region where CUBIC must not be slower than Reno.
    w_est: f64,
    hystart: HyStart,
}

impl Cubic {
    /// A window of `cwnd` bytes with threshold `ssthresh`.
    pub fn new(mss: usize, cwnd: usize, ssthresh: usize) -> Cubic {
        Cubic {
            mss: mss.max(1),
            cwnd: cwnd as f64,
            ssthresh,
            w_max: 0.0,
            epoch: None,
            k: 0.0,
            w_est: 0.0,
            hystart: HyStart::default(),
        }
    }

    fn segments(&self) -> f64 {
        self.cwnd / self.mss as f64
    }

    /// W_cubic(t) of RFC 9438 (4.2), in segments.
    fn w_cubic(&self, t: f64) -> f64 {
        C * (t - self.k).powi(3) + self.w_max
    }

    /// The multiplicative decrease shared by fast retransmit and timeout,
    /// with fast convergence (4.7): a flow whose loss came below its last
    /// W_max releases bandwidth to newer flows.
    fn reduce(&mut self) {
        let w = self.segments();
        self.w_max = if w < self.w_max {
            w * (1.0 + BETA) / 2.0
        } else {
            w
        };
        self.ssthresh = ((self.cwnd * BETA) as usize).max(2 * self.mss);
        self.epoch = None;
        self.hystart.finish();
    }

    fn avoidance(&mut self, s: &AckSample) {
        let mss = self.mss as f64;
        let epoch = *self.epoch.get_or_insert_with(|| {
            let w = self.cwnd / mss;
            if self.w_max <= w {
                // No loss yet, or the window is past the old maximum: the
                // curve starts flat here and probes upwards.
                self.w_max = w;
                self.k = 0.0;
            } else {
                self.k = ((self.w_max - w) / C).cbrt();
            }
            self.w_est = w;
            s.now
        });
        let w = self.cwnd / mss;
        let acked = s.acked as f64 / mss;
        let alpha = if self.w_est >= self.w_max { 1.0 } else { ALPHA };
        self.w_est += alpha * acked / w;
        let rtt = s.min_rtt.map_or(0.0, |d| d.as_secs_f64());
        let t = s.now.saturating_since(epoch).as_secs_f64();
        let next = if self.w_cubic(t) < self.w_est {
            // Reno-friendly region (4.3).
            self.w_est
        } else {
            // Concave or convex region (4.4, 4.5): close the gap to where
            // the curve will be one round trip from now.
            let target = self.w_cubic(t + rtt).clamp(w, 1.5 * w);
            w + (target - w) * acked / w
        };
        self.cwnd = next.max(w) * mss;
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }

    fn window(&self) -> usize {
        self.cwnd as usize
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn set_mss(&mut self, mss: usize) {
        self.mss = mss.max(1);
    }

    fn set_window(&mut self, cwnd: usize) {
        self.cwnd = cwnd as f64;
        self.epoch = None;
    }

    fn on_ack(&mut self, s: &AckSample) {
        if !window_in_use(s, self.window(), self.mss) {
            return;
        }
        if self.window() < self.ssthresh {
            let cwnd = self.window();
            let grown = match self.hystart.on_ack(s) {
                Phase::SlowStart => slow_start(cwnd, s.acked, self.ssthresh, self.mss),
                Phase::Conservative => {
                    let step = (s.acked / CSS_GROWTH_DIVISOR).max(1);
                    slow_start(cwnd, step, self.ssthresh, self.mss)
                }
                Phase::Exit => {
                    // HyStart++ ended slow start without a loss.
                    self.ssthresh = cwnd;
                    cwnd
                }
            };
            self.cwnd = grown as f64;
            return;
        }
        self.avoidance(s);
    }

    fn on_congestion(&mut self, _now: Instant, _flight: usize) {
        self.reduce();
        self.cwnd = self.ssthresh as f64;
    }

    fn on_recovery_end(&mut self, _now: Instant) {
        self.cwnd = self.ssthresh.max(2 * self.mss) as f64;
        self.epoch = None;
    }

    fn on_timeout(&mut self, _now: Instant, _flight: usize) {
        self.reduce();
        self.cwnd = self.mss as f64;
    }
}
