//! TCP headers and options (RFC 9293, RFC 7323, RFC 2018): a validating
//! zero-copy parser and an emitter that writes in place around a payload the
//! caller has already copied into the transmit buffer.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::{BitAnd, BitOr, BitOrAssign};

use super::checksum;
use super::ipv4::{emit_ipv4_header, protocol, IPV4_HEADER_LEN};
use super::WireError;

/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;

/// The data offset field is four bits of 32-bit words: at most 60 bytes of
/// header, so at most 40 of options.
const MAX_OPTIONS_LEN: usize = 40;

/// Time-to-live of every packet built by [`emit_ipv4_tcp`]: the Linux default
/// (`net.ipv4.ip_default_ttl`).
const DEFAULT_TTL: u8 = 64;

/// RFC 7323 §2.3: a shift above 14 would make the window exceed the 2^30 that
/// sequence-number comparisons can tell apart.
const MAX_WINDOW_SCALE: u8 = 14;

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// The eight control bits of a TCP header (byte 13). The experimental NS bit is
/// not carried: nothing here implements ECN nonces (RFC 3540, now historic).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// Bit order is wire order, which is also the order tcpdump prints.
    const NAMES: [(TcpFlags, &'static str); 8] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    /// No flags set.
    pub const fn empty() -> Self {
        TcpFlags(0)
    }

    /// The raw byte as it appears on the wire.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag in `other` is set in `self`.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag in `other` is set in `self`.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Clears the flags in `other`.
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl fmt::Display for TcpFlags {
    /// Prints the set flags joined by `|`, e.g. `SYN|ACK`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    /// Same as `Display`: test failures and traces read better as `SYN|ACK`
    /// than as `TcpFlags(18)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One SACK block (RFC 2018): the receiver holds `start..end` (`end` is the
/// sequence number just past the block).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct SackBlock {
    /// First sequence number of the block.
    pub start: u32,
    /// Sequence number just past the block.
    pub end: u32,
}

/// The TCP options the stack understands, parsed or to be sent.
///
/// A fixed-size value (no allocation), so it can be copied freely into
/// segments and connection state.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TcpOptions {
    /// Maximum segment size (kind 2), sent on SYNs.
    pub mss: Option<u16>,
    /// Window scale shift (kind 3), sent on SYNs; parsed values above 14 are
    /// clamped to 14 as RFC 7323 §2.3 requires.
    pub window_scale: Option<u8>,
    /// SACK permitted (kind 4), sent on SYNs.
    pub sack_permitted: bool,
    /// Timestamps (kind 8): `(TSval, TSecr)`.
    pub timestamps: Option<(u32, u32)>,
    /// SACK blocks (kind 5) storage; only the first `sack_len` are meaningful.
    /// Use [`TcpOptions::sack`] and [`TcpOptions::push_sack`].
    pub sack_blocks: [SackBlock; 4],
    /// How many of `sack_blocks` are in use.
    pub sack_len: u8,
}

impl TcpOptions {
    /// The SACK blocks in use, first (most recent, by RFC 2018 convention)
    /// first.
    pub fn sack(&self) -> &[SackBlock] {
        let n = usize::from(self.sack_len).min(self.sack_blocks.len());
        &self.sack_blocks[..n]
    }

    /// Appends a SACK block; returns false, changing nothing, when all four
    /// slots are in use.
    pub fn push_sack(&mut self, block: SackBlock) -> bool {
        match self.sack_blocks.get_mut(usize::from(self.sack_len)) {
            Some(slot) => {
                *slot = block;
                self.sack_len += 1;
                true
            }
            None => false,
        }
    }

    /// Bytes these options take in a header: padded to a multiple of 4 and at
    /// most 40. SACK blocks that do not fit after the other options are left
    /// out of the encoding (the first ones are kept).
    pub fn encoded_len(&self) -> usize {
        let blocks = self.sack_blocks_encoded();
        self.len_without_sack() + if blocks > 0 { 4 + 8 * blocks } else { 0 }
    }

    /// Length of everything but SACK blocks; at most 4 + 12 + 4 = 20.
    fn len_without_sack(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        if self.sack_permitted || self.timestamps.is_some() {
            // SACK_PERM + TS, NOP NOP TS, or NOP NOP SACK_PERM.
            len += if self.timestamps.is_some() { 12 } else { 4 };
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        len
    }

    /// How many SACK blocks fit after the other options (each needs 8 bytes,
    /// plus 4 for NOP NOP kind length).
    fn sack_blocks_encoded(&self) -> usize {
        let room = MAX_OPTIONS_LEN.saturating_sub(self.len_without_sack() + 4) / 8;
        self.sack().len().min(room)
    }

    /// Writes the encoding into `out`, which must hold `encoded_len()` bytes;
    /// returns the number of bytes written.
    ///
    /// The layout is Linux's (`tcp_options_write`), so that every 32-bit
    /// option value is word-aligned and a capture looks like one from Linux.
    fn write(&self, out: &mut [u8]) -> usize {
        let mut w = Writer { out, pos: 0 };
        if let Some(mss) = self.mss {
            let [a, b] = mss.to_be_bytes();
            w.put(&[kind::MSS, 4, a, b]);
        }
        match (self.sack_permitted, self.timestamps) {
            (true, Some(_)) => w.put(&[kind::SACK_PERMITTED, 2]),
            (false, Some(_)) => w.put(&[kind::NOP, kind::NOP]),
            (true, None) => w.put(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]),
            (false, None) => {}
        }
        if let Some((tsval, tsecr)) = self.timestamps {
            w.put(&[kind::TIMESTAMPS, 10]);
            w.put(&tsval.to_be_bytes());
            w.put(&tsecr.to_be_bytes());
        }
        if let Some(shift) = self.window_scale {
            w.put(&[kind::NOP, kind::WINDOW_SCALE, 3, shift]);
        }
        let blocks = self.sack_blocks_encoded();
        if blocks > 0 {
            // blocks <= 4, so the length is at most 34 and fits a byte.
            w.put(&[kind::NOP, kind::NOP, kind::SACK, (2 + 8 * blocks) as u8]);
            for b in self.sack().iter().take(blocks) {
                w.put(&b.start.to_be_bytes());
                w.put(&b.end.to_be_bytes());
            }
        }
        w.pos
    }
}

/// A cursor over an output slice that drops writes past its end instead of
/// panicking; callers size the slice first, so a drop would be a bug caught by
/// the length check that follows.
struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        if let Some(dst) = self.out.get_mut(self.pos..end) {
            dst.copy_from_slice(bytes);
            self.pos = end;
        }
    }
}

