//! The per-segment sent record: every segment in flight with when it was
//! last sent, whether it was a retransmission, and whether loss detection
//! has marked it lost. RACK (rack.rs) reads the send times; SACK recovery
//! (sack_recovery.rs) and the sender read and clear the loss marks.
//!
//! Entries are in sequence order and cover SND.UNA..SND.MAX without gaps.
//! The deque grows to the largest flight and is then reused: no allocation
//! per packet.

use super::seq;
use crate::time::Instant;
use std::collections::VecDeque;

/// One segment as it was last sent: `[start, end)` in sequence space (a
/// FIN counts as one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// First sequence number.
    pub start: u32,
    /// One past the last sequence number.
    pub end: u32,
    /// When it was last (re)transmitted.
    pub at: Instant,
    /// It was sent more than once.
    pub retransmitted: bool,
    /// Loss detection marked it lost, and it was not sent again since.
    pub lost: bool,
}

impl Sent {
    fn len(&self) -> usize {
        seq::dist(self.start, self.end)
    }
}

/// The segments sent and not yet cumulatively acknowledged.
#[derive(Clone, Debug, Default)]
pub struct SentLog {
    segs: VecDeque<Sent>,
    /// Bytes marked lost and not yet sent again (they are not in the pipe).
    lost_bytes: usize,
}

impl SentLog {
    /// Forgets everything (the connection restarts its flight).
    pub fn clear(&mut self) {
        self.segs.clear();
        self.lost_bytes = 0;
    }

    /// Gives the storage back if nothing is in flight.
    pub fn release(&mut self) {
        if self.segs.is_empty() {
            self.segs = VecDeque::new();
        }
    }

    /// Bytes marked lost and not sent again.
    pub fn lost_bytes(&self) -> usize {
        self.lost_bytes
    }

    /// The entries, in sequence order.
    pub fn iter(&self) -> impl Iterator<Item = &Sent> {
        self.segs.iter()
    }

    /// The index of the first entry ending after `at`.
    pub fn index_after(&self, at: u32) -> usize {
        self.segs.partition_point(|s| seq::le(s.end, at))
    }

