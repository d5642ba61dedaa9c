//! What happens when a deadline passes: retransmission (RFC 6298),
//! delayed ACKs, zero-window probes, TIME-WAIT and FIN-WAIT-2 expiry.

use super::seq;
use super::state::State;
use super::tcb::Tcb;
use crate::error::Error;
use crate::time::Instant;

impl Tcb {
    /// Runs every timer whose deadline is at or before `now`.
    pub fn on_timer(&mut self, now: Instant) {
        if self.time_wait_deadline.is_some_and(|d| d <= now) {
            self.time_wait_deadline = None;
            self.enter_closed();
            return;
        }
        if self.fin_wait2_deadline.is_some_and(|d| d <= now) {
            self.fin_wait2_deadline = None;
            if self.state == State::FinWait2 {
                self.enter_closed();
                return;
            }
        }
        if self.keepalive_deadline.is_some_and(|d| d <= now) {
            self.on_keepalive_timer(now);
            if self.state == State::Closed {
                return;
            }
        }
        if self.rto_deadline.is_some_and(|d| d <= now) {
            self.rto_deadline = None;
            self.on_retransmission_timeout(now);
        }
        if self.rack_deadline.is_some_and(|d| d <= now) {
            self.detect_losses(now);
        }
        if self.pto_deadline.is_some_and(|d| d <= now) {
            self.pto_deadline = None;
            // Not into a window the peer shrank below what is out: it
            // would drop the probe unread (the RTO and persist timer deal
            // with a shut window).
            let edge = self.snd_una.wrapping_add(self.snd_wnd);
            if self.snd_una != self.snd_max
                && !self.cc.in_recovery()
                && self.state.is_synchronized()
                && !seq::gt(self.snd_max, edge)
            {
                // Nothing came back for two round trips: resend the last
                // segment so that a lost tail shows up as a SACK or a
                // duplicate ACK, not a retransmission timeout.
                self.tlp_pending = true;
                self.tlp_done = true;
                self.stats.tail_loss_probes += 1;
            }
        }
        if self.ack_deadline.is_some_and(|d| d <= now) {
            self.ack_deadline = None;
            self.ack_now = true;
        }
        if self.persist_deadline.is_some_and(|d| d <= now) {
            self.persist_deadline = None;
            self.persist_backoff = (self.persist_backoff + 1).min(16);
            // A peer that answers keeps the connection alive however long
            // its window stays shut; one that stops answering is given up
            // on like unacknowledged data.
            self.persist_probes += 1;
            if self.persist_probes > self.cfg.retries {
                self.fail(Error::TimedOut);
                return;
            }
            self.persist_probe = true;
        }
    }

    fn on_retransmission_timeout(&mut self, now: Instant) {
        if self.snd_una == self.snd_max {
            return;
        }
        self.retries += 1;
        let limit = match self.state {
            State::SynSent | State::SynReceived => self.cfg.syn_retries,
            _ => self.cfg.retries,
        };
        if self.retries > limit || self.user_timeout_expired(now) {
            if self.state == State::SynReceived && self.passive {
                self.enter_closed();
            } else {
                // An ICMP error seen meanwhile says more than "timed out".
                let err = self.soft_error.take().unwrap_or(Error::TimedOut);
                self.fail(err);
            }
            return;
        }
        self.stats.timeouts += 1;
        self.rtt.back_off();
        self.rtt_probe = None;
        let flight = seq::dist(self.snd_una, self.snd_max);
        if self.state.is_synchronized() {
            self.cc.on_timeout(now, flight, self.snd_max);
        } else {
            self.cc.on_syn_timeout();
        }
        // Go back N: everything after SND.UNA is sent again, window permitting.
        self.snd_nxt = self.snd_una;
        self.fast_retransmit = false;
        self.force_resend = false;
        // Go back N resends everything; loss marks say nothing more.
        self.sent.unmark_all();
        self.rack_deadline = None;
        self.pto_deadline = None;
        self.tlp_pending = false;
        self.tlp_done = false;
        if self.retries >= 2 {
            // A second timeout in a row: the peer may have dropped what it
            // SACKed (RFC 2018 allows it), so resend everything.
            self.scoreboard.clear();
        }
        let data_end = self.data_seq().wrapping_add(self.send_buf.len() as u32);
        if self.snd_wnd == 0 && self.state.is_synchronized() && seq::lt(self.snd_una, data_end) {
            // The peer shrank its window to nothing: no retransmission
            // fits, so the persist timer takes over and probes it.
            self.rto_deadline = None;
            return;
        }
        self.rto_deadline = Some(self.rto_at(now));
    }
}
