//! The Tcb's side of loss detection: feeding each ACK's news (segments
//! cumulatively acknowledged, segments newly SACKed) to the sent record and
//! RACK, marking segments lost (RACK or RFC 6675), and entering recovery
//! when a loss is found.

use super::seq;
use super::tcb::Tcb;
use super::LossDetection;
use crate::time::Instant;
use crate::wire::SackBlock;
use std::time::Duration;

impl Tcb {
    /// A SACK block arrived (before it joins the scoreboard): the segments
    /// it newly covers were delivered.
    pub(super) fn note_sack_block(&mut self, now: Instant, b: &SackBlock, una: u32) {
        let lo = seq::max(b.start, una);
        if !seq::lt(lo, b.end) || seq::gt(b.end, self.snd_max) {
            return;
        }
        let min_rtt = self.rtt.min_rtt();
        let (sent, rack) = (&mut self.sent, &mut self.rack);
        self.scoreboard.for_each_gap(lo, b.end, |gs, ge| {
            let mut i = sent.index_after(gs);
            while let Some(s) = sent.get(i).copied() {
                if !seq::lt(s.start, ge) {
                    break;
                }
                if seq::le(lo, s.start) && seq::le(s.end, b.end) {
                    rack.on_delivered(&s, now, min_rtt);
                    sent.unmark(i);
                }
                i += 1;
            }
        });
    }

    /// SND.UNA advanced to `ack` (before the scoreboard forgets what lies
    /// below it): the segments it covers were delivered, those not SACKed
    /// before by this ACK. Returns the round trip of the latest of them
    /// sent only once (Karn's rule), to the microsecond.
    pub(super) fn note_cumulative_ack(&mut self, now: Instant, ack: u32) -> Option<Duration> {
        let min_rtt = self.rtt.min_rtt();
        let (board, rack) = (&self.scoreboard, &mut self.rack);
        let mut latest: Option<Instant> = None;
        self.sent.on_ack(ack, |s| {
            if !board.covers(s.start, s.end) {
                rack.on_delivered(s, now, min_rtt);
                if !s.retransmitted {
                    latest = Some(latest.map_or(s.at, |l| l.max(s.at)));
                }
            }
        });
        latest.map(|at| now.saturating_since(at))
    }

    /// The peer got a segment twice (its first SACK block is a D-SACK):
    /// reordering or a needless resend, never a loss.
    pub(super) fn on_dsack(&mut self, seg: &crate::wire::TcpSegment) {
        let Some(b) = seg.options.sack().first() else {
            return;
        };
        self.stats.dsacks_received += 1;
        self.rack.on_dsack();
        if self.cc.on_dsack(b.start, b.end) {
            self.stats.spurious_recoveries_undone += 1;
        }
    }

    /// True when RACK finds losses on this connection (it needs SACK to
    /// see deliveries beyond SND.UNA).
    pub(super) fn rack_on(&self) -> bool {
        self.sack_ok && self.cfg.loss_detection == LossDetection::Rack
    }

    /// Marks lost what the ACKs so far show lost and starts recovery if
    /// this is the first loss of the flight. Run after every ACK and when
    /// RACK's reordering timer fires.
    pub(super) fn detect_losses(&mut self, now: Instant) {
        self.rack.end_of_ack();
        self.rack_deadline = None;
        if !self.sack_ok || !self.state.is_synchronized() || self.snd_una == self.snd_max {
            return;
        }
        let mss = self.send_mss.max(1);
        let newly = if self.rack_on() {
            let srtt = self.rtt.srtt().unwrap_or(self.cfg.initial_rto);
            let min_rtt = self.rtt.min_rtt().unwrap_or(srtt);
            let sacked_segments = self.scoreboard.sacked_bytes() / mss;
            let reo_wnd = self
                .rack
                .reo_wnd(self.cc.in_recovery(), sacked_segments, min_rtt, srtt);
            let (newly, timer) =
                self.rack
                    .detect(&mut self.sent, &self.scoreboard, self.snd_una, now, reo_wnd);
            // Never later than the RTO would have fired anyway.
            self.rack_deadline = timer.map(|t| t.max(now + Duration::from_millis(1)));
            newly
        } else {
            super::sack_recovery::mark_lost(&mut self.sent, &self.scoreboard, mss)
        };
        if newly && !self.cc.in_recovery() {
            self.start_recovery(now);
        }
    }

    /// The first loss of a flight: the window shrinks once, and the first
    /// lost segment goes again at once whatever the pipe (RFC 6675, 5 step
    /// 4.3); the rest follow as the pipe allows.
    pub(super) fn start_recovery(&mut self, now: Instant) {
        let flight = seq::dist(self.snd_una, self.snd_max);
        self.cc.enter_recovery(now, self.snd_max, flight);
        if self.sack_ok {
            self.force_resend = true;
        } else {
            self.fast_retransmit = true;
        }
        self.rtt_probe = None;
        self.pto_deadline = None;
    }

    /// The segment at SND.UNA must go again now, whatever the pipe (fast
    /// retransmit on duplicate ACKs, a lost retransmission). With SACK it
    /// is marked lost, so it goes once even if recovery restarts; without,
    /// NewReno resends the first hole.
    pub(super) fn resend_head(&mut self) {
        self.rtt_probe = None;
        if self.sack_ok {
            self.sent.mark_lost(0);
            self.force_resend = true;
        } else {
            self.fast_retransmit = true;
        }
    }
}
