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
    let mut expected = Ipv4Header::new(100, 64, IpNumber::TCP, SRC.octets(), DST.octets()).unwrap();
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
