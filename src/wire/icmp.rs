//! ICMP for IPv4 (RFC 792): enough to answer pings and to hear about
//! unreachable destinations.

use super::checksum;
use super::WireError;

/// ICMP header length: type, code, checksum and the 4-byte rest-of-header.
const ICMP_HEADER_LEN: usize = 8;

/// Message types (IANA "ICMP Type Numbers").
mod kind {
    pub const ECHO_REPLY: u8 = 0;
    pub const DESTINATION_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
}

/// A validated ICMP message borrowed from a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpMessage<'a> {
    /// Type 8, a ping; answer with [`emit_icmp_echo_reply`] echoing all three
    /// fields.
    EchoRequest {
        /// Identifier, echoed.
        ident: u16,
        /// Sequence number, echoed.
        seq: u16,
        /// Data, echoed.
        data: &'a [u8],
    },
    /// Type 0, the answer to a ping.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Type 3: a datagram the stack sent could not be delivered.
    DestinationUnreachable {
        /// Why (RFC 792 and RFC 1122: 0 net, 1 host, 2 protocol, 3 port,
        /// 4 fragmentation needed and DF set, …).
        code: u8,
        /// With code 4, the MTU of the next hop (RFC 1191; 0 from routers
        /// that predate it).
        next_hop_mtu: u16,
        /// Everything after the ICMP header: the quoted IP header of the
        /// datagram that failed and at least 8 bytes of its payload (RFC 1812
        /// routers may quote more), enough to find the TCP ports. Not
        /// validated: the quoted header's checksum and lengths may be anything.
        original: &'a [u8],
    },
    /// Any other type, checksum-verified but not interpreted.
    Other {
        /// ICMP type.
        kind: u8,
        /// ICMP code.
        code: u8,
    },
}

/// Parses an ICMP message; `buf` is the whole IP payload.
///
/// Fails with [`WireError::Truncated`] below 8 bytes and
/// [`WireError::BadChecksum`] when the checksum over `buf` is wrong.
pub fn parse_icmp(buf: &[u8]) -> Result<IcmpMessage<'_>, WireError> {
    let (header, rest) = buf
        .split_first_chunk::<ICMP_HEADER_LEN>()
        .ok_or(WireError::Truncated)?;
    if checksum::checksum(buf) != 0 {
        return Err(WireError::BadChecksum);
    }
    let [kind, code, _, _, i0, i1, s0, s1] = *header;
    let ident = u16::from_be_bytes([i0, i1]);
    let seq = u16::from_be_bytes([s0, s1]);
    Ok(match kind {
        kind::ECHO_REQUEST => IcmpMessage::EchoRequest {
            ident,
            seq,
            data: rest,
        },
        kind::ECHO_REPLY => IcmpMessage::EchoReply {
            ident,
            seq,
            data: rest,
        },
        kind::DESTINATION_UNREACHABLE => IcmpMessage::DestinationUnreachable {
            code,
            next_hop_mtu: seq,
            original: rest,
        },
        _ => IcmpMessage::Other { kind, code },
    })
}

/// Writes an echo reply (type 0, code 0) with the given identifier, sequence
/// number and data at `buf[0..]` and returns its length, `8 + data.len()`.
/// The caller writes the IPv4 header in front.
///
/// Returns 0, writing nothing, if `buf` is too short (debug builds assert).
pub fn emit_icmp_echo_reply(buf: &mut [u8], ident: u16, seq: u16, data: &[u8]) -> usize {
    let len = ICMP_HEADER_LEN + data.len();
    let Some(message) = buf.get_mut(..len) else {
        debug_assert!(
            false,
            "buffer of {} bytes is too short for an echo reply of {len}",
            buf.len()
        );
        return 0;
    };
    let Some((header, body)) = message.split_first_chunk_mut::<ICMP_HEADER_LEN>() else {
        return 0;
    };
    let [i0, i1] = ident.to_be_bytes();
    let [s0, s1] = seq.to_be_bytes();
    *header = [kind::ECHO_REPLY, 0, 0, 0, i0, i1, s0, s1];
    body.copy_from_slice(data);
    let c = checksum::checksum(message);
    message[2..4].copy_from_slice(&c.to_be_bytes());
    len
}

#[cfg(test)]
#[path = "icmp_tests.rs"]
mod tests;
