//! What an ICMP error about one of our segments does to the connection
//! (RFC 1122 4.2.3.9, RFC 5927, RFC 1191): unreachable ends a connection
//! still opening and is remembered as a soft error on an open one;
//! "fragmentation needed" lowers the path MTU.

use super::seq;
use super::state::State;
use super::tcb::Tcb;
use crate::error::Error;
use crate::time::Instant;

/// Linux's floor for a path MTU learned from ICMP (ip_rt_min_pmtu): a
/// forged "fragmentation needed" cannot shrink segments below this.
pub const MIN_PATH_MTU: u16 = 552;

/// IPv4 and TCP headers without options.
const HEADERS: usize = 40;

impl Tcb {
    /// An ICMP destination unreachable (`code`) quoting a segment of ours
    /// whose sequence number was `quoted_seq`. Ignored unless that number
    /// lies between SND.UNA and SND.MAX (RFC 5927, 4.1: a blind attacker
    /// does not know it).
    pub fn on_icmp_unreachable(&mut self, now: Instant, code: u8, quoted_seq: u32) {
        if !seq::le(self.snd_una, quoted_seq) || !seq::le(quoted_seq, self.snd_max) {
            return;
        }
        let err = match code {
            0 | 6 | 11 => Error::NetworkUnreachable,
            2 | 3 => Error::ConnectionRefused,
            _ => Error::HostUnreachable,
        };
        match self.state {
            // Still opening: nothing to lose by giving up now, as Linux does.
            State::SynSent | State::SynReceived if !self.passive => self.fail(err),
            _ => {
                // Routes come back: an open connection only remembers it, and
                // reports it instead of ETIMEDOUT if it times out (RFC 1122).
                self.soft_error = Some(err);
                let _ = now;
            }
        }
    }

    /// An ICMP "fragmentation needed" for a segment starting at
    /// `quoted_seq`: the path takes at most `mtu` bytes per packet. Segments
    /// shrink to fit and whatever was in flight goes again at the new size.
    pub fn on_path_mtu(&mut self, now: Instant, mtu: u16, quoted_seq: u32) {
        if !seq::le(self.snd_una, quoted_seq) || !seq::lt(quoted_seq, self.snd_max) {
            return;
        }
        let mtu = mtu.max(MIN_PATH_MTU) as usize;
        let limit = mtu - HEADERS;
        if limit >= self.segment_limit {
            return;
        }
        let options = self.segment_limit - self.send_mss;
        self.segment_limit = limit;
        self.send_mss = limit - options;
        self.cc.set_mss(self.send_mss);
        // The big segments were dropped on the way: send them again, now,
        // in the new size. Not a congestion signal (Linux does the same).
        self.snd_nxt = self.snd_una;
        self.rtt_probe = None;
        self.stats.path_mtu_drops += 1;
        let _ = now;
    }
}
