//! IPv4 headers (RFC 791): a validating zero-copy parser and a fixed-form
//! emitter.
//!
//! The stack neither sends nor reassembles fragments, and sends no IP options,
//! so the emitter always writes the same 20-byte shape with DF set, and the
//! parser rejects fragments rather than hand a partial datagram upward.

use std::net::Ipv4Addr;

use super::checksum;
use super::WireError;

/// Length of an IPv4 header without options, which is the only kind emitted.
pub const IPV4_HEADER_LEN: usize = 20;

/// IP protocol numbers (the IANA "Assigned Internet Protocol Numbers") that the
/// stack handles.
pub mod protocol {
    /// Internet Control Message Protocol.
    pub const ICMP: u8 = 1;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
}

/// Don't Fragment, in the flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
/// More Fragments, in the flags/fragment-offset word.
const FLAG_MF: u16 = 0x2000;
/// The 13-bit fragment offset, in the flags/fragment-offset word.
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A validated IPv4 datagram borrowed from a receive buffer.
///
/// Only produced by [`parse_ipv4`], so its version, lengths and header checksum
/// are known good and it is not a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload; see [`protocol`](mod@protocol).
    pub protocol: u8,
    /// Time to live as received.
    pub ttl: u8,
    /// Identification field.
    pub ident: u16,
    /// The whole header including any options (IHL × 4 bytes); ICMP errors
    /// quote it.
    pub header: &'a [u8],
    /// The payload, `total_length - IHL × 4` bytes; link-layer padding past
    /// the total length is not included.
    pub payload: &'a [u8],
}

/// Parses and validates an IPv4 datagram.
///
/// Checks, in this order, each failure giving the error named:
/// - at least 20 bytes ([`WireError::Truncated`]);
/// - version 4 ([`WireError::BadVersion`]);
/// - IHL at least 5 ([`WireError::BadHeaderLength`]);
/// - total length at least IHL × 4 ([`WireError::BadTotalLength`]);
/// - total length at most `buf.len()` ([`WireError::Truncated`]); bytes beyond
///   the total length (link padding) are ignored;
/// - header checksum ([`WireError::BadChecksum`]);
/// - not a fragment: MF clear and offset 0 ([`WireError::Fragmented`]).
///
/// IP options are accepted and left in [`Ipv4Packet::header`] uninterpreted.
pub fn parse_ipv4(buf: &[u8]) -> Result<Ipv4Packet<'_>, WireError> {
    let fixed: &[u8; IPV4_HEADER_LEN] = buf
        .first_chunk::<IPV4_HEADER_LEN>()
        .ok_or(WireError::Truncated)?;
    if fixed[0] >> 4 != 4 {
        return Err(WireError::BadVersion);
    }
    let header_len = usize::from(fixed[0] & 0x0f) * 4;
    if header_len < IPV4_HEADER_LEN {
        return Err(WireError::BadHeaderLength);
    }
    let total_len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    if total_len < header_len {
        return Err(WireError::BadTotalLength);
    }
    let packet = buf.get(..total_len).ok_or(WireError::Truncated)?;
    // header_len <= total_len <= packet.len(), so both splits are in range;
    // split_at_checked keeps that reasoning out of the panic paths.
    let (header, payload) = packet
        .split_at_checked(header_len)
        .ok_or(WireError::Truncated)?;
    if checksum::checksum(header) != 0 {
        return Err(WireError::BadChecksum);
    }
    let frag = u16::from_be_bytes([fixed[6], fixed[7]]);
    if frag & (FLAG_MF | FRAG_OFFSET_MASK) != 0 {
        return Err(WireError::Fragmented);
    }
    Ok(Ipv4Packet {
        src: Ipv4Addr::new(fixed[12], fixed[13], fixed[14], fixed[15]),
        dst: Ipv4Addr::new(fixed[16], fixed[17], fixed[18], fixed[19]),
        protocol: fixed[9],
        ttl: fixed[8],
        ident: u16::from_be_bytes([fixed[4], fixed[5]]),
        header,
        payload,
    })
}

