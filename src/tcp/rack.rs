//! RACK (RFC 8985): a segment is lost when a segment sent after it was
//! delivered and more than a round trip plus a reordering window has
//! passed since it was sent. Time-based, so it finds a lost
//! retransmission or a lost tail as readily as a lost first segment, and
//! tolerates reordering up to the window instead of three duplicates.

use super::sent::{Sent, SentLog};
use super::seq;
use crate::time::Instant;
use std::time::Duration;

/// RACK's state for one connection (RFC 8985, 6.1).
#[derive(Clone, Debug, Default)]
pub struct Rack {
    /// Send time and end of the most recently sent segment delivered.
    xmit_ts: Option<Instant>,
    end_seq: u32,
    /// The RTT of that segment.
    rtt: Duration,
    /// The highest sequence number delivered (SACKed or acknowledged) by
    /// earlier ACKs, and by the one being processed.
    fack: Option<u32>,
    fack_now: Option<u32>,
    /// A segment arrived out of order without being resent: the path
    /// reorders, so the reordering window stays open.
    reordering_seen: bool,
    /// How many quarters of the minimum RTT the window spans, less one.
    reo_wnd_mult: u32,
}

impl Rack {
    /// A segment was delivered (cumulatively acknowledged or SACKed) by an
    /// ACK arriving `now` (RFC 8985, 6.2 steps 1–3).
    pub fn on_delivered(&mut self, s: &Sent, now: Instant, min_rtt: Option<Duration>) {
        let rtt = now.saturating_since(s.at);
        // A retransmission acknowledged sooner than any round trip is the
        // original's ACK: it says nothing about when the resend arrived.
        if s.retransmitted && min_rtt.is_some_and(|m| rtt < m) {
            return;
        }
        // Below what earlier ACKs already reported, never resent: it came
        // late. (Blocks of one ACK arrive in any order, so only earlier
        // ACKs count.)
        if let Some(fack) = self.fack {
            if seq::lt(s.end, fack) && !s.retransmitted {
                self.reordering_seen = true;
            }
        }
        if self.fack_now.is_none_or(|f| seq::gt(s.end, f)) {
            self.fack_now = Some(s.end);
        }
        let newer = match self.xmit_ts {
            None => true,
            Some(ts) => s.at > ts || (s.at == ts && seq::gt(s.end, self.end_seq)),
        };
        if newer {
            self.xmit_ts = Some(s.at);
            self.end_seq = s.end;
            self.rtt = rtt;
        }
    }

    /// A D-SACK arrived: a segment was resent needlessly, so the path
    /// reorders by more than the window allowed. The window opens, and
    /// widens by a quarter of the minimum RTT per D-SACK (RFC 8985, 6.2
    /// step 4), never past SRTT.
    pub fn on_dsack(&mut self) {
        self.reordering_seen = true;
        self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1).min(4);
    }

    /// The ACK's deliveries are all in: its highest becomes the reference
    /// for the next ACK's reordering check.
    pub fn end_of_ack(&mut self) {
        self.fack = self.fack_now;
    }

    /// True once the path was seen to reorder.
    pub fn reordering_seen(&self) -> bool {
        self.reordering_seen
    }

    /// The reordering window (6.2 step 4): none while no reordering was
    /// seen and recovery is under way (or enough is SACKed that three
    /// duplicates would have said the same); else a quarter of the
    /// minimum RTT, at most SRTT.
    pub fn reo_wnd(
        &self,
        in_recovery: bool,
        sacked_segments: usize,
        min_rtt: Duration,
        srtt: Duration,
    ) -> Duration {
        if !self.reordering_seen && (in_recovery || sacked_segments >= 3) {
            return Duration::ZERO;
        }
        (min_rtt / 4 * (self.reo_wnd_mult + 1)).min(srtt)
    }

    /// Marks lost every segment sent before the latest delivered one and
    /// outstanding for longer than RACK.rtt + `reo_wnd` (6.2 step 5), and
    /// says when to look again for those not yet overdue. `sacked(i)` says
    /// whether entry `i` was SACKed. Returns (any newly lost, the reorder
    /// timer deadline).
    pub fn detect(
        &self,
        log: &mut SentLog,
        now: Instant,
        reo_wnd: Duration,
        mut sacked: impl FnMut(&Sent) -> bool,
    ) -> (bool, Option<Instant>) {
        let Some(xmit_ts) = self.xmit_ts else {
            return (false, None);
        };
        let mut newly_lost = false;
        let mut timer: Option<Instant> = None;
        for i in 0..log.len() {
            let Some(s) = log.get(i).copied() else {
                break;
            };
            let sent_before = s.at < xmit_ts || (s.at == xmit_ts && seq::gt(self.end_seq, s.end));
            if !sent_before {
                // In sequence order, original sends are in time order too:
                // nothing further can have been sent before it.
                if !s.retransmitted {
                    break;
                }
                continue;
            }
            if s.lost || sacked(&s) {
                continue;
            }
            let due = s.at + self.rtt + reo_wnd;
            if due <= now {
                newly_lost |= log.mark_lost(i);
            } else {
                timer = Some(timer.map_or(due, |t| t.min(due)));
            }
        }
        (newly_lost, timer)
    }
}
