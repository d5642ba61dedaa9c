//! Congestion control: slow start, congestion avoidance, fast retransmit
//! and fast recovery, NewReno style (RFC 5681, RFC 6582).

/// The congestion window and the state around it, in bytes.
#[derive(Clone, Debug)]
pub struct Congestion {
    mss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged in congestion avoidance, not yet turned into growth.
    acked_in_ca: usize,
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
}

/// RFC 6928's initial window: min(10·MSS, max(2·MSS, 14600)).
fn initial_window(mss: usize) -> usize {
    (10 * mss).min((2 * mss).max(14600))
}

/// Duplicate ACKs that signal a loss (RFC 5681, 3.2).
pub const DUP_ACK_THRESHOLD: u32 = 3;

impl Congestion {
    /// Initial window per RFC 6928: min(10·MSS, max(2·MSS, 14600)).
    pub fn new(mss: usize) -> Congestion {
        let mss = mss.max(1);
        Congestion {
            mss,
            cwnd: initial_window(mss),
            ssthresh: usize::MAX,
            acked_in_ca: 0,
            recover: None,
            dup_acks: 0,
            sack: false,
            syn_lost: false,
            rto_recover: None,
        }
    }

    /// The SYN timed out and goes again: once connected, the sender starts
    /// with one segment (RFC 5681, 3.1; RFC 6298, 5.7).
    pub fn on_syn_timeout(&mut self) {
        self.syn_lost = true;
        self.cwnd = self.mss;
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
        self.cwnd = self.cwnd.min(restart);
        self.acked_in_ca = 0;
    }

    /// Switches to SACK-based accounting (the sender subtracts SACKed bytes
    /// from what it counts as in flight).
    pub fn set_sack(&mut self, on: bool) {
        self.sack = on;
    }

    /// The congestion window.
    pub fn window(&self) -> usize {
        self.cwnd
    }

    /// The slow-start threshold.
    pub fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    /// True during fast recovery.
    pub fn in_recovery(&self) -> bool {
        self.recover.is_some()
    }

    /// Updates the segment size (after the handshake settles the MSS).
    pub fn set_mss(&mut self, mss: usize) {
        let mss = mss.max(1);
        if self.ssthresh == usize::MAX && self.dup_acks == 0 {
            self.cwnd = if self.syn_lost {
                mss
            } else {
                initial_window(mss)
            };
        }
        self.mss = mss;
    }

    /// New data was acknowledged. `ack` is the new SND.UNA. Returns true when
    /// a partial ACK in recovery asks for the next hole to be retransmitted.
    pub fn on_ack(&mut self, ack: u32, acked: usize, flight_before: usize) -> bool {
        self.dup_acks = 0;
        if self.rto_recover.is_some_and(|r| super::seq::gt(ack, r)) {
            self.rto_recover = None;
        }
        if let Some(recover) = self.recover {
            if super::seq::ge(ack, recover) {
                // Full ACK: leave recovery with cwnd = ssthresh (RFC 6582,
                // 3.2 step 3, option 1). Option 2 bases it on what is still
                // in flight, often nothing: one segment, which a Linux peer
                // then answers only after its 40 ms delayed-ACK timer.
                let _ = flight_before;
                self.cwnd = self.ssthresh.max(2 * self.mss);
                self.recover = None;
                return false;
            }
            if !self.sack {
                // Partial ACK: deflate by what was acked, add one segment back.
                self.cwnd = self.cwnd.saturating_sub(acked) + self.mss;
            }
            return true;
        }
        // Only grow when the window was actually in use (RFC 7661 spirit).
        if flight_before + self.mss < self.cwnd / 2 {
            return false;
        }
        if self.cwnd < self.ssthresh {
            // Slow start by bytes acknowledged (RFC 3465), without its L = 2
            // cap: receive offloads send stretch ACKs covering many
            // segments, and Linux grows by all of them too. Not past
            // ssthresh in one step.
            self.cwnd = (self.cwnd + acked).min(self.ssthresh.max(self.cwnd + self.mss));
        } else {
            self.acked_in_ca += acked;
            if self.acked_in_ca >= self.cwnd {
                self.acked_in_ca -= self.cwnd;
                self.cwnd += self.mss;
            }
        }
        false
    }

    /// A duplicate ACK arrived while data is outstanding. Returns true when
    /// the first unacknowledged segment must be retransmitted now.
    pub fn on_dup_ack(&mut self, snd_max: u32, flight: usize) -> bool {
        self.on_dup_ack_with(snd_max, flight, DUP_ACK_THRESHOLD)
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
    pub fn on_dup_ack_with(&mut self, snd_max: u32, flight: usize, threshold: u32) -> bool {
        self.dup_acks += 1;
        if self.recover.is_some() {
            // Each further duplicate means a segment left the network
            // (with SACK the sender sees that in its pipe instead).
            if !self.sack {
                self.cwnd += self.mss;
            }
            return false;
        }
        if self.dup_acks >= threshold.clamp(1, DUP_ACK_THRESHOLD) && !self.after_timeout() {
            self.ssthresh = (flight / 2).max(2 * self.mss);
            self.cwnd = if self.sack {
                self.ssthresh
            } else {
                self.ssthresh + 3 * self.mss
            };
            self.recover = Some(snd_max);
            return true;
        }
        false
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
    pub fn on_timeout(&mut self, flight: usize, snd_max: u32) {
        self.rto_recover = Some(snd_max);
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.mss;
        self.acked_in_ca = 0;
        self.recover = None;
        self.dup_acks = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_avoidance() {
        let mut c = Congestion::new(1000);
        assert_eq!(c.window(), 10_000);
        c.on_ack(1000, 1000, 10_000);
        assert_eq!(c.window(), 11_000);
        c.on_timeout(10_000, 50_000);
        assert_eq!(c.window(), 1000);
        assert_eq!(c.ssthresh(), 5000);
        for _ in 0..4 {
            c.on_ack(0, 1000, c.window());
        }
        assert_eq!(c.window(), 5000);
        // In avoidance: one MSS per window of acknowledged bytes.
        for _ in 0..5 {
            c.on_ack(0, 1000, c.window());
        }
        assert_eq!(c.window(), 6000);
    }

    #[test]
    fn fast_retransmit_and_recovery() {
        let mut c = Congestion::new(1000);
        assert!(!c.on_dup_ack(50_000, 10_000));
        assert!(!c.on_dup_ack(50_000, 10_000));
        assert!(c.on_dup_ack(50_000, 10_000));
        assert!(c.in_recovery());
        assert_eq!(c.window(), 8000);
        c.on_dup_ack(50_000, 10_000);
        assert_eq!(c.window(), 9000);
        // Partial ACK asks for another retransmission.
        assert!(c.on_ack(45_000, 1000, 10_000));
        assert!(!c.on_ack(50_000, 5000, 9000));
        assert!(!c.in_recovery());
        assert_eq!(c.window(), 5000);
    }
}
