//! Keep-alive probes (RFC 1122, 4.2.3.6): after a connection has been idle
//! for a while, a segment the peer must answer shows whether it is still
//! there; a peer that stops answering ends the connection with ETIMEDOUT.

use std::time::Duration;

use super::state::State;
use super::tcb::Tcb;
use crate::error::Error;
use crate::time::Instant;
use crate::wire::TcpFlags;

/// Keep-alive settings, with Linux's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    /// SO_KEEPALIVE: probing is on.
    pub enabled: bool,
    /// TCP_KEEPIDLE: idle time before the first probe (Linux: 2 hours).
    pub idle: Duration,
    /// TCP_KEEPINTVL: time between unanswered probes (Linux: 75 s).
    pub interval: Duration,
    /// TCP_KEEPCNT: unanswered probes before giving up (Linux: 9).
    pub count: u32,
}

impl Default for KeepAlive {
    fn default() -> KeepAlive {
        KeepAlive {
            enabled: false,
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            count: 9,
        }
    }
}

impl Tcb {
    /// Changes the keep-alive settings (takes effect from `now`).
    pub fn set_keepalive(&mut self, now: Instant, settings: KeepAlive) {
        self.cfg.keepalive = settings;
        self.keepalive_probes = 0;
        // Like Linux, the idle time counts from when probing is turned on.
        self.last_heard = self.last_heard.max(now);
        self.arm_keepalive(now);
    }

    /// Restarts the idle clock: something arrived from the peer.
    pub(super) fn heard_from_peer(&mut self, now: Instant) {
        self.last_heard = now;
        self.keepalive_probes = 0;
        if self.cfg.keepalive.enabled {
            self.arm_keepalive(now);
        }
    }

    pub(super) fn arm_keepalive(&mut self, now: Instant) {
        let k = self.cfg.keepalive;
        self.keepalive_deadline =
            if k.enabled && matches!(self.state, State::Established | State::CloseWait) {
                Some(if self.keepalive_probes == 0 {
                    self.last_heard + k.idle
                } else {
                    now + k.interval
                })
            } else {
                None
            };
    }

    /// The keep-alive timer fired.
    pub(super) fn on_keepalive_timer(&mut self, now: Instant) {
        self.keepalive_deadline = None;
        let k = self.cfg.keepalive;
        if !k.enabled || !matches!(self.state, State::Established | State::CloseWait) {
            return;
        }
        if self.snd_una != self.snd_max || !self.send_buf.is_empty() {
            // Data in flight: the retransmission timer watches the peer.
            self.keepalive_deadline = Some(now + k.idle);
            return;
        }
        if self.keepalive_probes >= k.count {
            // Linux resets the connection it gives up on.
            self.pending_rst = Some((self.snd_max, self.rcv_nxt, TcpFlags::RST | TcpFlags::ACK));
            self.stats.keepalive_timeouts += 1;
            self.fail(Error::TimedOut);
            return;
        }
        self.keepalive_probes += 1;
        self.keepalive_probe = true;
        self.keepalive_deadline = Some(now + k.interval);
    }
}
