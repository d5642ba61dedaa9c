//! Packet formats: parse and build IPv4, TCP (with options) and ICMP, and
//! compute Internet checksums.
//!
//! Sans-IO and allocation-free: parsers borrow from the receive buffer and
//! return validated views, so everything above this layer can trust a parsed
//! header; emitters write into a caller's buffer. No input makes a parser
//! panic: a malformed packet is a [`WireError`].
//!
//! Fields are read and written by hand rather than through etherparse's
//! slices: the checks wanted here (fragments rejected, lenient TCP options,
//! specific errors) differ from etherparse's, and the emit path writes around
//! a payload already in place. etherparse serves as the independent oracle in
//! the tests.

pub mod checksum;
pub mod gso;
pub mod icmp;
pub mod ipv4;
pub mod tcp;

pub use icmp::{emit_icmp_echo_reply, parse_icmp, IcmpMessage};
pub use ipv4::{emit_ipv4_header, parse_ipv4, protocol, Ipv4Packet, IPV4_HEADER_LEN};
pub use tcp::{
    emit_ipv4_tcp, emit_ipv4_tcp_with, emit_tcp, parse_tcp, parse_tcp_with, Checksum, SackBlock,
    TcpFlags, TcpHeader, TcpOptions, TcpSegment, TCP_HEADER_LEN,
};

/// Why a packet was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its fixed header, or than the length its header claims.
    Truncated,
    /// IP version is not 4.
    BadVersion,
    /// IPv4 header length (IHL) below 5 words.
    BadHeaderLength,
    /// IPv4 total length smaller than the header, or a TCP segment longer than
    /// the 16-bit length a pseudo-header can carry.
    BadTotalLength,
    /// Header or segment checksum does not verify.
    BadChecksum,
    /// An IPv4 fragment; the stack does not reassemble.
    Fragmented,
    /// TCP data offset below 5 words or past the end of the segment.
    BadDataOffset,
    /// A TCP option whose length is malformed or runs past the header.
    BadOption,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "truncated packet",
            WireError::BadVersion => "not IPv4",
            WireError::BadHeaderLength => "bad IPv4 header length",
            WireError::BadTotalLength => "bad total length",
            WireError::BadChecksum => "bad checksum",
            WireError::Fragmented => "IPv4 fragment",
            WireError::BadDataOffset => "bad TCP data offset",
            WireError::BadOption => "malformed TCP option",
        })
    }
}

impl std::error::Error for WireError {}
