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
