//! Which byte ranges beyond the next expected byte have arrived out of order.

/// At most this many separate holes are tracked; a segment that would need
/// more is dropped and the peer will send it again.
const MAX_RANGES: usize = 32;

/// Ranges `[start, end)` of offsets relative to the next expected byte,
/// sorted and never touching.
#[derive(Debug, Default)]
pub struct Reassembler {
    ranges: Vec<(usize, usize)>,
}

impl Reassembler {
    /// No out-of-order data.
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// True when nothing is held out of order.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges held, first to last.
    pub fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    /// Records `[start, end)` as received. Returns false, recording nothing,
    /// if that would need more ranges than are tracked.
    pub fn insert(&mut self, start: usize, end: usize) -> bool {
        if start >= end {
            return true;
        }
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        let mut last = first;
        let (mut s, mut e) = (start, end);
        while last < self.ranges.len() && self.ranges[last].0 <= end {
            s = s.min(self.ranges[last].0);
            e = e.max(self.ranges[last].1);
            last += 1;
        }
        if first == last && self.ranges.len() >= MAX_RANGES {
            return false;
        }
        self.ranges.splice(first..last, std::iter::once((s, e)));
        true
    }

    /// The in-order edge moved forward by `n` bytes: returns how many more
    /// bytes beyond it are now contiguous, and shifts what remains.
    pub fn advance(&mut self, n: usize) -> usize {
        let mut edge = n;
        let joined = self.ranges.iter().take_while(|&&(s, _)| s <= edge).count();
        for &(_, e) in &self.ranges[..joined] {
            edge = edge.max(e);
        }
        self.ranges.drain(..joined);
        self.ranges.retain_mut(|r| {
            r.0 = r.0.saturating_sub(edge);
            r.1 = r.1.saturating_sub(edge);
            r.1 > r.0
        });
        edge - n
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_fills_holes() {
        let mut r = Reassembler::new();
        assert!(r.insert(10, 20));
        assert!(r.insert(30, 40));
        assert!(r.insert(18, 31));
        assert_eq!(r.ranges(), &[(10, 40)]);
        assert!(r.insert(50, 60));
        // 10 bytes arrive in order: the first range joins, 30 more bytes.
        assert_eq!(r.advance(10), 30);
        assert_eq!(r.ranges(), &[(10, 20)]);
        assert_eq!(r.advance(5), 0);
        assert_eq!(r.ranges(), &[(5, 15)]);
    }

    #[test]
    fn in_order_data_spanning_several_ranges() {
        let mut r = Reassembler::new();
        assert!(r.insert(5, 10));
        assert!(r.insert(12, 20));
        assert!(r.insert(30, 31));
        // Bytes 0..15 arrive: 5..10 is covered, 12..20 joins, 30..31 stays apart.
        assert_eq!(r.advance(15), 5);
        assert_eq!(r.ranges(), &[(10, 11)]);
    }

    #[test]
    fn bounded_number_of_ranges() {
        let mut r = Reassembler::new();
        for i in 0..MAX_RANGES {
            assert!(r.insert(i * 10 + 1, i * 10 + 2));
        }
        assert!(!r.insert(1000, 1001));
        // Extending an existing range is still fine.
        assert!(r.insert(2, 3));
    }
}
