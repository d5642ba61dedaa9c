//! Loss recovery around the congestion window: fast retransmit and fast
//! recovery (RFC 5681, RFC 6582 NewReno, RFC 6675 with SACK), the recovery
//! point, limited transmit, the timeout. How the window itself grows and
//! shrinks is the algorithm's business (`tcp/cc`, TCP_CONGESTION).

use super::cc::{AckSample, Algorithm, CongestionControl, Controller};
use crate::time::Instant;

/// The congestion window and the loss-recovery state around it, in bytes.
#[derive(Clone, Debug)]
pub struct Congestion {
    mss: usize,
    cc: Controller,
    /// NewReno's window inflation during recovery without SACK: one
    /// segment per duplicate ACK (segments that left the network), less
    /// what partial ACKs acknowledged.
    inflation: usize,
    /// Set during fast recovery: the highest sequence number sent when loss
    /// was detected; recovery ends when it is acknowledged.
    recover: Option<u32>,
    dup_acks: u32,
    /// The peer sends SACK: the sender counts what is really in flight
    /// (RFC 6675 "pipe"), so recovery keeps cwnd at ssthresh instead of
    /// inflating and deflating it as NewReno must.
    sack: bool,
    /// The SYN (or SYN|ACK) had to be sent again: start with one segment.
    syn_lost: bool,
    /// After a retransmission timeout, the highest sequence number sent
    /// then: duplicate ACKs below it start no fast retransmit (RFC 6582, 4).
    rto_recover: Option<u32>,
    /// The algorithm as it was before the last loss episode cut the window,
    /// and the episode's retransmissions not yet shown needless: when
    /// D-SACKs show every one was (reordering, not loss), the cut is undone
    /// (RFC 3708's detection, Linux's DSACK undo). Only a D-SACK for one of
    /// those resends counts: the network duplicating an original says
    /// nothing about the episode. An episode with more resends than are
    /// remembered was real loss: it is not undone.
    undo: Option<Controller>,
    undo_ranges: Vec<(u32, u32)>,
}

/// Resends of one episode remembered for undo.
const UNDO_RANGES: usize = 16;

/// RFC 6928's initial window: min(10·MSS, max(2·MSS, 14600)).
fn initial_window(mss: usize) -> usize {
    (10 * mss).min((2 * mss).max(14600))
}

/// Duplicate ACKs that signal a loss (RFC 5681, 3.2).
pub const DUP_ACK_THRESHOLD: u32 = 3;

impl Congestion {
    /// The default algorithm with the initial window of RFC 6928.
    pub fn new(mss: usize) -> Congestion {
        Congestion::with_algorithm(mss, Algorithm::default())
    }

    /// `alg` with the initial window of RFC 6928.
    pub fn with_algorithm(mss: usize, alg: Algorithm) -> Congestion {
        let mss = mss.max(1);
        Congestion {
            mss,
            cc: Controller::new(alg, mss, initial_window(mss), usize::MAX),
            inflation: 0,
            recover: None,
            dup_acks: 0,
            sack: false,
            syn_lost: false,
            rto_recover: None,
            undo: None,
            undo_ranges: Vec::new(),
        }
    }

    /// The algorithm in use.
    pub fn algorithm(&self) -> Algorithm {
        self.cc.algorithm()
    }

    /// Switches the algorithm (TCP_CONGESTION), keeping the window and the
    /// threshold the connection has learnt.
    pub fn set_algorithm(&mut self, alg: Algorithm) {
        if alg != self.cc.algorithm() {
            self.cc = Controller::new(alg, self.mss, self.cc.window(), self.cc.ssthresh());
        }
    }

    /// The SYN timed out and goes again: once connected, the sender starts
    /// with one segment (RFC 5681, 3.1; RFC 6298, 5.7).
    pub fn on_syn_timeout(&mut self) {
        self.syn_lost = true;
        self.cc.set_window(self.mss);
    }

    /// The sender was idle for longer than an RTO: it may not send its old
    /// window in one burst; it restarts from the initial window (RFC 5681,
    /// 4.1), keeping ssthresh as a memory of the path.
    pub fn restart_after_idle(&mut self) {
        let restart = if self.syn_lost {
            self.mss
        } else {
            initial_window(self.mss)
        };
        self.cc.set_window(self.cc.window().min(restart));
    }

    /// Switches to SACK-based accounting (the sender subtracts SACKed bytes
    /// from what it counts as in flight).
    pub fn set_sack(&mut self, on: bool) {
        self.sack = on;
    }

    /// The congestion window.
    pub fn window(&self) -> usize {
        self.cc.window() + self.inflation
    }