/// A validated TCP segment borrowed from a receive buffer.
///
/// Only produced by [`parse_tcp`], so its checksum, data offset and option
/// lengths are known good. Values are as on the wire: `window` is not yet
/// scaled, and `ack` is present even when the ACK flag is not set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// Receive window, unscaled.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Recognized options.
    pub options: TcpOptions,
    /// Data after the header.
    pub payload: &'a [u8],
}

/// Parses and validates a TCP segment; `buf` is the whole IP payload.
///
/// Checks, in this order: at least 20 bytes ([`WireError::Truncated`]); at
/// most 65535 bytes, the most the pseudo-header can describe
/// ([`WireError::BadTotalLength`]); the checksum over the IPv4 pseudo-header
/// (`src`, `dst`, protocol 6, `buf.len()`) and `buf`
/// ([`WireError::BadChecksum`]); a data offset of at least 5 words and within
/// `buf` ([`WireError::BadDataOffset`]); option lengths
/// ([`WireError::BadOption`]).
///
/// Options understood: EOL, NOP, MSS, window scale, SACK permitted, SACK and
/// timestamps. A known option with a wrong length is ignored rather than
/// failing the segment, as Linux does, and so is an unknown option; an option
/// whose length byte is 0 or 1, is missing, or runs past the header is an
/// error, since nothing after it can be found.
pub fn parse_tcp(src: Ipv4Addr, dst: Ipv4Addr, buf: &[u8]) -> Result<TcpSegment<'_>, WireError> {
    parse_tcp_with(src, dst, buf, Checksum::Full)
}

