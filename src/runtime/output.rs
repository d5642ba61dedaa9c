//! Writing the packets the stack hands out: whole from a buffer, or as
//! headers in the buffer plus a payload left in its send ring.

use super::trace;
use crate::link::TunHandle;
use crate::tcp::Transmit;
use std::io;

/// Sends the packet `t` that `poll_transmit` wrote into `buf`.
///
/// A payload left in the send ring goes out with a gather write through
/// `gather` (a TUN device that completes checksums), without a copy; a
/// link that cannot gather gets it copied after the headers. Everything
/// else goes to `send(packet, gso)` (a `Link::send`, or `Link::send_gso`
/// when `gso` is set). `buf` has room for the whole packet.
pub(super) fn send_packet(
    buf: &mut [u8],
    t: &Transmit,
    gather: Option<TunHandle>,
    send: impl FnOnce(&[u8], Option<u16>) -> io::Result<()>,
) -> io::Result<()> {
    let trace = trace::packets_on();
    let Some(payload) = &t.payload else {
        if trace {
            trace::log_packet("out", &buf[..t.len], t.checksum());
        }
        return send(&buf[..t.len], t.gso);
    };
    let whole = t.len + payload.len();
    let gather = gather.filter(TunHandle::completes_checksums);
    if trace || gather.is_none() {
        payload.copy_to(&mut buf[t.len..whole]);
    }
    if trace {
        trace::log_packet("out", &buf[..whole], t.checksum());
    }
    match gather {
        // SAFETY: the payload's storage stays allocated while `t` lives.
        Some(h) => unsafe { h.send_parts(&buf[..t.len], &payload.spans(), t.gso) },
        // The checksum is partial: a one-segment "cut" completes it.
        None => {
            let mss = t
                .gso
                .unwrap_or(payload.len().min(usize::from(u16::MAX)) as u16);
            send(&buf[..whole], Some(mss))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::SendBuffer;
    use crate::wire::{emit_ipv4_tcp_with, parse_ipv4, parse_tcp_with, Checksum, TcpFlags};
    use crate::wire::{TcpHeader, TcpOptions};
    use std::net::Ipv4Addr;

    /// A link that cannot gather gets the payload copied after the headers
    /// and the packet as one segment to finish (its checksum is partial).
    #[test]
    fn without_a_gathering_device_the_payload_is_copied_after_the_headers() {
        let mut ring = SendBuffer::new(1 << 16);
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 241) as u8).collect();
        assert_eq!(ring.push(&data), 1000);
        let payload = ring.pin(100, 600).unwrap();
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 1));
        let header = TcpHeader {
            src_port: 1,
            dst_port: 2,
            seq: 7,
            ack: 9,
            flags: TcpFlags::ACK,
            window: 100,
            options: TcpOptions::default(),
        };
        let mut buf = vec![0u8; 2000];
        let n = emit_ipv4_tcp_with(&mut buf, src, dst, 1, &header, 600, Checksum::Partial);
        let t = Transmit {
            len: n - 600,
            gso: None,
            segments: 1,
            payload: Some(payload),
        };
        let mut got = None;
        send_packet(&mut buf, &t, None, |packet, gso| {
            got = Some((packet.to_vec(), gso));
            Ok(())
        })
        .unwrap();
        let (packet, gso) = got.expect("sent");
        assert_eq!(gso, Some(600), "one segment for the link to finish");
        let ip = parse_ipv4(&packet).unwrap();
        let tcp = parse_tcp_with(ip.src, ip.dst, ip.payload, Checksum::Partial).unwrap();
        assert_eq!(tcp.payload, &data[100..700]);
    }
}
