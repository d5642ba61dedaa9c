//! What `RSTCP_LOG=debug` and `trace` print: connection events (state
//! transitions, sockets freed) and one line per packet, tcpdump-like. The
//! stack only records events; the I/O thread writes them, outside the lock.

use crate::log::{self, Level};
use crate::rs_log;
use crate::stack::{ConnEvent, ConnEventKind};
use crate::wire::{self, protocol};

/// Logs connection events at debug level.
pub fn log_events(events: &[ConnEvent]) {
    for e in events {
        match e.kind {
            ConnEventKind::State(None, to) => {
                rs_log!(Debug, "{} > {}: {to}", e.local, e.remote)
            }
            ConnEventKind::State(Some(from), to) => {
                rs_log!(Debug, "{} > {}: {from} -> {to}", e.local, e.remote)
            }
            ConnEventKind::Freed => rs_log!(Debug, "{} > {}: freed", e.local, e.remote),
        }
    }
}

/// True when packets are to be logged (checked once per batch).
pub fn packets_on() -> bool {
    log::enabled(Level::Trace)
}

/// Logs one packet at trace level: `dir` is "in" or "out"; `checksum`
/// says whether its TCP checksum is finished (a packet for segmentation
/// offload carries a partial one).
pub fn log_packet(dir: &str, packet: &[u8], checksum: wire::Checksum) {
    let Ok(ip) = wire::parse_ipv4(packet) else {
        rs_log!(Trace, "{dir} {} bytes, not IPv4", packet.len());
        return;
    };
    if ip.protocol != protocol::TCP {
        rs_log!(
            Trace,
            "{dir} {} > {} protocol {} len {}",
            ip.src,
            ip.dst,
            ip.protocol,
            ip.payload.len()
        );
        return;
    }
    match wire::parse_tcp_with(ip.src, ip.dst, ip.payload, checksum) {
        Ok(t) => rs_log!(
            Trace,
            "{dir} {}:{} > {}:{} [{}] seq {} ack {} win {} len {}{}",
            ip.src,
            t.src_port,
            ip.dst,
            t.dst_port,
            t.flags,
            t.seq,
            t.ack,
            t.window,
            t.payload.len(),
            if t.options.sack().is_empty() {
                String::new()
            } else {
                let blocks: Vec<String> = t
                    .options
                    .sack()
                    .iter()
                    .map(|b| format!("{}-{}", b.start, b.end))
                    .collect();
                format!(" sack {}", blocks.join(","))
            }
        ),
        Err(e) => rs_log!(Trace, "{dir} {} > {} bad TCP ({e:?})", ip.src, ip.dst),
    }
}
