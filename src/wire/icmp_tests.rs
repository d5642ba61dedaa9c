use super::*;
use etherparse::{IcmpEchoHeader, Icmpv4Header, Icmpv4Type};

fn echo_request(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let h = Icmpv4Header::with_checksum(
        Icmpv4Type::EchoRequest(IcmpEchoHeader { id: ident, seq }),
        data,
    );
    let mut buf = h.to_bytes().to_vec();
    buf.extend_from_slice(data);
    buf
}

#[test]
fn parses_an_etherparse_echo_request() {
    let buf = echo_request(0x1234, 7, b"abcdefgh12345");
    assert_eq!(
        parse_icmp(&buf),
        Ok(IcmpMessage::EchoRequest {
            ident: 0x1234,
            seq: 7,
            data: b"abcdefgh12345"
        })
    );
}

#[test]
fn reply_matches_etherparse_and_round_trips() {
    for len in 0..70 {
        let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
        let mut buf = vec![0xeeu8; 8 + len + 5];
        let n = emit_icmp_echo_reply(&mut buf, 0xbeef, 0x0102, &data);
        assert_eq!(n, 8 + len);

        let expected = Icmpv4Header::with_checksum(
            Icmpv4Type::EchoReply(IcmpEchoHeader {
                id: 0xbeef,
                seq: 0x0102,
            }),
            &data,
        );
        assert_eq!(&buf[..8], &expected.to_bytes()[..], "len {len}");
        assert_eq!(&buf[8..n], &data[..]);
        assert!(
            buf[n..].iter().all(|&b| b == 0xee),
            "wrote past the message"
        );

        assert_eq!(
            parse_icmp(&buf[..n]),
            Ok(IcmpMessage::EchoReply {
                ident: 0xbeef,
                seq: 0x0102,
                data: &data
            })
        );
    }
}

#[test]
fn destination_unreachable_quotes_the_original() {
    let quoted = [0x45u8; 28];
    let mut buf = vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
    buf.extend_from_slice(&quoted);
    let c = checksum::checksum(&buf);
    buf[2..4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        parse_icmp(&buf),
        Ok(IcmpMessage::DestinationUnreachable {
            code: 4,
            next_hop_mtu: 1500,
            original: &quoted
        })
    );
}

#[test]
fn other_types() {
    // Time exceeded (11), code 1.
    let mut buf = vec![11, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3];
    let c = checksum::checksum(&buf);
    buf[2..4].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        parse_icmp(&buf),
        Ok(IcmpMessage::Other { kind: 11, code: 1 })
    );
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let buf = echo_request(1, 2, b"xyz");
    for len in 0..8 {
        assert_eq!(
            parse_icmp(&buf[..len]),
            Err(WireError::Truncated),
            "len {len}"
        );
    }
    // Cut after the header the checksum no longer matches.
    for len in 8..buf.len() {
        assert_eq!(
            parse_icmp(&buf[..len]),
            Err(WireError::BadChecksum),
            "len {len}"
        );
    }
    assert!(parse_icmp(&buf).is_ok());
}

#[test]
fn every_single_bit_flip_is_caught() {
    let good = echo_request(9, 9, b"ping data");
    for bit in 0..good.len() * 8 {
        let mut buf = good.clone();
        buf[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(parse_icmp(&buf), Err(WireError::BadChecksum), "bit {bit}");
    }
}

#[test]
fn garbage_never_panics() {
    let mut x: u32 = 12345;
    let mut buf = [0u8; 40];
    for _ in 0..20_000 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let len = (x as usize) % (buf.len() + 1);
        let msg = &mut buf[..len];
        // Fix the checksum of half of them so the type dispatch runs too.
        if x & 1 == 0 && len >= 8 {
            msg[2] = 0;
            msg[3] = 0;
            let c = checksum::checksum(msg);
            msg[2..4].copy_from_slice(&c.to_be_bytes());
            assert!(parse_icmp(msg).is_ok());
        } else {
            let _ = parse_icmp(msg);
        }
    }
}

#[cfg(not(debug_assertions))]
#[test]
fn reply_into_short_buffer_returns_zero() {
    let mut buf = [0u8; 10];
    assert_eq!(emit_icmp_echo_reply(&mut buf, 1, 1, b"abc"), 0);
    assert_eq!(buf, [0u8; 10]);
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "too short")]
fn reply_into_short_buffer_asserts_in_debug() {
    emit_icmp_echo_reply(&mut [0u8; 10], 1, 1, b"abc");
}
