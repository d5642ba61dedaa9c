//! Segmentation in software: cuts one TCP/IPv4 packet that carries several
//! segments' payload (what the stack hands a link that offloads
//! segmentation, with a partial checksum) into the segments a wire
//! carries, as the kernel's GSO does for a device that cannot.
//!
//! Each segment gets the original headers with its own sequence number,
//! IPv4 length and identification (counting up), both checksums finished,
//! FIN and PSH only on the last segment and CWR only on the first.

use super::checksum;
use super::ipv4::protocol;
use super::TcpFlags;
use std::net::Ipv4Addr;

/// Cuts `packet` into segments of at most `mss` payload bytes, built one at
/// a time in `scratch` and handed to `out`. A packet that is not TCP/IPv4,
/// or does not fit `scratch` per segment, goes to `out` unchanged (a link
/// then carries what it was given, as a wire would).
pub fn segment<E>(
    packet: &[u8],
    mss: usize,
    scratch: &mut [u8],
    mut out: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    let Some(layout) = Layout::of(packet) else {
        return out(packet);
    };
    let hdr = layout.ihl + layout.doff;
    if mss == 0 || scratch.len() < hdr + mss.min(layout.total - hdr) {
        return out(packet);
    }
    let payload = &packet[hdr..layout.total];
    let seq = u32::from_be_bytes([
        packet[layout.ihl + 4],
        packet[layout.ihl + 5],
        packet[layout.ihl + 6],
        packet[layout.ihl + 7],
    ]);
    let ident = u16::from_be_bytes([packet[4], packet[5]]);
    let flags = packet[layout.ihl + 13];
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let pieces = payload.len().div_ceil(mss).max(1);
    for i in 0..pieces {
        let chunk = &payload[(i * mss).min(payload.len())..((i + 1) * mss).min(payload.len())];
        let len = hdr + chunk.len();
        let seg = &mut scratch[..len];
        seg[..hdr].copy_from_slice(&packet[..hdr]);
        seg[hdr..].copy_from_slice(chunk);

        seg[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        seg[4..6].copy_from_slice(&ident.wrapping_add(i as u16).to_be_bytes());
        seg[10..12].fill(0);
        let c = checksum::checksum(&seg[..layout.ihl]);
        seg[10..12].copy_from_slice(&c.to_be_bytes());

        let tcp = &mut seg[layout.ihl..];
        let at = seq.wrapping_add((i * mss) as u32);
        tcp[4..8].copy_from_slice(&at.to_be_bytes());
        let mut f = flags;
        if i + 1 < pieces {
            f &= !(TcpFlags::FIN.bits() | TcpFlags::PSH.bits());
        }
        if i > 0 {
            f &= !TcpFlags::CWR.bits();
        }
        tcp[13] = f;
        put_checksum(tcp, src, dst);
        out(seg)?;
    }
    Ok(())
}

/// Finishes the partial TCP checksum of a TCP/IPv4 packet in place (for a
/// copy that leaves the stack unsegmented, such as a capture). Returns false
/// if the packet is not TCP/IPv4.
pub fn finish_checksum(packet: &mut [u8]) -> bool {
    let Some(layout) = Layout::of(packet) else {
        return false;
    };
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    put_checksum(&mut packet[layout.ihl..layout.total], src, dst);
    true
}

/// Computes a TCP segment's checksum over whatever its field held and
/// writes it there.
fn put_checksum(tcp: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) {
    tcp[16..18].fill(0);
    let ph = checksum::pseudo_header(src, dst, protocol::TCP, tcp.len() as u16);
    let c = checksum::fold(checksum::sum(tcp, ph));
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
}

/// Where the headers of a TCP/IPv4 packet end.
struct Layout {
    ihl: usize,
    doff: usize,
    total: usize,
}

impl Layout {
    fn of(packet: &[u8]) -> Option<Layout> {
        let first = *packet.first()?;
        let ihl = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || ihl < 20 || packet.len() < ihl + 20 || packet[9] != protocol::TCP {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
        let doff = usize::from(packet[ihl + 12] >> 4) * 4;
        if total > packet.len() || doff < 20 || ihl + doff > total {
            return None;
        }
        Some(Layout { ihl, doff, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        emit_ipv4_tcp, emit_ipv4_tcp_with, parse_ipv4, parse_tcp, Checksum, TcpHeader, TcpOptions,
    };

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn packet(payload: usize, flags: TcpFlags, mode: Checksum) -> Vec<u8> {
        let header = TcpHeader {
            src_port: 80,
            dst_port: 4000,
            seq: 0xffff_f000,
            ack: 2,
            flags,
            window: 100,
            options: TcpOptions {
                timestamps: Some((7, 9)),
                ..TcpOptions::default()
            },
        };
        let mut buf = vec![0u8; 20 + header.header_len() + payload];
        for (i, b) in buf[20 + header.header_len()..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let n = emit_ipv4_tcp_with(&mut buf, SRC, DST, 100, &header, payload, mode);
        buf.truncate(n);
        buf
    }

    #[test]
    fn cuts_into_checked_segments_with_flags_on_the_right_ones() {
        let flags = TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN | TcpFlags::CWR;
        let big = packet(3 * 1000 + 10, flags, Checksum::Partial);
        let mut scratch = [0u8; 1100];
        let mut got = Vec::new();
        segment(&big, 1000, &mut scratch, |seg| {
            let ip = parse_ipv4(seg).expect("IPv4 header checks");
            let tcp = parse_tcp(ip.src, ip.dst, ip.payload).expect("TCP checksum checks");
            got.push((
                ip.ident,
                tcp.seq,
                tcp.flags,
                tcp.payload.to_vec(),
                tcp.options,
            ));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(got.len(), 4);
        let mut joined = Vec::new();
        for (i, (ident, seq, f, payload, options)) in got.iter().enumerate() {
            assert_eq!(*ident, 100 + i as u16);
            assert_eq!(*seq, 0xffff_f000u32.wrapping_add(i as u32 * 1000));
            assert_eq!(f.contains(TcpFlags::FIN), i == 3);
            assert_eq!(f.contains(TcpFlags::PSH), i == 3);
            assert_eq!(f.contains(TcpFlags::CWR), i == 0);
            assert!(f.contains(TcpFlags::ACK));
            assert_eq!(options.timestamps, Some((7, 9)));
            joined.extend_from_slice(payload);
        }
        assert_eq!(got[3].3.len(), 10);
        let whole = packet(3010, flags, Checksum::Full);
        let ip = parse_ipv4(&whole).unwrap();
        assert_eq!(joined, parse_tcp(SRC, DST, ip.payload).unwrap().payload);
    }

    #[test]
    fn a_partial_checksum_is_finished_in_place() {
        let mut p = packet(5000, TcpFlags::ACK, Checksum::Partial);
        let ip = parse_ipv4(&p).unwrap();
        assert!(parse_tcp(SRC, DST, ip.payload).is_err());
        assert!(finish_checksum(&mut p));
        assert_eq!(p, packet(5000, TcpFlags::ACK, Checksum::Full));
    }

    #[test]
    fn what_is_not_tcp_or_does_not_fit_passes_unchanged() {
        let mut scratch = [0u8; 64];
        let mut seen = Vec::new();
        let mut keep = |seg: &[u8]| {
            seen.push(seg.to_vec());
            Ok::<(), ()>(())
        };
        segment(b"\x60garbage", 10, &mut scratch, &mut keep).unwrap();
        let big = packet(3000, TcpFlags::ACK, Checksum::Full);
        segment(&big, 1000, &mut scratch, &mut keep).unwrap();
        assert_eq!(seen, [b"\x60garbage".to_vec(), big]);
        let mut buf = [0u8; 80];
        let header = TcpHeader {
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: 4,
            flags: TcpFlags::ACK,
            window: 5,
            options: TcpOptions::default(),
        };
        let n = emit_ipv4_tcp(&mut buf, SRC, DST, 1, &header, 0);
        assert!(finish_checksum(&mut buf[..n]));
        assert!(!finish_checksum(&mut [0x45, 0, 0]));
    }
}
