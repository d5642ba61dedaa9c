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
#[path = "ipv4_tests.rs"]
mod tests;
