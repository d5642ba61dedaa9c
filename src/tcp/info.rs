//! TCP_INFO: what a connection can tell about itself, in the units and
//! numbering of Linux's `struct tcp_info` (include/uapi/linux/tcp.h), so
//! that tools written for the kernel read it unchanged.

use super::state::State;
use super::tcb::Tcb;
use crate::time::Instant;

/// TCPI_OPT_* bits of `tcpi_options`.
const OPT_TIMESTAMPS: u8 = 1;
const OPT_SACK: u8 = 2;
const OPT_WSCALE: u8 = 4;

/// A connection's figures; times in microseconds unless named otherwise,
/// windows in segments as Linux reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Linux's state number (1 ESTABLISHED … 11 CLOSING).
    pub state: u8,
    /// Congestion state: 0 open, 1 disorder, 3 recovery, 4 loss.
    pub ca_state: u8,
    /// Consecutive retransmission timeouts of the current segment.
    pub retransmits: u8,
    /// Unanswered zero-window probes.
    pub probes: u8,
    /// Options in use (timestamps 1, SACK 2, window scale 4).
    pub options: u8,
    /// Window scale the peer applies to its windows.
    pub snd_wscale: u8,
    /// Window scale we apply to ours.
    pub rcv_wscale: u8,
    /// Retransmission timeout.
    pub rto: u32,
    /// Sending MSS (options excluded).
    pub snd_mss: u32,
    /// The MSS we announced.
    pub rcv_mss: u32,
    /// Segments sent and not acknowledged.
    pub unacked: u32,
    /// Segments the peer SACKed.
    pub sacked: u32,
    /// Segments marked lost and not yet sent again.
    pub lost: u32,
    /// The smallest RTT measured.
    pub min_rtt: u32,
    /// Milliseconds since data was last sent.
    pub last_data_sent: u32,
    /// Milliseconds since a segment last came from the peer.
    pub last_ack_recv: u32,
    /// Path MTU.
    pub pmtu: u32,
    /// Smoothed RTT.
    pub rtt: u32,
    /// RTT variation.
    pub rttvar: u32,
    /// Slow-start threshold in segments (Linux's "infinity" when unset).
    pub snd_ssthresh: u32,
    /// Congestion window in segments.
    pub snd_cwnd: u32,
    /// The MSS we announced (as advmss).
    pub advmss: u32,
    /// Free receive buffer space.
    pub rcv_space: u32,
    /// Segments sent again over the connection's life.
    pub total_retrans: u32,
    /// Segments with data or FIN sent (pure ACKs are not counted).
    pub segs_out: u32,
    /// Bytes written and not yet sent.
    pub notsent_bytes: u32,
    /// Bytes the peer's window allows now.
    pub snd_wnd: u32,
}

/// Linux's TCP state numbers (include/net/tcp_states.h).
pub fn linux_state(s: State) -> u8 {
    match s {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    }
}

fn us(d: std::time::Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

impl Tcb {
    /// The connection's TCP_INFO at `now`.
    pub fn info(&self, now: Instant) -> TcpInfo {
        let mss = self.send_mss.max(1);
        let outstanding = super::seq::dist(self.snd_una, self.snd_max);
        let ms_since =
            |t: Instant| now.saturating_since(t).as_millis().min(u32::MAX as u128) as u32;
        let ca_state = if self.retries > 0 {
            4
        } else if self.cc.in_recovery() {
            3
        } else if self.scoreboard.sacked_bytes() > 0 || self.rack_deadline.is_some() {
            1
        } else {
            0
        };
        let mut options = 0;
        if self.ts_ok {
            options |= OPT_TIMESTAMPS;
        }
        if self.sack_ok {
            options |= OPT_SACK;
        }
        if self.ws_ok {
            options |= OPT_WSCALE;
        }
        let ssthresh = self.cc.ssthresh();
        let unsent = self.send_buf.len().saturating_sub(super::seq::dist(
            self.data_seq(),
            super::seq::max(self.data_seq(), self.snd_nxt),
        ));
        TcpInfo {
            state: linux_state(self.state),
            ca_state,
            retransmits: self.retries.min(255) as u8,
            probes: self.persist_probes.min(255) as u8,
            options,
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            rto: us(self.rtt.rto()),
            snd_mss: mss as u32,
            rcv_mss: u32::from(self.cfg.mss),
            unacked: outstanding.div_ceil(mss) as u32,
            sacked: self.scoreboard.sacked_bytes().div_ceil(mss) as u32,
            lost: self.sent.lost_bytes().div_ceil(mss) as u32,
            min_rtt: self.rtt.min_rtt().map_or(0, us),
            last_data_sent: self.last_data_sent.map_or(0, ms_since),
            last_ack_recv: ms_since(self.last_heard),
            pmtu: (self.segment_limit + 40) as u32,
            rtt: self.rtt.srtt().map_or(0, us),
            rttvar: us(self.rtt.rttvar()),
            snd_ssthresh: if ssthresh == usize::MAX {
                0x7fff_ffff
            } else {
                (ssthresh / mss) as u32
            },
            snd_cwnd: (self.cc.window() / mss) as u32,
            advmss: u32::from(self.cfg.mss),
            rcv_space: self.recv_buf.window() as u32,
            total_retrans: self.stats.retransmitted_segments.min(u32::MAX as u64) as u32,
            segs_out: self.stats.segments_sent.min(u32::MAX as u64) as u32,
            notsent_bytes: unsent as u32,
            snd_wnd: self.snd_wnd,
        }
    }
}
