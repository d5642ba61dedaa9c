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
    let fixed: &[u8; TCP_HEADER_LEN] = buf
        .first_chunk::<TCP_HEADER_LEN>()
        .ok_or(WireError::Truncated)?;
    let len = u16::try_from(buf.len()).map_err(|_| WireError::BadTotalLength)?;
    // Checked first so that a corrupted data offset reads as corruption.
    let ph = checksum::pseudo_header(src, dst, protocol::TCP, len);
    if checksum::fold(checksum::sum(buf, ph)) != 0 {
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
    let c = checksum::fold(checksum::sum(segment, ph));
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
    let Some((ip, tcp)) = buf.split_at_mut_checked(IPV4_HEADER_LEN) else {
        debug_assert!(
            false,
            "buffer of {} bytes is too short for an IPv4 header",
            buf.len()
        );
        return 0;
    };
    let tcp_len = emit_tcp(tcp, src, dst, header, payload_len);
    if tcp_len == 0 {
        return 0;
    }
    match emit_ipv4_header(ip, src, dst, protocol::TCP, DEFAULT_TTL, ident, tcp_len) {
        0 => 0,
        ip_len => ip_len + tcp_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::parse_ipv4;
    use etherparse::{PacketBuilder, TcpOptionElement};

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    fn sack(start: u32, end: u32) -> SackBlock {
        SackBlock { start, end }
    }

    /// Every combination of options: each of MSS, window scale, SACK permitted
    /// and timestamps present or not, with 0 to 4 SACK blocks.
    fn all_option_sets() -> Vec<TcpOptions> {
        let mut sets = Vec::new();
        for bits in 0..16u32 {
            for blocks in 0..=4u32 {
                let mut o = TcpOptions {
                    mss: (bits & 1 != 0).then_some(1460),
                    window_scale: (bits & 2 != 0).then_some(7),
                    sack_permitted: bits & 4 != 0,
                    timestamps: (bits & 8 != 0).then_some((0x0102_0304, 0xa0b0_c0d0)),
                    ..TcpOptions::default()
                };
                for i in 0..blocks {
                    assert!(o.push_sack(sack(1000 * i + 1, 1000 * i + 500)));
                }
                sets.push(o);
            }
        }
        sets
    }

    fn header(options: TcpOptions) -> TcpHeader {
        TcpHeader {
            src_port: 40000,
            dst_port: 80,
            seq: 0xdead_beef,
            ack: 0x0102_0304,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 0xfff0,
            options,
        }
    }

    /// Emits `h` with `payload` into a fresh buffer the way the stack does:
    /// payload first, then the header around it.
    fn emit(h: &TcpHeader, payload: &[u8]) -> Vec<u8> {
        let hl = h.header_len();
        let mut buf = vec![0xccu8; hl + payload.len()];
        buf[hl..].copy_from_slice(payload);
        assert_eq!(emit_tcp(&mut buf, SRC, DST, h, payload.len()), buf.len());
        buf
    }

    /// A segment with hand-written option bytes (padded by the caller to a
    /// multiple of 4) and a valid checksum.
    fn raw_segment(options: &[u8], payload: &[u8]) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let mut buf = vec![0u8; TCP_HEADER_LEN];
        buf[0..2].copy_from_slice(&1234u16.to_be_bytes());
        buf[2..4].copy_from_slice(&80u16.to_be_bytes());
        buf[12] = (((TCP_HEADER_LEN + options.len()) / 4) as u8) << 4;
        buf[13] = TcpFlags::SYN.bits();
        buf.extend_from_slice(options);
        buf.extend_from_slice(payload);
        fix_checksum(&mut buf);
        buf
    }

    fn fix_checksum(buf: &mut [u8]) {
        buf[16] = 0;
        buf[17] = 0;
        let ph = checksum::pseudo_header(SRC, DST, protocol::TCP, buf.len() as u16);
        let c = checksum::fold(checksum::sum(buf, ph));
        buf[16..18].copy_from_slice(&c.to_be_bytes());
    }

    fn options_of(raw: &[u8]) -> Result<TcpOptions, WireError> {
        let buf = raw_segment(raw, &[]);
        parse_tcp(SRC, DST, &buf).map(|s| s.options)
    }

    #[test]
    fn flags_display() {
        assert_eq!((TcpFlags::SYN | TcpFlags::ACK).to_string(), "SYN|ACK");
        assert_eq!(format!("{:?}", TcpFlags::SYN | TcpFlags::ACK), "SYN|ACK");
        assert_eq!(TcpFlags::empty().to_string(), "none");
        assert_eq!(TcpFlags::RST.to_string(), "RST");
        assert_eq!(
            TcpFlags(0xff).to_string(),
            "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR"
        );
        assert_eq!(
            format!("{:?}", TcpFlags::FIN | TcpFlags::PSH | TcpFlags::ACK),
            "FIN|PSH|ACK"
        );
    }

    #[test]
    fn flags_set_operations() {
        let mut f = TcpFlags::SYN;
        f |= TcpFlags::ACK;
        assert!(f.contains(TcpFlags::SYN));
        assert!(f.contains(TcpFlags::SYN | TcpFlags::ACK));
        assert!(!f.contains(TcpFlags::SYN | TcpFlags::FIN));
        assert!(f.intersects(TcpFlags::SYN | TcpFlags::FIN));
        assert!(!f.intersects(TcpFlags::RST | TcpFlags::FIN));
        assert!(f.contains(TcpFlags::empty()));
        assert!(!f.intersects(TcpFlags::empty()));
        assert_eq!(f.bits(), 0x12);
        assert_eq!(f & TcpFlags::ACK, TcpFlags::ACK);
        f.remove(TcpFlags::SYN);
        assert_eq!(f, TcpFlags::ACK);
        assert!(TcpFlags::default().is_empty());
        let all = [
            TcpFlags::FIN,
            TcpFlags::SYN,
            TcpFlags::RST,
            TcpFlags::PSH,
            TcpFlags::ACK,
            TcpFlags::URG,
            TcpFlags::ECE,
            TcpFlags::CWR,
        ];
        let union = all.iter().fold(TcpFlags::empty(), |a, &b| a | b);
        assert_eq!(union.bits(), 0xff);
    }

    #[test]
    fn sack_storage() {
        let mut o = TcpOptions::default();
        assert!(o.sack().is_empty());
        for i in 0..4 {
            assert!(o.push_sack(sack(i, i + 1)));
        }
        assert!(!o.push_sack(sack(9, 10)));
        assert_eq!(o.sack().len(), 4);
        assert_eq!(o.sack()[3], sack(3, 4));
        // A corrupt count set through the public field must not panic.
        o.sack_len = 200;
        assert_eq!(o.sack().len(), 4);
        assert!(!o.push_sack(sack(0, 1)));
        assert!(o.encoded_len() <= MAX_OPTIONS_LEN);
    }

    #[test]
    fn encoded_lengths() {
        let mut o = TcpOptions::default();
        assert_eq!(o.encoded_len(), 0);
        o.mss = Some(536);
        assert_eq!(o.encoded_len(), 4);
        o.sack_permitted = true;
        assert_eq!(o.encoded_len(), 8);
        o.timestamps = Some((1, 2));
        assert_eq!(o.encoded_len(), 16);
        o.window_scale = Some(14);
        assert_eq!(o.encoded_len(), 20); // the Linux SYN
        let mut o = TcpOptions {
            timestamps: Some((1, 2)),
            ..TcpOptions::default()
        };
        for i in 0..4 {
            o.push_sack(sack(i, i + 1));
        }
        // 12 for timestamps leaves room for three blocks, as on Linux.
        assert_eq!(o.encoded_len(), 12 + 4 + 3 * 8);
        o.timestamps = None;
        assert_eq!(o.encoded_len(), 4 + 4 * 8);
    }

    #[test]
    fn every_option_combination_round_trips() {
        for options in all_option_sets() {
            let len = options.encoded_len();
            assert_eq!(len % 4, 0, "{options:?}");
            assert!(len <= MAX_OPTIONS_LEN, "{options:?}");
            for payload in [&b""[..], b"x", b"hello, world", &[0xffu8; 1461][..]] {
                let h = header(options);
                let buf = emit(&h, payload);
                let seg = parse_tcp(SRC, DST, &buf).unwrap();
                assert_eq!(seg.src_port, h.src_port);
                assert_eq!(seg.dst_port, h.dst_port);
                assert_eq!(seg.seq, h.seq);
                assert_eq!(seg.ack, h.ack);
                assert_eq!(seg.flags, h.flags);
                assert_eq!(seg.window, h.window);
                assert_eq!(seg.urgent, 0);
                assert_eq!(seg.payload, payload);

                // Blocks that did not fit are the only difference.
                let mut expected = options;
                let fitted = (len
                    - TcpOptions {
                        sack_len: 0,
                        ..options
                    }
                    .encoded_len())
                .saturating_sub(4)
                    / 8;
                expected.sack_len = fitted as u8;
                expected.sack_blocks[fitted..].fill(SackBlock::default());
                assert_eq!(seg.options, expected, "{options:?}");
                assert_eq!(
                    seg.options.sack(),
                    &options.sack()[..fitted],
                    "the first blocks are kept"
                );
            }
        }
    }

    #[test]
    fn linux_syn_layout() {
        let o = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((0x1122_3344, 0)),
            ..TcpOptions::default()
        };
        let buf = emit(&header(o), &[]);
        assert_eq!(
            &buf[20..],
            &[
                2, 4, 0x05, 0xb4, // MSS 1460
                4, 2, // SACK permitted
                8, 10, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, // timestamps
                1, 3, 3, 7, // NOP, window scale 7
            ]
        );
        assert_eq!(buf[12] >> 4, 10);
    }

    #[test]
    fn aligned_layouts_without_sack_permitted() {
        let o = TcpOptions {
            timestamps: Some((5, 6)),
            ..TcpOptions::default()
        };
        let buf = emit(&header(o), &[]);
        assert_eq!(&buf[20..], &[1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6]);

        let o = TcpOptions {
            sack_permitted: true,
            ..TcpOptions::default()
        };
        let buf = emit(&header(o), &[]);
        assert_eq!(&buf[20..], &[1, 1, 4, 2]);

        let mut o = TcpOptions::default();
        o.push_sack(sack(0x0a0b_0c0d, 0x0102_0304));
        let buf = emit(&header(o), &[]);
        assert_eq!(
            &buf[20..],
            &[1, 1, 5, 10, 0x0a, 0x0b, 0x0c, 0x0d, 1, 2, 3, 4]
        );
    }

    #[test]
    fn emitted_bytes_match_etherparse() {
        let payload: Vec<u8> = (0..777u32).map(|i| (i * 7) as u8).collect();
        let o = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((0x1122_3344, 0x5566_7788)),
            ..TcpOptions::default()
        };
        let ours = emit(&header(o), &payload);

        let mut theirs = etherparse::TcpHeader::new(40000, 80, 0xdead_beef, 0xfff0);
        theirs.acknowledgment_number = 0x0102_0304;
        theirs.ack = true;
        theirs.psh = true;
        theirs
            .set_options(&[
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Timestamp(0x1122_3344, 0x5566_7788),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ])
            .unwrap();
        theirs.checksum = theirs
            .calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), &payload)
            .unwrap();
        assert_eq!(&ours[..theirs.header_len()], &theirs.to_bytes()[..]);
        assert_eq!(&ours[theirs.header_len()..], &payload[..]);
    }

    #[test]
    fn parses_a_packet_built_by_etherparse() {
        let builder = PacketBuilder::ipv4(SRC.octets(), DST.octets(), 64)
            .tcp(5555, 443, 1_000_000, 29200)
            .syn()
            .ack(77)
            .options(&[
                TcpOptionElement::MaximumSegmentSize(1400),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(20), // clamped to 14
                TcpOptionElement::SelectiveAcknowledgement((10, 20), [Some((30, 40)), None, None]),
                TcpOptionElement::Timestamp(9, 8),
            ])
            .unwrap();
        let payload = b"odd-length payload!";
        let mut packet = Vec::new();
        builder.write(&mut packet, payload).unwrap();

        let ip = parse_ipv4(&packet).unwrap();
        assert_eq!(ip.protocol, protocol::TCP);
        let seg = parse_tcp(ip.src, ip.dst, ip.payload).unwrap();
        assert_eq!(seg.src_port, 5555);
        assert_eq!(seg.dst_port, 443);
        assert_eq!(seg.seq, 1_000_000);
        assert_eq!(seg.ack, 77);
        assert_eq!(seg.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(seg.window, 29200);
        assert_eq!(seg.options.mss, Some(1400));
        assert_eq!(seg.options.window_scale, Some(14));
        assert_eq!(seg.options.sack(), &[sack(10, 20), sack(30, 40)]);
        assert_eq!(seg.options.timestamps, Some((9, 8)));
        assert!(!seg.options.sack_permitted);
        assert_eq!(seg.payload, payload);

        // The wrong pseudo-header (addresses swapped is still the same sum,
        // so use another address) must fail.
        assert_eq!(
            parse_tcp(ip.src, Ipv4Addr::new(10, 77, 0, 3), ip.payload),
            Err(WireError::BadChecksum)
        );
    }

    #[test]
    fn emit_ipv4_tcp_builds_a_whole_packet() {
        let mut o = TcpOptions {
            timestamps: Some((1, 2)),
            ..TcpOptions::default()
        };
        o.push_sack(sack(100, 200));
        let h = header(o);
        let payload = b"data";
        let start = IPV4_HEADER_LEN + h.header_len();
        let mut buf = [0u8; 200];
        buf[start..start + payload.len()].copy_from_slice(payload);
        let n = emit_ipv4_tcp(&mut buf, SRC, DST, 0x4242, &h, payload.len());
        assert_eq!(n, start + payload.len());

        let ip = parse_ipv4(&buf[..n]).unwrap();
        assert_eq!((ip.src, ip.dst, ip.ttl, ip.ident), (SRC, DST, 64, 0x4242));
        assert_eq!(ip.protocol, protocol::TCP);
        let seg = parse_tcp(ip.src, ip.dst, ip.payload).unwrap();
        assert_eq!(seg.options, o);
        assert_eq!(seg.payload, payload);

        // And etherparse agrees the packet is well formed.
        let sliced = etherparse::SlicedPacket::from_ip(&buf[..n]).unwrap();
        match sliced.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => {
                let expected = t
                    .to_header()
                    .calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), t.payload())
                    .unwrap();
                assert_eq!(t.checksum(), expected);
            }
            other => panic!("not TCP: {other:?}"),
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut o = TcpOptions {
            mss: Some(1460),
            timestamps: Some((1, 2)),
            ..TcpOptions::default()
        };
        o.push_sack(sack(1, 2));
        let buf = emit(&header(o), b"payload");
        for len in 0..buf.len() {
            let r = parse_tcp(SRC, DST, &buf[..len]);
            assert!(r.is_err(), "len {len}");
            if len < TCP_HEADER_LEN {
                assert_eq!(r, Err(WireError::Truncated));
            }
        }
        // With the checksum fixed up, cuts inside the header are data offset
        // errors and cuts in the payload are shorter valid segments.
        let hl = header(o).header_len();
        for len in TCP_HEADER_LEN..buf.len() {
            let mut cut = buf[..len].to_vec();
            fix_checksum(&mut cut);
            let r = parse_tcp(SRC, DST, &cut);
            if len < hl {
                assert_eq!(r, Err(WireError::BadDataOffset), "len {len}");
            } else {
                assert_eq!(r.unwrap().payload, &b"payload"[..len - hl]);
            }
        }
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let o = TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        };
        let good = emit(&header(o), b"abc");
        for bit in 0..good.len() * 8 {
            let mut buf = good.clone();
            buf[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                parse_tcp(SRC, DST, &buf),
                Err(WireError::BadChecksum),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn bad_data_offset() {
        for offset in 0..5u8 {
            let mut buf = raw_segment(&[], b"abcdefgh");
            buf[12] = offset << 4;
            fix_checksum(&mut buf);
            assert_eq!(parse_tcp(SRC, DST, &buf), Err(WireError::BadDataOffset));
        }
        // Offset 15 (60 bytes) in a 28-byte segment.
        let mut buf = raw_segment(&[], b"abcdefgh");
        buf[12] = 0xf0;
        fix_checksum(&mut buf);
        assert_eq!(parse_tcp(SRC, DST, &buf), Err(WireError::BadDataOffset));
        // The data offset may cover the whole segment: no payload.
        let mut buf = raw_segment(&[], b"\x01\x01\x01\x01");
        buf[12] = 6 << 4;
        fix_checksum(&mut buf);
        assert_eq!(parse_tcp(SRC, DST, &buf).unwrap().payload, b"");
    }

    #[test]
    fn oversized_segment() {
        let buf = vec![0u8; 65536];
        assert_eq!(parse_tcp(SRC, DST, &buf), Err(WireError::BadTotalLength));
    }

    #[test]
    fn malformed_option_lengths_fail() {
        // Length 0 and 1 would loop forever or overlap the next option.
        assert_eq!(options_of(&[2, 0, 0, 0]), Err(WireError::BadOption));
        assert_eq!(options_of(&[99, 1, 0, 0]), Err(WireError::BadOption));
        // Runs past the header.
        assert_eq!(options_of(&[2, 8, 5, 0xb4]), Err(WireError::BadOption));
        assert_eq!(
            options_of(&[1, 1, 8, 10, 0, 0, 0, 1]),
            Err(WireError::BadOption)
        );
        // The length byte itself is missing.
        assert_eq!(options_of(&[1, 1, 1, 30]), Err(WireError::BadOption));
    }

    #[test]
    fn known_options_with_wrong_lengths_are_ignored() {
        let o = options_of(&[
            2, 3, 5, // MSS with length 3
            3, 4, 7, 0, // window scale with length 4
            4, 3, 0, // SACK permitted with length 3
            8, 6, 0, 0, 0, 1, // timestamps with length 6
            5, 6, 0, 0, 0, 1, // SACK with a partial block
            2, 4, 0x02, 0x18, // a good MSS 536 after all that
            0, 0, // EOL, padding
        ])
        .unwrap();
        assert_eq!(
            o,
            TcpOptions {
                mss: Some(536),
                ..TcpOptions::default()
            }
        );
        // An empty SACK (length 2) is ignored too.
        assert_eq!(options_of(&[5, 2, 1, 1]), Ok(TcpOptions::default()));
    }

    #[test]
    fn unknown_options_are_skipped() {
        let o = options_of(&[
            30, 4, 0xaa, 0xbb, // MPTCP-ish
            34, 2, // TFO cookie request
            1, 1, // NOPs
            3, 3, 9, 0, // window scale 9, then EOL
        ])
        .unwrap();
        assert_eq!(o.window_scale, Some(9));
        assert_eq!(o.mss, None);
    }

    #[test]
    fn eol_ends_parsing() {
        // After EOL, even garbage that would be an error is not looked at.
        let o = options_of(&[2, 4, 1, 0, 0, 2, 0, 0]).unwrap();
        assert_eq!(o.mss, Some(256));
        assert_eq!(options_of(&[0, 0, 0, 0]), Ok(TcpOptions::default()));
    }

    #[test]
    fn window_scale_is_clamped() {
        for (shift, expected) in [(0, 0), (14, 14), (15, 14), (255, 14)] {
            let o = options_of(&[1, 3, 3, shift]).unwrap();
            assert_eq!(o.window_scale, Some(expected), "shift {shift}");
        }
    }

    #[test]
    fn four_sack_blocks_parse() {
        let mut raw = vec![1, 1, 5, 34];
        for i in 0..4u32 {
            raw.extend_from_slice(&(i * 10).to_be_bytes());
            raw.extend_from_slice(&(i * 10 + 5).to_be_bytes());
        }
        let o = options_of(&raw).unwrap();
        assert_eq!(
            o.sack(),
            &[sack(0, 5), sack(10, 15), sack(20, 25), sack(30, 35)]
        );
    }

    #[test]
    fn urgent_pointer_is_parsed() {
        let mut buf = raw_segment(&[], b"!");
        buf[13] = (TcpFlags::URG | TcpFlags::ACK).bits();
        buf[18..20].copy_from_slice(&1u16.to_be_bytes());
        fix_checksum(&mut buf);
        let seg = parse_tcp(SRC, DST, &buf).unwrap();
        assert_eq!(seg.urgent, 1);
        assert!(seg.flags.contains(TcpFlags::URG));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 0x1234_5678;
        let mut buf = [0u8; 80];
        for _ in 0..50_000 {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let len = (x as usize) % (buf.len() + 1);
            let seg = &mut buf[..len];
            // Mostly small option bytes and a valid checksum, so that the
            // option parser sees many shapes.
            if len >= TCP_HEADER_LEN {
                for b in seg[TCP_HEADER_LEN..].iter_mut() {
                    *b %= 12;
                }
                fix_checksum(seg);
            }
            let _ = parse_tcp(SRC, DST, seg);
        }
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn emit_into_short_buffer_returns_zero() {
        let h = header(TcpOptions {
            mss: Some(1),
            ..TcpOptions::default()
        });
        let mut buf = [0u8; 30];
        assert_eq!(emit_tcp(&mut buf, SRC, DST, &h, 7), 0);
        assert_eq!(emit_tcp(&mut buf, SRC, DST, &h, usize::MAX), 0);
        assert_eq!(emit_ipv4_tcp(&mut buf, SRC, DST, 0, &h, 0), 0);
        assert_eq!(emit_ipv4_tcp(&mut buf[..10], SRC, DST, 0, &h, 0), 0);
        assert_eq!(buf, [0u8; 30]);
        let mut big = vec![0u8; 70_000];
        assert_eq!(emit_tcp(&mut big, SRC, DST, &h, 65_512), 0);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "too short")]
    fn emit_into_short_buffer_asserts_in_debug() {
        emit_tcp(&mut [0u8; 30], SRC, DST, &header(TcpOptions::default()), 11);
    }
}
