//! SYN cookies (RFC 4987, 3.6): when a listener's SYN queue is full, the
//! SYN|ACK's sequence number carries the connection's state instead of a
//! queue entry, and the ACK that comes back rebuilds it.
//!
//! The 32 bits: a 64-second counter (5 bits) · an MSS index (3 bits) · a
//! 24-bit keyed hash of the addresses, ports, the peer's ISN and the
//! counter. Window scale and SACK ride in the low 5 bits of our timestamp
//! (the peer echoes it), as Linux does; without timestamps they are not
//! offered, since nothing could remember them.

use std::net::SocketAddrV4;

use crate::tcp::IsnGenerator;
use crate::time::Instant;

/// MSS values a cookie can say (the largest not above the peer's is used).
pub const MSS_TABLE: [u16; 8] = [536, 1024, 1220, 1300, 1360, 1400, 1440, 1460];

/// Length of one counter step: a cookie is good for one to two of them.
const PERIOD_MS: u64 = 64_000;

/// Low bits of our timestamp that carry the options.
pub const TS_BITS: u32 = 5;
const TS_MASK: u32 = (1 << TS_BITS) - 1;
const NO_WSCALE: u32 = 15;

fn counter(now: Instant) -> u32 {
    (now.millis() / PERIOD_MS) as u32
}

fn hash24(
    keys: &IsnGenerator,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    peer_isn: u32,
    t: u32,
) -> u32 {
    let mut b = [0u8; 20];
    b[0..4].copy_from_slice(&local.ip().octets());
    b[4..6].copy_from_slice(&local.port().to_be_bytes());
    b[6..10].copy_from_slice(&remote.ip().octets());
    b[10..12].copy_from_slice(&remote.port().to_be_bytes());
    b[12..16].copy_from_slice(&peer_isn.to_be_bytes());
    b[16..20].copy_from_slice(&t.to_be_bytes());
    (keys.hash64(&b) & 0x00ff_ffff) as u32
}

/// The cookie (our ISN) for a SYN with sequence number `peer_isn`
/// announcing `peer_mss`, and the MSS it stands for.
pub fn make(
    keys: &IsnGenerator,
    now: Instant,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    peer_isn: u32,
    peer_mss: u16,
) -> (u32, u16) {
    let index = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0);
    let t = counter(now);
    let cookie =
        ((t & 31) << 27) | ((index as u32) << 24) | hash24(keys, local, remote, peer_isn, t);
    (cookie, MSS_TABLE[index])
}

/// The MSS a returning `cookie` (the ACK's number less one) stands for, if
/// it is ours and at most two periods old.
pub fn check(
    keys: &IsnGenerator,
    now: Instant,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    peer_isn: u32,
    cookie: u32,
) -> Option<u16> {
    let now_t = counter(now);
    (0..2).find_map(|age| {
        let t = now_t.wrapping_sub(age);
        let ok = cookie >> 27 == t & 31
            && cookie & 0x00ff_ffff == hash24(keys, local, remote, peer_isn, t);
        ok.then(|| MSS_TABLE[((cookie >> 24) & 7) as usize])
    })
}

/// Our timestamp for the SYN|ACK: `ts_now` with the options in its low
/// bits, never ahead of `ts_now` (the peer's PAWS would then drop what we
/// send next).
pub fn timestamp(ts_now: u32, wscale: Option<u8>, sack: bool) -> u32 {
    let bits = (u32::from(wscale.unwrap_or(NO_WSCALE as u8)).min(NO_WSCALE) << 1) | sack as u32;
    let ts = (ts_now & !TS_MASK) | bits;
    if ts.wrapping_sub(ts_now) as i32 > 0 {
        ts.wrapping_sub(1 << TS_BITS)
    } else {
        ts
    }
}

/// The window scale and SACK a returning timestamp echo carries.
pub fn options_from_echo(echo: u32) -> (Option<u8>, bool) {
    let ws = (echo & TS_MASK) >> 1;
    ((ws != NO_WSCALE).then_some(ws as u8), echo & 1 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ends() -> (SocketAddrV4, SocketAddrV4) {
        (
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 40000),
        )
    }

    #[test]
    fn a_cookie_comes_back_good_for_two_periods_only() {
        let keys = IsnGenerator::new();
        let (l, r) = ends();
        let now = Instant::from_millis(1_000_000);
        let (c, mss) = make(&keys, now, l, r, 777, 1460);
        assert_eq!(mss, 1460);
        assert_eq!(check(&keys, now, l, r, 777, c), Some(1460));
        let later = Instant::from_millis(1_000_000 + PERIOD_MS);
        assert_eq!(check(&keys, later, l, r, 777, c), Some(1460));
        let too_late = Instant::from_millis(1_000_000 + 3 * PERIOD_MS);
        assert_eq!(check(&keys, too_late, l, r, 777, c), None);
        // Another peer, another ISN, or a flipped bit: not ours.
        assert_eq!(check(&keys, now, l, r, 778, c), None);
        assert_eq!(check(&keys, now, r, l, 777, c), None);
        assert_eq!(check(&keys, now, l, r, 777, c ^ 1), None);
        assert_eq!(check(&IsnGenerator::new(), now, l, r, 777, c), None);
    }

    #[test]
    fn the_mss_is_the_largest_in_the_table_not_above_the_peers() {
        let keys = IsnGenerator::new();
        let (l, r) = ends();
        let now = Instant::ZERO;
        for (peer, want) in [
            (1460, 1460),
            (1450, 1440),
            (1000, 536),
            (9000, 1460),
            (100, 536),
        ] {
            let (c, mss) = make(&keys, now, l, r, 1, peer);
            assert_eq!(mss, want);
            assert_eq!(check(&keys, now, l, r, 1, c), Some(want));
        }
    }

    #[test]
    fn options_ride_in_the_timestamp_without_running_ahead_of_it() {
        for ts_now in [0u32, 5, 31, 32, 1_000_000, u32::MAX] {
            for (ws, sack) in [
                (Some(7), true),
                (None, false),
                (Some(14), false),
                (Some(0), true),
            ] {
                let ts = timestamp(ts_now, ws, sack);
                assert!(ts_now.wrapping_sub(ts) < 64, "{ts} vs {ts_now}");
                assert_eq!(options_from_echo(ts), (ws, sack));
            }
        }
    }
}