    /// The slow-start threshold.
    pub fn ssthresh(&self) -> usize {
        self.cc.ssthresh()
    }

    /// True during fast recovery.
    pub fn in_recovery(&self) -> bool {
        self.recover.is_some()
    }

    /// Updates the segment size (after the handshake settles the MSS).
    pub fn set_mss(&mut self, mss: usize) {
        let mss = mss.max(1);
        if self.cc.ssthresh() == usize::MAX && self.dup_acks == 0 {
            self.cc.set_window(if self.syn_lost {
                mss
            } else {
                initial_window(mss)
            });
        }
        self.mss = mss;
        self.cc.set_mss(mss);
    }

    /// New data was acknowledged (`s.ack` is the new SND.UNA). Returns true
    /// when a partial ACK in recovery asks for the next hole to be
    /// retransmitted.
    pub fn on_ack(&mut self, s: &AckSample) -> bool {
        self.dup_acks = 0;
        if self.rto_recover.is_some_and(|r| super::seq::gt(s.ack, r)) {
            self.rto_recover = None;
        }
        if let Some(recover) = self.recover {
            if super::seq::ge(s.ack, recover) {
                self.recover = None;
                self.inflation = 0;
                self.cc.on_recovery_end(s.now);
                return false;
            }
            if !self.sack {
                // Partial ACK: deflate by what was acked, add one segment back.
                let total = self.window().saturating_sub(s.acked) + self.mss;
                self.inflation = total.saturating_sub(self.cc.window());
            }
            return true;
        }
        self.cc.on_ack(s);
        false
    }

    /// A duplicate ACK arrived while data is outstanding. Returns true when
    /// the first unacknowledged segment must be retransmitted now.
    pub fn on_dup_ack(&mut self, now: Instant, snd_max: u32, flight: usize) -> bool {
        self.on_dup_ack_with(now, snd_max, flight, DUP_ACK_THRESHOLD)
    }

    /// True while duplicate ACKs may still be echoes of the flight a
    /// retransmission timeout already dealt with (RFC 6582, 4). NewReno
    /// only: with SACK the scoreboard tells new losses from old echoes, and
    /// holding back their fast retransmit cost a timeout each (measured:
    /// 12–15 timeouts per 10 MB at 5 % loss became 22–24).
    fn after_timeout(&self) -> bool {
        self.rto_recover.is_some() && !self.sack
    }

    /// Like `on_dup_ack` with a lower threshold, for early retransmit
    /// (RFC 5827) when too few segments are out to produce three duplicates.
    pub fn on_dup_ack_with(
        &mut self,
        now: Instant,
        snd_max: u32,
        flight: usize,
        threshold: u32,
    ) -> bool {
        self.dup_acks += 1;
        if self.recover.is_some() {
            // Each further duplicate means a segment left the network
            // (with SACK the sender sees that in its pipe instead).
            if !self.sack {
                self.inflation += self.mss;
            }
            return false;
        }
        if self.dup_acks >= threshold.clamp(1, DUP_ACK_THRESHOLD) && !self.after_timeout() {
            self.enter_recovery(now, snd_max, flight);
            return true;
        }
        false
    }

    /// A loss was detected: the window shrinks once, and recovery lasts
    /// until everything sent so far (`snd_max`) is acknowledged. `flight`
    /// is SND.MAX − SND.UNA.
    pub fn enter_recovery(&mut self, now: Instant, snd_max: u32, flight: usize) {
        self.undo = Some(self.cc.clone());
        self.undo_ranges.clear();
        self.cc.on_congestion(now, flight);
        self.inflation = if self.sack { 0 } else { 3 * self.mss };
        self.recover = Some(snd_max);
    }

    /// `[start, end)` was sent again during recovery.
    pub fn on_retransmit(&mut self, start: u32, end: u32) {
        if self.recover.is_none() || self.undo.is_none() {
            return;
        }
        if self.undo_ranges.len() >= UNDO_RANGES {
            self.undo = None;
            return;
        }
        if self.undo_ranges.capacity() == 0 {
            self.undo_ranges.reserve_exact(UNDO_RANGES);
        }
        self.undo_ranges.push((start, end));
    }

    /// A D-SACK reported `[start, end)` received twice. Returns true when
    /// such reports have covered every resend of the last episode: its
    /// window cut is undone (and recovery, if still on, ends).
    pub fn on_dsack(&mut self, start: u32, end: u32) -> bool {
        use super::seq;
        if self.undo.is_none() || self.undo_ranges.is_empty() {
            return false;
        }
        self.undo_ranges
            .retain(|&(s, e)| !(seq::le(start, s) && seq::le(e, end)));
        if !self.undo_ranges.is_empty() {
            return false;
        }
        if let Some(before) = self.undo.take() {
            if before.window() > self.cc.window() {
                self.cc = before;
            }
        }
        self.recover = None;
        self.inflation = 0;
        true
    }