/// Writes a 20-byte IPv4 header at `buf[0..20]` and returns 20.
///
/// The header has version 4, IHL 5, TOS 0, total length `20 + payload_len`,
/// the given identification, DF set (the stack does path-MTU-sized segments
/// and never fragments), the given TTL and protocol, and a valid checksum.
///
/// The caller guarantees `buf.len() >= 20` and `payload_len <= 65515`; if not,
/// nothing is written and 0 is returned (and debug builds assert), because a
/// caller bug should not bring the I/O thread down in release.
pub fn emit_ipv4_header(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    ident: u16,
    payload_len: usize,
) -> usize {
    let Some(total_len) = payload_len
        .checked_add(IPV4_HEADER_LEN)
        .and_then(|len| u16::try_from(len).ok())
    else {
        debug_assert!(false, "IPv4 payload of {payload_len} bytes is too long");
        return 0;
    };
    let Some(h) = buf.first_chunk_mut::<IPV4_HEADER_LEN>() else {
        debug_assert!(
            false,
            "buffer of {} bytes is too short for an IPv4 header",
            buf.len()
        );
        return 0;
    };
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    let [l0, l1] = total_len.to_be_bytes();
    let [i0, i1] = ident.to_be_bytes();
    let [f0, f1] = FLAG_DF.to_be_bytes();
    *h = [
        0x45, 0, l0, l1, i0, i1, f0, f1, ttl, protocol, 0, 0, s0, s1, s2, s3, d0, d1, d2, d3,
    ];
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    IPV4_HEADER_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Header};

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    fn packet(payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; IPV4_HEADER_LEN + payload.len()];
        buf[IPV4_HEADER_LEN..].copy_from_slice(payload);
        let n = emit_ipv4_header(&mut buf, SRC, DST, protocol::TCP, 64, 0x1234, payload.len());
        assert_eq!(n, IPV4_HEADER_LEN);
        buf
    }

    /// Rewrites the checksum after a test has edited header fields, so that the
    /// check under test is reached rather than the checksum check.
    fn fix_checksum(buf: &mut [u8]) {
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        buf[10] = 0;
        buf[11] = 0;
        let c = checksum::checksum(&buf[..ihl]);
        buf[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn round_trip() {
        let buf = packet(b"hello");
        let p = parse_ipv4(&buf).unwrap();
        assert_eq!(p.src, SRC);
        assert_eq!(p.dst, DST);
        assert_eq!(p.protocol, protocol::TCP);
        assert_eq!(p.ttl, 64);
        assert_eq!(p.ident, 0x1234);
        assert_eq!(p.header, &buf[..20]);
        assert_eq!(p.payload, b"hello");
    }

    #[test]
    fn emitted_header_matches_etherparse() {
        let buf = packet(&[0u8; 100]);
        let mut expected =
            Ipv4Header::new(100, 64, IpNumber::TCP, SRC.octets(), DST.octets()).unwrap();
        expected.identification = 0x1234;
        expected.dont_fragment = true;
        expected.header_checksum = expected.calc_header_checksum();
        assert_eq!(&buf[..20], &expected.to_bytes()[..]);
    }

    #[test]
    fn parses_a_header_built_by_etherparse() {
        let mut h = Ipv4Header::new(3, 17, IpNumber::ICMP, [1, 2, 3, 4], [5, 6, 7, 8]).unwrap();
        h.identification = 777;
        h.dont_fragment = false;
        h.header_checksum = h.calc_header_checksum();
        let mut buf = h.to_bytes().to_vec();
        buf.extend_from_slice(&[9, 9, 9]);
        let p = parse_ipv4(&buf).unwrap();
        assert_eq!(p.src, Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(p.dst, Ipv4Addr::new(5, 6, 7, 8));
        assert_eq!(p.protocol, protocol::ICMP);
        assert_eq!(p.ttl, 17);
        assert_eq!(p.ident, 777);
        assert_eq!(p.payload, &[9, 9, 9]);
    }

    #[test]
    fn trailing_link_padding_is_ignored() {
        let mut buf = packet(b"ab");
        buf.extend_from_slice(&[0; 30]);
        assert_eq!(parse_ipv4(&buf).unwrap().payload, b"ab");
    }

    #[test]
    fn options_are_kept_in_header() {
        // IHL 6: one word of options (four NOPs).
        let mut buf = packet(&[1, 1, 1, 1, 0xaa, 0xbb]);
        buf[0] = 0x46;
        fix_checksum(&mut buf);
        let p = parse_ipv4(&buf).unwrap();
        assert_eq!(p.header.len(), 24);
        assert_eq!(p.payload, &[0xaa, 0xbb]);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let buf = packet(b"some payload");
        for len in 0..buf.len() {
            let err = parse_ipv4(&buf[..len]).unwrap_err();
            assert_eq!(err, WireError::Truncated, "len {len}");
        }
        assert!(parse_ipv4(&buf).is_ok());
    }

    #[test]
    fn bad_version() {
        let mut buf = packet(b"x");
        buf[0] = 0x65;
        fix_checksum(&mut buf);
        assert_eq!(parse_ipv4(&buf), Err(WireError::BadVersion));
    }

    #[test]
    fn bad_header_length() {
        for ihl in 0..5u8 {
            let mut buf = packet(b"x");
            buf[0] = 0x40 | ihl;
            assert_eq!(
                parse_ipv4(&buf),
                Err(WireError::BadHeaderLength),
                "ihl {ihl}"
            );
        }
    }

    #[test]
    fn header_longer_than_buffer_is_truncated() {
        // IHL 15 = 60 bytes, total length 60, but only 20 bytes present.
        let mut buf = packet(&[]);
        buf[0] = 0x4f;
        buf[2..4].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(parse_ipv4(&buf), Err(WireError::Truncated));
    }

    #[test]
    fn bad_total_length() {
        let mut buf = packet(b"abcdef");
        for total in 0..20u16 {
            buf[2..4].copy_from_slice(&total.to_be_bytes());
            fix_checksum(&mut buf);
            assert_eq!(
                parse_ipv4(&buf),
                Err(WireError::BadTotalLength),
                "total {total}"
            );
        }
        // Header with options longer than the total length.
        buf[0] = 0x46;
        buf[2..4].copy_from_slice(&22u16.to_be_bytes());
        fix_checksum(&mut buf);
        assert_eq!(parse_ipv4(&buf), Err(WireError::BadTotalLength));
    }

    #[test]
    fn total_length_past_buffer_is_truncated() {
        let mut buf = packet(b"abc");
        buf[2..4].copy_from_slice(&24u16.to_be_bytes());
        fix_checksum(&mut buf);
        assert_eq!(parse_ipv4(&buf), Err(WireError::Truncated));
    }

    #[test]
    fn every_single_bit_flip_in_the_header_is_caught() {
        let good = packet(b"payload");
        for bit in 0..160 {
            let mut buf = good.clone();
            buf[bit / 8] ^= 1 << (bit % 8);
            assert!(parse_ipv4(&buf).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn corrupted_checksum() {
        let mut buf = packet(b"x");
        buf[8] = buf[8].wrapping_sub(1); // a router's TTL decrement without a fix-up
        assert_eq!(parse_ipv4(&buf), Err(WireError::BadChecksum));
        let mut buf = packet(b"x");
        buf[11] ^= 0x01;
        assert_eq!(parse_ipv4(&buf), Err(WireError::BadChecksum));
    }

    #[test]
    fn fragments_are_rejected() {
        // (flags/offset word, is a fragment)
        let cases = [
            (0x4000, false), // DF only
            (0x0000, false), // nothing
            (0x2000, true),  // MF, first fragment
            (0x0001, true),  // last fragment, offset 8
            (0x2010, true),  // middle fragment
            (0x5fff, true),  // DF with a nonzero offset is still a fragment
        ];
        for (word, is_fragment) in cases {
            let mut buf = packet(b"x");
            buf[6..8].copy_from_slice(&u16::to_be_bytes(word));
            fix_checksum(&mut buf);
            let r = parse_ipv4(&buf);
            if is_fragment {
                assert_eq!(r, Err(WireError::Fragmented), "{word:#06x}");
            } else {
                assert!(r.is_ok(), "{word:#06x}");
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 0x9e37_79b9;
        let mut buf = [0u8; 64];
        for _ in 0..20_000 {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            // Make many of them look like IPv4 so the later checks run too.
            buf[0] = 0x40 | (buf[0] & 0x0f);
            let len = (x as usize) % (buf.len() + 1);
            let _ = parse_ipv4(&buf[..len]);
        }
    }

    #[test]
    fn emit_at_maximum_payload() {
        let mut buf = [0u8; 20];
        assert_eq!(emit_ipv4_header(&mut buf, SRC, DST, 6, 1, 0, 65515), 20);
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), 65535);
        assert_eq!(checksum::checksum(&buf), 0);
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn emit_with_bad_arguments_returns_zero() {
        let mut short = [0u8; 19];
        assert_eq!(emit_ipv4_header(&mut short, SRC, DST, 6, 64, 0, 0), 0);
        assert_eq!(short, [0u8; 19]);
        let mut buf = [0u8; 20];
        assert_eq!(emit_ipv4_header(&mut buf, SRC, DST, 6, 64, 0, 65516), 0);
        assert_eq!(
            emit_ipv4_header(&mut buf, SRC, DST, 6, 64, 0, usize::MAX),
            0
        );
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "too short")]
    fn emit_into_short_buffer_asserts_in_debug() {
        emit_ipv4_header(&mut [0u8; 19], SRC, DST, 6, 64, 0, 0);
    }
}
