//! What the peer told us it holds beyond SND.UNA (SACK, RFC 2018), so loss
//! recovery resends only the holes (in the spirit of RFC 6675).

use super::seq;

/// Most ranges remembered; the peer reports at most 3–4 per ACK anyway.
const MAX_RANGES: usize = 16;

/// Sequence ranges `[start, end)` the peer has selectively acknowledged,
/// sorted, disjoint, all above SND.UNA.
#[derive(Debug, Default, Clone)]
pub struct Scoreboard {
    ranges: Vec<(u32, u32)>,
}

impl Scoreboard {
    /// Forgets everything (after a timeout: the peer may have reneged).
    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Gives the storage back if nothing is SACKed.
    pub fn release(&mut self) {
        if self.ranges.is_empty() {
            self.ranges = Vec::new();
        }
    }

    /// True when nothing is SACKed.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Adds a block reported by the peer; blocks outside (una, max] are ignored
    /// (RFC 5961-style: never trust what cannot be true).
    pub fn add(&mut self, start: u32, end: u32, una: u32, max: u32) {
        if !seq::lt(start, end) || !seq::le(end, max) || !seq::lt(una, end) {
            return;
        }
        let start = seq::max(start, una);
        // Ranges are sorted and disjoint: find those the new one touches and
        // merge in place (this runs per ACK, so no allocation).
        let first = self.ranges.partition_point(|&(_, e)| seq::lt(e, start));
        let mut last = first;
        let (mut s, mut e) = (start, end);
        while last < self.ranges.len() && seq::le(self.ranges[last].0, end) {
            if seq::lt(self.ranges[last].0, s) {
                s = self.ranges[last].0;
            }
            e = seq::max(e, self.ranges[last].1);
            last += 1;
        }
        if first == last {
            if self.ranges.len() >= MAX_RANGES {
                if first == 0 {
                    return; // older than everything kept: the least useful
                }
                self.ranges.remove(0);
                self.ranges.insert(first - 1, (s, e));
                return;
            }
            if self.ranges.capacity() == 0 {
                self.ranges.reserve_exact(MAX_RANGES);
            }
            self.ranges.insert(first, (s, e));
        } else {
            self.ranges[first] = (s, e);
            self.ranges.drain(first + 1..last);
        }
    }

    /// Drops what SND.UNA now covers.
    pub fn advance(&mut self, una: u32) {
        self.ranges.retain_mut(|r| {
            if seq::le(r.1, una) {
                return false;
            }
            r.0 = seq::max(r.0, una);
            true
        });
    }

    /// Bytes SACKed.
    pub fn sacked_bytes(&self) -> usize {
        self.ranges.iter().map(|&(s, e)| seq::dist(s, e)).sum()
    }

    /// Bytes SACKed below `limit`.
    pub fn sacked_below(&self, limit: u32) -> usize {
        self.ranges
            .iter()
            .take_while(|&&(s, _)| seq::lt(s, limit))
            .map(|&(s, e)| seq::dist(s, if seq::lt(limit, e) { limit } else { e }))
            .sum()
    }

    /// Bytes SACKed at or above `from`.
    pub fn sacked_above(&self, from: u32) -> usize {
        self.sacked_bytes() - self.sacked_below(from)
    }

    /// True when all of `[start, end)` is SACKed.
    pub fn covers(&self, start: u32, end: u32) -> bool {
        self.covered_until(start).is_some_and(|e| seq::le(end, e))
    }

    /// Calls `f` for each part of `[start, end)` not yet SACKed, in order
    /// (what a new block adds, before it is added).
    pub fn for_each_gap(&self, start: u32, end: u32, mut f: impl FnMut(u32, u32)) {
        let mut at = start;
        for &(s, e) in &self.ranges {
            if !seq::lt(at, end) {
                return;
            }
            if seq::le(e, at) {
                continue;
            }
            if seq::lt(at, s) {
                f(at, seq::min(s, end));
            }
            at = seq::max(at, e);
        }
        if seq::lt(at, end) {
            f(at, end);
        }
    }