/// [`parse_tcp`] of a segment whose checksum is as `mode` says: a
/// [`Checksum::Partial`] one (a packet the stack itself built for
/// segmentation offload) is not verified.
pub fn parse_tcp_with(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    buf: &[u8],
    mode: Checksum,
) -> Result<TcpSegment<'_>, WireError> {
    let fixed: &[u8; TCP_HEADER_LEN] = buf
        .first_chunk::<TCP_HEADER_LEN>()
        .ok_or(WireError::Truncated)?;
    let len = u16::try_from(buf.len()).map_err(|_| WireError::BadTotalLength)?;
    // Checked first so that a corrupted data offset reads as corruption.
    let ph = checksum::pseudo_header(src, dst, protocol::TCP, len);
    if mode == Checksum::Full && checksum::fold(checksum::sum(buf, ph)) != 0 {
        return Err(WireError::BadChecksum);
    }
    let header_len = usize::from(fixed[12] >> 4) * 4;
    if header_len < TCP_HEADER_LEN {
        return Err(WireError::BadDataOffset);
    }
    let (header, payload) = buf
        .split_at_checked(header_len)
        .ok_or(WireError::BadDataOffset)?;
    let options = parse_options(header.get(TCP_HEADER_LEN..).unwrap_or_default())?;
    Ok(TcpSegment {
        src_port: u16::from_be_bytes([fixed[0], fixed[1]]),
        dst_port: u16::from_be_bytes([fixed[2], fixed[3]]),
        seq: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ack: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        flags: TcpFlags(fixed[13]),
        window: u16::from_be_bytes([fixed[14], fixed[15]]),
        urgent: u16::from_be_bytes([fixed[18], fixed[19]]),
        options,
        payload,
    })
}

fn parse_options(mut rest: &[u8]) -> Result<TcpOptions, WireError> {
    let mut options = TcpOptions::default();
    while let Some((&kind, after_kind)) = rest.split_first() {
        match kind {
            kind::EOL => break,
            kind::NOP => {
                rest = after_kind;
                continue;
            }
            _ => {}
        }
        let len = usize::from(*after_kind.first().ok_or(WireError::BadOption)?);
        if len < 2 {
            return Err(WireError::BadOption);
        }
        let (option, after) = rest.split_at_checked(len).ok_or(WireError::BadOption)?;
        let body = option.get(2..).unwrap_or_default();
        match (kind, body) {
            (kind::MSS, &[a, b]) => options.mss = Some(u16::from_be_bytes([a, b])),
            (kind::WINDOW_SCALE, &[shift]) => {
                options.window_scale = Some(shift.min(MAX_WINDOW_SCALE));
            }
            (kind::SACK_PERMITTED, []) => options.sack_permitted = true,
            (kind::SACK, _) if !body.is_empty() && body.len() % 8 == 0 => {
                let (blocks, _) = body.as_chunks::<8>();
                for b in blocks {
                    // At most 4 blocks fit in 40 bytes; a fifth from a second
                    // SACK option would be dropped by push_sack.
                    options.push_sack(SackBlock {
                        start: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                        end: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                    });
                }
            }
            (kind::TIMESTAMPS, &[a0, a1, a2, a3, b0, b1, b2, b3]) => {
                options.timestamps = Some((
                    u32::from_be_bytes([a0, a1, a2, a3]),
                    u32::from_be_bytes([b0, b1, b2, b3]),
                ));
            }
            _ => {}
        }
        rest = after;
    }
    Ok(options)
}

/// What to put in an outgoing TCP header. The urgent pointer is always 0: the
/// stack does not send urgent data.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// Receive window, already scaled down.
    pub window: u16,
    /// Options to encode.
    pub options: TcpOptions,
}

impl TcpHeader {
    /// Bytes this header takes: 20 plus the encoded options.
    pub fn header_len(&self) -> usize {
        TCP_HEADER_LEN + self.options.encoded_len()
    }
}

/// Writes a TCP header around a payload already in place and returns
/// `header_len + payload_len`.
///
/// `buf` starts at the TCP header; the caller has copied the payload to
/// `buf[header.header_len()..][..payload_len]` first, so the data is copied
/// once, straight from the send buffer into the packet. The checksum covers the
/// IPv4 pseudo-header (`src`, `dst`), the header and the payload.
///
/// The caller guarantees the buffer is long enough and the segment at most
/// 65535 bytes; if not, nothing is written and 0 is returned (and debug builds
/// assert).
pub fn emit_tcp(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    header: &TcpHeader,
    payload_len: usize,
) -> usize {
    emit_tcp_with(buf, src, dst, header, payload_len, Checksum::Full)
}

