//! Sans-IO TCP: one connection (a [`Tcb`]) at a time.
//!
//! A `Tcb` takes the current time and parsed segments, and hands out the
//! segments to send and the next moment it wants to be woken — it never reads
//! a clock, sleeps or does I/O, so every behaviour is a deterministic test.

pub mod cc;
pub mod congestion;
mod icmp;
pub mod info;
mod input;
pub mod isn;
pub mod keepalive;
mod loss;
mod output;
pub mod rack;
pub mod reassembler;
pub mod recv_buffer;
pub mod rtt;
mod sack_recovery;
pub mod scoreboard;
pub mod send_buffer;
pub mod sent;
pub mod seq;
pub mod state;
mod tcb;
mod time_wait;
mod timer;
mod user;

#[cfg(test)]
mod tests;

pub use cc::Algorithm;
pub use congestion::Congestion;
pub use icmp::MIN_PATH_MTU;
pub use info::TcpInfo;
pub use isn::IsnGenerator;
pub use output::Transmit;
pub use reassembler::Reassembler;
pub use recv_buffer::{Read, RecvBuffer, RecvReader};
pub use rtt::RttEstimator;
pub use send_buffer::{Payload, SendBuffer, SendWriter, Written};
pub use state::State;
pub use tcb::{Tcb, TcbStats};
pub use time_wait::{TimeWait, TimeWaitReply};
pub use user::Rings;

use std::time::Duration;

/// Per-connection settings; the stack fills them from socket options.
#[derive(Clone, Debug)]
pub struct Config {
    /// The MSS we announce: the link MTU less 40 bytes of headers.
    pub mss: u16,
    /// Receive buffer size in bytes (SO_RCVBUF); bounds the advertised window.
    pub recv_buffer: usize,
    /// Send buffer size in bytes (SO_SNDBUF).
    pub send_buffer: usize,
    /// Maximum segment lifetime; TIME-WAIT lasts twice this.
    pub msl: Duration,
    /// SYN (or SYN|ACK) retransmissions before giving up with ETIMEDOUT.
    pub syn_retries: u32,
    /// Data retransmissions before giving up with ETIMEDOUT.
    pub retries: u32,
    /// The RTO before any RTT sample (RFC 6298: 1 s).
    pub initial_rto: Duration,
    /// Lower bound of the RTO.
    pub min_rto: Duration,
    /// Upper bound of the RTO (and of the backed-off RTO).
    pub max_rto: Duration,
    /// How long an ACK may be held back (RFC 1122 allows up to 500 ms).
    pub delayed_ack: Duration,
    /// How long an orphaned connection may sit in FIN-WAIT-2.
    pub fin_timeout: Duration,
    /// TCP_NODELAY: send small segments without waiting (no Nagle).
    pub nodelay: bool,
    /// Offer the window scale option (RFC 7323).
    pub window_scaling: bool,
    /// Offer the timestamps option (RFC 7323).
    pub timestamps: bool,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Send a tail loss probe (RFC 8985, 7) before falling back to the RTO.
    pub tail_loss_probe: bool,
    /// Keep-alive probing (SO_KEEPALIVE and TCP_KEEPIDLE/INTVL/CNT).
    pub keepalive: keepalive::KeepAlive,
    /// TCP_USER_TIMEOUT (RFC 5482): how long sent data may stay
    /// unacknowledged before the connection is given up (None: the retry
    /// count decides).
    pub user_timeout: Option<Duration>,
    /// Grow the receive buffer when the window limits the peer (off once
    /// the application sets SO_RCVBUF, as on Linux).
    pub recv_autotune: bool,
    /// The most autotuning grows the receive buffer to.
    pub recv_buffer_max: usize,
    /// Grow the send buffer with the congestion window (off once the
    /// application sets SO_SNDBUF, as on Linux).
    pub send_autotune: bool,
    /// The most autotuning grows the send buffer to.
    pub send_buffer_max: usize,
    /// The congestion-control algorithm (TCP_CONGESTION).
    pub congestion: cc::Algorithm,
    /// How losses are found when the peer sends SACK.
    pub loss_detection: LossDetection,
    /// The largest packet, headers included, the link cuts into segments
    /// itself (TSO/GSO, `Link::gso_max`): new data then leaves in packets of
    /// up to this many bytes, each carrying several segments' payload. At
    /// or below the MSS plus headers, every packet is one segment.
    pub gso_max: usize,
    /// The link can write a packet's payload from where it lies and
    /// completes TCP checksums (a TUN device with the virtio-net header):
    /// segments then point into the send ring instead of copying from it
    /// (`Transmit::payload`).
    pub zero_copy: bool,
}

/// How a SACK connection decides that a segment is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LossDetection {
    /// RACK (RFC 8985): by time — a segment sent after it was delivered,
    /// and a round trip plus a reordering window has passed.
    #[default]
    Rack,
    /// RFC 6675: by count — three segments' worth SACKed above it, or
    /// three duplicate ACKs.
    Rfc6675,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mss: 1460,
            recv_buffer: 256 * 1024,
            send_buffer: 256 * 1024,
            msl: Duration::from_secs(30),
            syn_retries: 6,
            retries: 15,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            delayed_ack: Duration::from_millis(40),
            fin_timeout: Duration::from_secs(60),
            nodelay: false,
            window_scaling: true,
            timestamps: true,
            sack: true,
            tail_loss_probe: true,
            keepalive: keepalive::KeepAlive::default(),
            user_timeout: None,
            recv_autotune: true,
            recv_buffer_max: 4 << 20,
            send_autotune: true,
            send_buffer_max: 4 << 20,
            congestion: cc::Algorithm::default(),
            loss_detection: LossDetection::default(),
            gso_max: 0,
            zero_copy: false,
        }
    }
}

impl Config {
    /// The window scale shift we offer: enough for 4 MiB or the buffer, whichever is larger.
    pub fn window_shift(&self) -> u8 {
        let target = self.recv_buffer.max(4 << 20);
        let mut shift = 0u8;
        while shift < 14 && (target >> shift) > 0xffff {
            shift += 1;
        }
        shift
    }
}