    /// The entry at `i`.
    pub fn get(&self, i: usize) -> Option<&Sent> {
        self.segs.get(i)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.segs.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// `[start, end)` went out at `now`: new data is appended; a
    /// retransmission refreshes the entries it covers (split where its
    /// edges fall inside one, as after a path-MTU change).
    pub fn on_send(&mut self, start: u32, end: u32, now: Instant) {
        if !seq::lt(start, end) {
            return;
        }
        let tail = self.segs.back().map(|s| s.end);
        if tail.is_none_or(|t| seq::ge(start, t)) {
            let start = tail.unwrap_or(start);
            self.segs.push_back(Sent {
                start,
                end,
                at: now,
                retransmitted: false,
                lost: false,
            });
            return;
        }
        self.split_at(start);
        self.split_at(end);
        let mut i = self.index_after(start);
        while let Some(s) = self.segs.get_mut(i) {
            if !seq::lt(s.start, end) {
                break;
            }
            if s.lost {
                s.lost = false;
                self.lost_bytes -= s.len();
            }
            s.at = now;
            s.retransmitted = true;
            i += 1;
        }
        let last_end = self.segs.back().map_or(end, |s| s.end);
        if seq::gt(end, last_end) {
            self.on_send(last_end, end, now);
        }
    }

    /// Splits the entry containing `at` (strictly inside) in two.
    fn split_at(&mut self, at: u32) {
        let i = self.index_after(at);
        let Some(s) = self.segs.get(i).copied() else {
            return;
        };
        if !seq::lt(s.start, at) {
            return;
        }
        let mut low = s;
        low.end = at;
        let mut high = s;
        high.start = at;
        self.segs[i] = high;
        self.segs.insert(i, low);
    }

    /// SND.UNA moved to `una`: the entries below it leave the record;
    /// `delivered` sees each one first.
    pub fn on_ack(&mut self, una: u32, mut delivered: impl FnMut(&Sent)) {
        while let Some(s) = self.segs.front_mut() {
            if seq::le(s.end, una) {
                let s = *s;
                if s.lost {
                    self.lost_bytes -= s.len();
                }
                delivered(&s);
                self.segs.pop_front();
            } else {
                if seq::lt(s.start, una) {
                    if s.lost {
                        self.lost_bytes -= seq::dist(s.start, una);
                    }
                    s.start = una;
                }
                break;
            }
        }
    }

    /// Marks entry `i` lost. Returns true if it was not already.
    pub fn mark_lost(&mut self, i: usize) -> bool {
        match self.segs.get_mut(i) {
            Some(s) if !s.lost => {
                s.lost = true;
                self.lost_bytes += seq::dist(s.start, s.end);
                true
            }
            _ => false,
        }
    }

    /// Clears a loss mark without a retransmission (the peer SACKed it).
    pub fn unmark(&mut self, i: usize) {
        if let Some(s) = self.segs.get_mut(i) {
            if s.lost {
                s.lost = false;
                self.lost_bytes -= seq::dist(s.start, s.end);
            }
        }
    }

    /// Clears every loss mark (a timeout resends everything anyway).
    pub fn unmark_all(&mut self) {
        for s in self.segs.iter_mut() {
            s.lost = false;
        }
        self.lost_bytes = 0;
    }

    /// The first entry marked lost at or after index `from`.
    pub fn first_lost(&self, from: usize) -> Option<(usize, &Sent)> {
        if self.lost_bytes == 0 {
            return None;
        }
        self.segs
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, s)| s.lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn new_data_appends_and_acks_pop() {
        let mut log = SentLog::default();
        log.on_send(1000, 2000, t(1));
        log.on_send(2000, 3000, t(2));
        log.on_send(3000, 3001, t(3)); // a FIN
        assert_eq!(log.len(), 3);
        let mut seen = Vec::new();
        log.on_ack(2500, |s| seen.push(s.start));
        assert_eq!(seen, [1000]);
        assert_eq!(log.get(0).unwrap().start, 2500);
        log.on_ack(3001, |s| seen.push(s.start));
        assert!(log.is_empty());
    }

    #[test]
    fn retransmissions_refresh_and_split() {
        let mut log = SentLog::default();
        for i in 0..4u32 {
            log.on_send(1000 + i * 1000, 2000 + i * 1000, t(i as u64));
        }
        assert!(log.mark_lost(1));
        assert_eq!(log.lost_bytes(), 1000);
        // Resent in smaller pieces (a lower MTU): 2000..2500 splits entry 1.
        log.on_send(2000, 2500, t(10));
        assert_eq!(log.len(), 5);
        assert_eq!(log.lost_bytes(), 500);
        let s = *log.get(1).unwrap();
        assert_eq!(
            (s.start, s.end, s.at, s.retransmitted, s.lost),
            (2000, 2500, t(10), true, false)
        );
        assert!(log.get(2).unwrap().lost);
        assert_eq!(log.first_lost(0).map(|(i, _)| i), Some(2));
        // An ACK into a lost entry takes its acknowledged part off.
        log.on_ack(2700, |_| {});
        assert_eq!(log.lost_bytes(), 300);
        // A resend reaching past the end appends the rest as new data.
        log.on_send(4500, 5500, t(11));
        assert_eq!(log.iter().last().unwrap().end, 5500);
        assert!(!log.iter().last().unwrap().retransmitted);
    }

    #[test]
    fn wraps_around_zero() {
        let mut log = SentLog::default();
        log.on_send(0xffff_fc00, 0x0000_0000, t(1));
        log.on_send(0, 0x400, t(2));
        assert_eq!(log.index_after(0xffff_fd00), 0);
        assert_eq!(log.index_after(0x10), 1);
        log.on_ack(0x10, |_| {});
        assert_eq!(log.len(), 1);
    }
}
