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
        let mut s = start;
        let mut e = end;
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(rs, re) in &self.ranges {
            if seq::lt(re, s) || seq::lt(e, rs) {
                kept.push((rs, re));
            } else {
                s = if seq::lt(rs, s) { rs } else { s };
                e = seq::max(re, e);
            }
        }
        kept.push((s, e));
        kept.sort_by(|a, b| {
            if a.0 == b.0 {
                std::cmp::Ordering::Equal
            } else if seq::lt(a.0, b.0) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        });
        if kept.len() > MAX_RANGES {
            kept.remove(0);
        }
        self.ranges = kept;
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
        assert_eq!(b.high(), Some(7000));
        // Blocks that cannot be true are ignored.
        b.add(8000, 9500, 1000, 9000);
        b.add(500, 900, 1000, 9000);
        assert_eq!(b.sacked_bytes(), 3000);
        b.advance(4500);
        assert_eq!(b.next_hole(4500), Some((5000, 6000)));
        assert_eq!(b.sacked_bytes(), 1500);
    }
}
