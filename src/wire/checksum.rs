//! The Internet checksum (RFC 1071): a ones-complement sum of 16-bit words.
//!
//! Every packet in and out is summed once, so this is the hot path of the wire
//! layer. The sum is taken over native-endian 64-bit words with end-around
//! carry; RFC 1071 §2(B) shows that a ones-complement sum is independent of byte
//! order and of word width up to a final fold and byte swap, so reading wide
//! words in host order gives the same checksum as summing big-endian 16-bit
//! words one by one, eight bytes per addition instead of two.
//!
//! A checksum is built in two steps so that pieces (a pseudo-header, a header,
//! a payload) can be summed separately without copying them together:
//! [`sum`] accumulates, [`fold`] finishes.

use std::net::Ipv4Addr;

/// Adds `data` to the partial ones-complement sum `initial` and returns the new
/// partial sum, to be passed to another `sum` or finished with [`fold`].
///
/// The returned value is always at most `0xffff`, so sums can be chained any
/// number of times without overflow. The value is in network-order terms (the
/// sum of the big-endian 16-bit words), which is what lets
/// [`pseudo_header`] and hand-computed words be mixed in.
///
/// An odd-length `data` is summed as if padded with one zero byte at the end.
/// Chaining is therefore only exact when every piece but the last has an even
/// length, which is true of all IP, TCP and ICMP headers.
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let (blocks, rest) = data.as_chunks::<32>();
    let mut acc: u64 = 0;
    // Unrolled by four words: the carry chain is serial anyway, but fewer loop
    // branches let the adds issue back to back.
    for block in blocks {
        let (words, _) = block.as_chunks::<8>();
        for w in words {
            acc = add_with_carry(acc, u64::from_ne_bytes(*w));
        }
    }
    let (words, tail) = rest.as_chunks::<8>();
    for w in words {
        acc = add_with_carry(acc, u64::from_ne_bytes(*w));
    }
    // Zero-padding the tail at its end keeps each byte in its position within
    // its 16-bit word, which is exactly RFC 1071's rule for an odd last byte.
    let mut last = [0u8; 8];
    if let Some(dst) = last.get_mut(..tail.len()) {
        dst.copy_from_slice(tail);
    }
    acc = add_with_carry(acc, u64::from_ne_bytes(last));

    // The 16-bit lanes of `acc` hold host-order words; on a little-endian host
    // that is each big-endian word byte-swapped, and the swap commutes with the
    // ones-complement sum, so one swap of the folded result converts it.
    let host = fold_to_16(acc) as u16;
    let network = u16::from_be(host);
    fold_to_16(u64::from(initial) + u64::from(network)) as u32
}

/// Finishes a partial sum: folds the carries and takes the ones complement,
/// giving the value to store in a checksum field.
///
/// When verifying, sum the whole header including its checksum field: the data
/// is intact when `fold` of that sum is 0.
#[inline]
pub fn fold(sum: u32) -> u16 {
    !(fold_to_16(u64::from(sum)) as u16)
}

/// The partial sum of the IPv4 pseudo-header that TCP and UDP checksums cover
/// (RFC 9293 §3.1): source, destination, zero, protocol, and the length of the
/// transport header plus payload.
///
/// `len` is 16 bits because that is the width of the field it stands for; no
/// IPv4 transport segment can be longer.
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    // Six 16-bit words cannot overflow a u32, so no folding is needed here.
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(proto)
        + u32::from(len)
}

/// The finished checksum of `data` alone: `fold(sum(data, 0))`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum(data, 0))
}

#[inline(always)]
fn add_with_carry(acc: u64, word: u64) -> u64 {
    let (s, overflowed) = acc.overflowing_add(word);
    // After an overflow `s` is at most 2^64 - 2, so adding the carry back
    // (end-around carry) cannot overflow again.
    s + u64::from(overflowed)
}

/// Folds a 64-bit ones-complement accumulator down to 16 bits.
#[inline(always)]
fn fold_to_16(mut x: u64) -> u64 {
    x = (x & 0xffff_ffff) + (x >> 32); // < 2^33
    x = (x & 0xffff) + (x >> 16); // < 2^17 + 2^16
    x = (x & 0xffff) + (x >> 16); // <= 0xffff + 2
    (x & 0xffff) + (x >> 16) // <= 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook definition, one big-endian 16-bit word at a time, as an
    /// oracle for the wide-word version.
    fn reference_sum(data: &[u8], initial: u32) -> u32 {
        let mut acc = u64::from(initial);
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u64::from(b));
            acc += hi | lo;
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u32
    }

    fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data, 0), 0xddf2);
        assert_eq!(fold(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn matches_reference_for_every_length_and_offset() {
        let data = pseudo_random(300, 7);
        for start in 0..8 {
            for end in start..data.len() {
                let slice = &data[start..end];
                assert_eq!(
                    sum(slice, 0),
                    reference_sum(slice, 0),
                    "start {start} end {end}"
                );
            }
        }
    }

    #[test]
    fn all_ones_and_carries() {
        for len in 0..100 {
            let data = vec![0xffu8; len];
            assert_eq!(sum(&data, 0), reference_sum(&data, 0), "len {len}");
            assert_eq!(
                sum(&data, 0xffff_ffff),
                reference_sum(&data, 0xffff_ffff),
                "len {len}"
            );
        }
    }

    #[test]
    fn initial_is_added() {
        let data = pseudo_random(77, 3);
        for initial in [0, 1, 0xffff, 0x1_0000, 0x1234_5678, u32::MAX] {
            assert_eq!(sum(&data, initial), reference_sum(&data, initial));
        }
    }

    #[test]
    fn chaining_even_pieces_equals_whole() {
        let data = pseudo_random(1000, 11);
        for cut in (0..data.len()).step_by(2) {
            let (a, b) = data.split_at(cut);
            assert_eq!(sum(b, sum(a, 0)), sum(&data, 0), "cut {cut}");
        }
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0xab], 0), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
    }

    #[test]
    fn empty_is_initial() {
        assert_eq!(sum(&[], 0), 0);
        assert_eq!(sum(&[], 0x1234), 0x1234);
        assert_eq!(fold(0), 0xffff);
    }

    #[test]
    fn verifying_a_summed_buffer_gives_zero() {
        let mut data = pseudo_random(64, 5);
        data[10] = 0;
        data[11] = 0;
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
    }

    #[test]
    fn pseudo_header_words() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(192, 168, 1, 2);
        let expected = reference_sum(&[10, 0, 0, 1, 192, 168, 1, 2, 0, 6, 0x01, 0x2c], 0);
        assert_eq!(
            fold_to_16(u64::from(pseudo_header(src, dst, 6, 300))) as u32,
            expected
        );
    }

    #[test]
    fn matches_etherparse_tcp_checksum() {
        // An independent implementation as the oracle, so a bug shared by this
        // module and its reference_sum above still shows.
        let payload = pseudo_random(1001, 9);
        let src = [10, 77, 0, 1];
        let dst = [10, 77, 0, 2];
        let mut header = etherparse::TcpHeader::new(40000, 80, 0xdead_beef, 65535);
        header.acknowledgment_number = 0x0102_0304;
        header.ack = true;
        header.psh = true;
        let expected = header.calc_checksum_ipv4_raw(src, dst, &payload).unwrap();

        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        let ph = pseudo_header(src.into(), dst.into(), 6, bytes.len() as u16);
        assert_eq!(fold(sum(&bytes, ph)), expected);
    }
}
