//! The virtio-net header a TUN device opened with `IFF_VNET_HDR` puts
//! before every packet (`struct virtio_net_hdr`, 10 bytes, little-endian):
//! with `TUNSETOFFLOAD` the kernel hands over TCP segments of up to 64 KiB
//! (receive offload, its GSO/GRO) whose checksum it left partial, instead
//! of one read per 1500 bytes.

use crate::wire::checksum;

/// Size of the header (no `num_buffers`: not negotiated).
pub const HDR_LEN: usize = 10;

/// `flags`: the checksum from `csum_start` on is partial (pseudo-header only).
const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the kernel checked the checksum already.
const F_DATA_VALID: u8 = 2;

/// Whether a received packet's TCP checksum needs checking: not when the
/// kernel left it partial (a packet it built itself, which crossed no
/// wire) or says it checked it.
pub fn received_checksum(hdr: &[u8; HDR_LEN]) -> crate::wire::Checksum {
    if hdr[0] & (F_NEEDS_CSUM | F_DATA_VALID) != 0 {
        crate::wire::Checksum::Partial
    } else {
        crate::wire::Checksum::Full
    }
}

/// True if the header says the checksum is partial (to be completed by
/// [`complete_checksum`] before anyone verifies it).
pub fn needs_checksum(hdr: &[u8; HDR_LEN]) -> bool {
    hdr[0] & F_NEEDS_CSUM != 0
}

/// `gso_type`: TCP over IPv4, to be cut into `gso_size` segments.
const GSO_TCPV4: u8 = 1;

/// The header of a packet we write: no offload asked, checksums complete.
pub const PLAIN: [u8; HDR_LEN] = [0; HDR_LEN];

/// The header of a TCP/IPv4 packet we write whole for the kernel to cut
/// into segments of `mss` payload bytes (its GSO), or to take as one when
/// it delivers locally: the TCP checksum is partial (pseudo-header only),
/// from `ihl`, and `headers` is the length of IPv4 plus TCP headers.
pub fn gso(ihl: usize, headers: usize, mss: u16, segments: bool) -> [u8; HDR_LEN] {
    let mut h = [0u8; HDR_LEN];
    h[0] = F_NEEDS_CSUM;
    if segments {
        h[1] = GSO_TCPV4;
        h[4..6].copy_from_slice(&mss.to_le_bytes());
    }
    h[2..4].copy_from_slice(&(headers as u16).to_le_bytes());
    h[6..8].copy_from_slice(&(ihl as u16).to_le_bytes());
    h[8..10].copy_from_slice(&16u16.to_le_bytes());
    h
}

/// Completes the checksum of a received packet whose header says it is
/// partial: the field at `csum_start + csum_offset` holds the pseudo-header
/// sum, and the ones-complement sum from `csum_start` to the end finishes
/// it. Returns false for a header that does not fit the packet (the packet
/// is then dropped, as a corrupt one would be).
pub fn complete_checksum(hdr: &[u8; HDR_LEN], packet: &mut [u8]) -> bool {
    if hdr[0] & F_NEEDS_CSUM == 0 {
        return true;
    }
    let start = usize::from(u16::from_le_bytes([hdr[6], hdr[7]]));
    let offset = usize::from(u16::from_le_bytes([hdr[8], hdr[9]]));
    let at = start + offset;
    if at + 2 > packet.len() || start > packet.len() {
        return false;
    }
    let value = checksum::fold(checksum::sum(&packet[start..], 0));
    packet[at..at + 2].copy_from_slice(&value.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{emit_ipv4_tcp, parse_ipv4, parse_tcp, TcpFlags, TcpHeader, TcpOptions};
    use std::net::Ipv4Addr;

    #[test]
    fn a_partial_checksum_is_completed_and_then_verifies() {
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let header = TcpHeader {
            src_port: 80,
            dst_port: 4000,
            seq: 1,
            ack: 2,
            flags: TcpFlags::ACK,
            window: 100,
            options: TcpOptions::default(),
        };
        let mut buf = vec![0u8; 20 + 20 + 3000];
        for (i, b) in buf[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let n = emit_ipv4_tcp(&mut buf, src, dst, 7, &header, 3000);
        buf.truncate(n);
        let good = buf.clone();
        // What the kernel hands over: the pseudo-header sum in the field.
        let tcp_len = (n - 20) as u16;
        let pseudo = checksum::sum(&[], checksum::pseudo_header(src, dst, 6, tcp_len));
        let partial = !checksum::fold(pseudo);
        buf[36..38].copy_from_slice(&partial.to_be_bytes());
        assert!(parse_tcp(src, dst, parse_ipv4(&buf).unwrap().payload).is_err());
        let mut hdr = [0u8; HDR_LEN];
        hdr[0] = F_NEEDS_CSUM;
        hdr[6..8].copy_from_slice(&20u16.to_le_bytes());
        hdr[8..10].copy_from_slice(&16u16.to_le_bytes());
        assert!(complete_checksum(&hdr, &mut buf));
        assert_eq!(buf, good);
        // A header pointing past the packet is refused, not a panic.
        hdr[6..8].copy_from_slice(&5000u16.to_le_bytes());
        assert!(!complete_checksum(&hdr, &mut buf));
        // No flag: nothing to do.
        assert!(complete_checksum(&PLAIN, &mut buf));
        // What a receiver checks: nothing the kernel built or checked.
        use crate::wire::Checksum;
        assert_eq!(received_checksum(&PLAIN), Checksum::Full);
        assert_eq!(received_checksum(&hdr), Checksum::Partial);
        let mut valid = PLAIN;
        valid[0] = F_DATA_VALID;
        assert_eq!(received_checksum(&valid), Checksum::Partial);
        assert!(needs_checksum(&hdr) && !needs_checksum(&valid));
    }
}
