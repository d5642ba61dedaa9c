//! RACK (RFC 8985): a segment is lost when a segment sent after it was
//! delivered and more than a round trip plus a reordering window has
//! passed since it was sent. Time-based, so it finds a lost
//! retransmission or a lost tail as readily as a lost first segment, and
//! tolerates reordering up to the window instead of three duplicates.

use super::scoreboard::Scoreboard;
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
    /// says when to look again for those not yet overdue. Returns (any
    /// newly lost, the reorder timer deadline).
    ///
    /// Only what may be lost is visited, not the whole flight: the holes
    /// `board` leaves between `una` and its highest SACKed byte, then the
    /// segments above that, up to the first original sent after the
    /// delivered one (in sequence order originals are in time order too).
    /// In recovery most of a large flight is SACKed, and a scan of it all
    /// on every ACK made recovery quadratic in the window.
    pub fn detect(
        &self,
        log: &mut SentLog,
        board: &Scoreboard,
        una: u32,
        now: Instant,
        reo_wnd: Duration,
    ) -> (bool, Option<Instant>) {
        let Some(xmit_ts) = self.xmit_ts else {
            return (false, None);
        };
        let mut found = Found {
            newly_lost: false,
            timer: None,
        };
        let check = |log: &mut SentLog, i: usize, found: &mut Found| -> Step {
            let Some(s) = log.get(i).copied() else {
                return Step::Stop;
            };
            let sent_before = s.at < xmit_ts || (s.at == xmit_ts && seq::gt(self.end_seq, s.end));
            if !sent_before {
                return if s.retransmitted {
                    Step::Next
                } else {
                    Step::Later
                };
            }
            if s.lost || board.covers(s.start, s.end) {
                return Step::Next;
            }
            let due = s.at + self.rtt + reo_wnd;
            if due <= now {
                found.newly_lost |= log.mark_lost(i);
            } else {
                found.timer = Some(found.timer.map_or(due, |t| t.min(due)));
            }
            Step::Next
        };
        let top = board.high().unwrap_or(una);
        board.for_each_gap(una, top, |from, to| {
            let mut i = log.index_after(from);
            while log.get(i).is_some_and(|s| seq::lt(s.start, to)) {
                if check(log, i, &mut found) == Step::Stop {
                    break;
                }
                i += 1;
            }
        });
        let mut i = log.index_after(top);
        while check(log, i, &mut found) == Step::Next {
            i += 1;
        }
        (found.newly_lost, found.timer)
    }
}

/// What a loss scan found.
struct Found {
    newly_lost: bool,
    timer: Option<Instant>,
}

/// After one segment: go on; or none further in sequence order can have
/// been sent before the delivered one (an original sent after it); or the
/// record ended.
#[derive(PartialEq, Eq)]
enum Step {
    Next,
    Later,
    Stop,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan over the whole record that `detect` replaced.
    fn detect_everything(
        rack: &Rack,
        log: &mut SentLog,
        board: &Scoreboard,
        now: Instant,
        reo_wnd: Duration,
    ) -> (bool, Option<Instant>) {
        let Some(xmit_ts) = rack.xmit_ts else {
            return (false, None);
        };
        let (mut newly, mut timer) = (false, None::<Instant>);
        for i in 0..log.len() {
            let s = *log.get(i).unwrap();
            let before = s.at < xmit_ts || (s.at == xmit_ts && seq::gt(rack.end_seq, s.end));
            if !before || s.lost || board.covers(s.start, s.end) {
                continue;
            }
            let due = s.at + rack.rtt + reo_wnd;
            if due <= now {
                newly |= log.mark_lost(i);
            } else {
                timer = Some(timer.map_or(due, |t| t.min(due)));
            }
        }
        (newly, timer)
    }

    #[test]
    fn visiting_only_holes_and_the_tail_finds_what_a_full_scan_finds() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let ms = Instant::from_millis;
        for round in 0..300 {
            let una = 0xffff_0000u32.wrapping_add(rand(1 << 20) as u32);
            let n = 1 + rand(400) as u32;
            let mut log = SentLog::default();
            for k in 0..n {
                let start = una.wrapping_add(k * 1000);
                log.on_send(start, start.wrapping_add(1000), ms(u64::from(k)));
            }
            // Some segments resent later, some marked lost.
            for _ in 0..rand(8) {
                let k = rand(u64::from(n)) as u32;
                let start = una.wrapping_add(k * 1000);
                log.on_send(start, start.wrapping_add(1000), ms(500 + rand(100)));
            }
            for _ in 0..rand(4) {
                log.mark_lost(rand(u64::from(n)) as usize);
            }
            let mut board = Scoreboard::default();
            let max = una.wrapping_add(n * 1000);
            for _ in 0..rand(20) {
                let a = rand(u64::from(n)) as u32;
                let b = a + 1 + rand(u64::from(n - a)) as u32;
                board.add(
                    una.wrapping_add(a * 1000),
                    una.wrapping_add(b * 1000),
                    una,
                    max,
                );
            }
            // The latest delivered segment: any one of them.
            let mut rack = Rack::default();
            let k = rand(u64::from(n)) as usize;
            let delivered = *log.get(k).unwrap();
            rack.on_delivered(&delivered, ms(700), None);
            let (now, reo) = (ms(rand(800)), Duration::from_millis(rand(50)));
            let mut mine = log.clone();
            let mut all = log.clone();
            let got = rack.detect(&mut mine, &board, una, now, reo);
            let want = detect_everything(&rack, &mut all, &board, now, reo);
            assert_eq!(got, want, "round {round}");
            let marks = |l: &SentLog| l.iter().map(|s| s.lost).collect::<Vec<_>>();
            assert_eq!(marks(&mine), marks(&all), "round {round}");
        }
    }
}