    /// Limited transmit (RFC 3042): segments beyond the window that the
    /// first two duplicate ACKs allow, so a small window still produces the
    /// third duplicate that triggers fast retransmit.
    pub fn limited_transmit(&self) -> usize {
        // With SACK the pipe already counts the segments that left.
        if !self.sack && self.recover.is_none() && self.dup_acks < DUP_ACK_THRESHOLD {
            self.dup_acks as usize * self.mss
        } else {
            0
        }
    }

    /// The retransmission timer expired (RFC 5681, 3.1, equation 4);
    /// `snd_max` is the highest sequence number sent so far.
    pub fn on_timeout(&mut self, now: Instant, flight: usize, snd_max: u32) {
        self.undo = None;
        if self.rto_recover.is_some() {
            // Backed-off timeouts of the same flight: the window was cut
            // once for it (as Linux does in its loss state).
            self.cc.set_window(self.mss);
        } else {
            self.cc.on_timeout(now, flight);
        }
        self.rto_recover = Some(snd_max);
        self.inflation = 0;
        self.recover = None;
        self.dup_acks = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(c: &mut Congestion, acked: usize, flight_before: usize) -> bool {
        c.on_ack(&AckSample {
            now: Instant::ZERO,
            acked,
            flight_before,
            ack: 0,
            snd_max: 0,
            rtt: None,
            min_rtt: None,
        })
    }

    #[test]
    fn slow_start_then_avoidance() {
        let mut c = Congestion::with_algorithm(1000, Algorithm::Reno);
        assert_eq!(c.window(), 10_000);
        ack(&mut c, 1000, 10_000);
        assert_eq!(c.window(), 11_000);
        c.on_timeout(Instant::ZERO, 10_000, 50_000);
        assert_eq!(c.window(), 1000);
        assert_eq!(c.ssthresh(), 5000);
        for _ in 0..4 {
            let w = c.window();
            ack(&mut c, 1000, w);
        }
        assert_eq!(c.window(), 5000);
        // In avoidance: one MSS per window of acknowledged bytes.
        for _ in 0..5 {
            let w = c.window();
            ack(&mut c, 1000, w);
        }
        assert_eq!(c.window(), 6000);
    }

    #[test]
    fn fast_retransmit_and_recovery() {
        let mut c = Congestion::with_algorithm(1000, Algorithm::Reno);
        let t = Instant::ZERO;
        assert!(!c.on_dup_ack(t, 50_000, 10_000));
        assert!(!c.on_dup_ack(t, 50_000, 10_000));
        assert!(c.on_dup_ack(t, 50_000, 10_000));
        assert!(c.in_recovery());
        assert_eq!(c.window(), 8000);
        c.on_dup_ack(t, 50_000, 10_000);
        assert_eq!(c.window(), 9000);
        // Partial ACK asks for another retransmission.
        let partial = AckSample {
            now: t,
            acked: 1000,
            flight_before: 10_000,
            ack: 45_000,
            snd_max: 50_000,
            rtt: None,
            min_rtt: None,
        };
        assert!(c.on_ack(&partial));
        assert_eq!(c.window(), 9000);
        let full = AckSample {
            acked: 5000,
            flight_before: 9000,
            ack: 50_000,
            ..partial
        };
        assert!(!c.on_ack(&full));
        assert!(!c.in_recovery());
        assert_eq!(c.window(), 5000);
    }

    #[test]
    fn repeated_timeouts_cut_the_threshold_once() {
        for alg in [Algorithm::Reno, Algorithm::Cubic] {
            let mut c = Congestion::with_algorithm(1000, alg);
            c.on_timeout(Instant::ZERO, 10_000, 50_000);
            let first = c.ssthresh();
            c.on_timeout(Instant::from_millis(1000), 10_000, 50_000);
            assert_eq!(c.ssthresh(), first, "{alg:?}");
            assert_eq!(c.window(), 1000);
        }
    }

    #[test]
    fn switching_algorithm_keeps_the_window() {
        let mut c = Congestion::with_algorithm(1000, Algorithm::Reno);
        c.on_timeout(Instant::ZERO, 20_000, 50_000);
        c.set_algorithm(Algorithm::Cubic);
        assert_eq!(c.algorithm(), Algorithm::Cubic);
        assert_eq!((c.window(), c.ssthresh()), (1000, 10_000));
    }
}