/// What goes in the TCP checksum field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// The finished checksum over pseudo-header, header and payload.
    Full,
    /// The pseudo-header sum alone (Linux's CHECKSUM_PARTIAL): whoever
    /// cuts the packet into segments, or the kernel receiving it through
    /// a TUN device with a virtio-net header, finishes it, so the payload
    /// is never summed here.
    Partial,
}

fn emit_tcp_with(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    header: &TcpHeader,
    payload_len: usize,
    mode: Checksum,
) -> usize {
    let header_len = header.header_len();
    let Some(total) = header_len
        .checked_add(payload_len)
        .filter(|&total| total <= buf.len())
    else {
        debug_assert!(
            false,
            "buffer of {} bytes is too short for the segment",
            buf.len()
        );
        return 0;
    };
    let Ok(total_u16) = u16::try_from(total) else {
        debug_assert!(false, "TCP segment of {total} bytes is too long");
        return 0;
    };
    let segment = &mut buf[..total];
    let Some((fixed, rest)) = segment.split_first_chunk_mut::<TCP_HEADER_LEN>() else {
        return 0;
    };
    let [sp0, sp1] = header.src_port.to_be_bytes();
    let [dp0, dp1] = header.dst_port.to_be_bytes();
    let [s0, s1, s2, s3] = header.seq.to_be_bytes();
    let [a0, a1, a2, a3] = header.ack.to_be_bytes();
    let [w0, w1] = header.window.to_be_bytes();
    // header_len <= 60, so the word count fits the four-bit field.
    let data_offset = ((header_len / 4) as u8) << 4;
    *fixed = [
        sp0,
        sp1,
        dp0,
        dp1,
        s0,
        s1,
        s2,
        s3,
        a0,
        a1,
        a2,
        a3,
        data_offset,
        header.flags.bits(),
        w0,
        w1,
        0, // checksum, filled in below
        0,
        0, // urgent pointer
        0,
    ];
    let options_out = rest
        .get_mut(..header_len - TCP_HEADER_LEN)
        .unwrap_or_default();
    let written = header.options.write(options_out);
    debug_assert_eq!(written, header_len - TCP_HEADER_LEN);

    let ph = checksum::pseudo_header(src, dst, protocol::TCP, total_u16);
    let c = match mode {
        Checksum::Full => checksum::fold(checksum::sum(segment, ph)),
        Checksum::Partial => !checksum::fold(ph),
    };
    segment[16..18].copy_from_slice(&c.to_be_bytes());
    total
}

/// Builds a whole IPv4/TCP packet in place and returns its length: an IPv4
/// header at `buf[0..20]` (TTL 64, the given identification, DF) and
/// [`emit_tcp`] at `buf[20..]`.
///
/// The payload is expected at `buf[20 + header.header_len()..]`. Returns 0
/// if the buffer is too short or the packet would be longer than 65535 bytes
/// (debug builds assert); the buffer's contents are then unspecified.
pub fn emit_ipv4_tcp(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    header: &TcpHeader,
    payload_len: usize,
) -> usize {
    emit_ipv4_tcp_with(buf, src, dst, ident, header, payload_len, Checksum::Full)
}

/// [`emit_ipv4_tcp`] with the TCP checksum as `mode` says.
pub fn emit_ipv4_tcp_with(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    header: &TcpHeader,
    payload_len: usize,
    mode: Checksum,
) -> usize {
    let Some((ip, tcp)) = buf.split_at_mut_checked(IPV4_HEADER_LEN) else {
        debug_assert!(
            false,
            "buffer of {} bytes is too short for an IPv4 header",
            buf.len()
        );
        return 0;
    };
    let tcp_len = emit_tcp_with(tcp, src, dst, header, payload_len, mode);
    if tcp_len == 0 {
        return 0;
    }
    match emit_ipv4_header(ip, src, dst, protocol::TCP, DEFAULT_TTL, ident, tcp_len) {
        0 => 0,
        ip_len => ip_len + tcp_len,
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
