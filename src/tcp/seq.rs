//! Sequence-number arithmetic modulo 2^32 (RFC 9293, section 3.4).

/// `a < b` in sequence space.
#[inline]
pub fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a <= b` in sequence space.
#[inline]
pub fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// `a > b` in sequence space.
#[inline]
pub fn gt(a: u32, b: u32) -> bool {
    lt(b, a)
}

/// `a >= b` in sequence space.
#[inline]
pub fn ge(a: u32, b: u32) -> bool {
    le(b, a)
}

/// The later of two sequence numbers.
#[inline]
pub fn max(a: u32, b: u32) -> u32 {
    if lt(a, b) {
        b
    } else {
        a
    }
}

/// The earlier of two sequence numbers.
#[inline]
pub fn min(a: u32, b: u32) -> u32 {
    if lt(a, b) {
        a
    } else {
        b
    }
}

/// `start <= x < end` in sequence space.
#[inline]
pub fn in_range(x: u32, start: u32, end: u32) -> bool {
    le(start, x) && lt(x, end)
}

/// Distance from `from` forward to `to`; callers ensure `from <= to`.
#[inline]
pub fn dist(from: u32, to: u32) -> usize {
    to.wrapping_sub(from) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_wrap_around() {
        assert!(lt(0xffff_fff0, 0x10));
        assert!(gt(0x10, 0xffff_fff0));
        assert!(le(5, 5) && ge(5, 5));
        assert!(in_range(0, 0xffff_ffff, 2));
        assert!(!in_range(2, 0xffff_ffff, 2));
        assert_eq!(dist(0xffff_fffe, 3), 5);
        assert_eq!(max(0xffff_fffe, 3), 3);
        assert_eq!(min(0xffff_fffe, 3), 0xffff_fffe);
    }
}