    /// The highest SACKed sequence number, if any.
    pub fn high(&self) -> Option<u32> {
        self.ranges.last().map(|r| r.1)
    }

    /// If `at` lies in a SACKed range, the end of that range.
    pub fn covered_until(&self, at: u32) -> Option<u32> {
        self.ranges
            .iter()
            .find(|&&(s, e)| seq::in_range(at, s, e))
            .map(|r| r.1)
    }

    /// The first hole at or after `from` below the highest SACKed byte:
    /// `(start, end)` of bytes the peer is missing.
    pub fn next_hole(&self, from: u32) -> Option<(u32, u32)> {
        let mut at = from;
        for &(s, e) in &self.ranges {
            if seq::lt(at, s) {
                return Some((at, s));
            }
            at = seq::max(at, e);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_between_sacked_ranges() {
        let mut b = Scoreboard::default();
        b.add(3000, 4000, 1000, 9000);
        b.add(6000, 7000, 1000, 9000);
        b.add(3500, 5000, 1000, 9000);
        assert_eq!(b.sacked_bytes(), 3000);
        assert_eq!(b.next_hole(1000), Some((1000, 3000)));
        assert_eq!(b.next_hole(3000), Some((5000, 6000)));
        assert_eq!(b.next_hole(6500), None);
        assert_eq!(b.covered_until(3200), Some(5000));
        assert_eq!(b.sacked_below(3500), 500);
        assert_eq!(b.sacked_below(6500), 2500);
        assert_eq!(b.high(), Some(7000));
        // Blocks that cannot be true are ignored.
        b.add(8000, 9500, 1000, 9000);
        b.add(500, 900, 1000, 9000);
        assert_eq!(b.sacked_bytes(), 3000);
        b.advance(4500);
        assert_eq!(b.next_hole(4500), Some((5000, 6000)));
        assert_eq!(b.sacked_bytes(), 1500);
    }

    #[test]
    fn merges_across_several_ranges_and_stays_bounded() {
        let mut b = Scoreboard::default();
        for i in 0..20u32 {
            b.add(2000 + i * 100, 2050 + i * 100, 1000, 9000);
        }
        assert_eq!(b.ranges.len(), MAX_RANGES);
        // One block covering many ranges merges them into one.
        b.add(2000, 3000, 1000, 9000);
        assert!(b.ranges.len() < MAX_RANGES);
        assert_eq!(b.covered_until(2500), Some(3050));
        // Ranges stay sorted and disjoint.
        for w in b.ranges.windows(2) {
            assert!(seq::lt(w[0].1, w[1].0));
        }
    }

    #[test]
    fn gaps_a_new_block_fills() {
        let mut b = Scoreboard::default();
        b.add(3000, 4000, 1000, 9000);
        b.add(5000, 6000, 1000, 9000);
        let mut gaps = Vec::new();
        b.for_each_gap(2000, 7000, |s, e| gaps.push((s, e)));
        assert_eq!(gaps, [(2000, 3000), (4000, 5000), (6000, 7000)]);
        gaps.clear();
        b.for_each_gap(3500, 5500, |s, e| gaps.push((s, e)));
        assert_eq!(gaps, [(4000, 5000)]);
        assert!(b.covers(3000, 4000) && !b.covers(3000, 4001));
        assert_eq!(b.sacked_above(3500), 1500);
    }

    #[test]
    fn wraps_around_zero() {
        let mut b = Scoreboard::default();
        b.add(0xffff_ff00, 0x100, 0xffff_fe00, 0x1000);
        b.add(0x200, 0x300, 0xffff_fe00, 0x1000);
        assert_eq!(b.next_hole(0xffff_fe00), Some((0xffff_fe00, 0xffff_ff00)));
        assert_eq!(b.next_hole(0x0), Some((0x100, 0x200)));
        assert_eq!(b.sacked_bytes(), 0x200 + 0x100);
    }
}
