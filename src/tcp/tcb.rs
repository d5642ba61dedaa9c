//! The transmission control block: one connection's state. The
//! application's calls on it are in `user.rs`, segment input in `input.rs`,
//! output in `output.rs`, timers in `timer.rs`, keep-alive in `keepalive.rs`.

use std::net::SocketAddrV4;
use std::time::Duration;

use super::congestion::Congestion;
use super::rack::Rack;
use super::recv_buffer::RecvBuffer;
use super::rtt::RttEstimator;
use super::scoreboard::Scoreboard;
use super::send_buffer::SendBuffer;
use super::sent::SentLog;
use super::seq;
use super::state::State;
use super::Config;
use crate::error::Error;
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpSegment};

/// Counters of one connection's loss recovery (for TCP_INFO-like views).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcbStats {
    /// Retransmission timeouts.
    pub timeouts: u32,
    /// Fast retransmits (entries into recovery, and partial ACKs).
    pub fast_retransmits: u32,
    /// Segments sent again, for any reason.
    pub retransmitted_segments: u64,
    /// Segments sent.
    pub segments_sent: u64,
    /// Tail loss probes sent (RFC 8985, 7).
    pub tail_loss_probes: u32,
    /// Retransmissions found lost and sent again before the RTO.
    pub lost_retransmissions: u32,
    /// Connections ended because keep-alive probes went unanswered.
    pub keepalive_timeouts: u32,
    /// Segments dropped as old duplicates by PAWS (RFC 7323, 5).
    pub paws_rejected: u32,
    /// Challenge and out-of-window ACKs not sent: the rate limit held them.
    pub acks_rate_limited: u32,
    /// Times an ICMP "fragmentation needed" lowered the segment size.
    pub path_mtu_drops: u32,
    /// Zero-window probes sent.
    pub window_probes: u32,
    /// Times receive autotuning doubled the receive buffer.
    pub recv_buffer_grown: u32,
    /// D-SACKs received: segments the peer got twice.
    pub dsacks_received: u32,
    /// Window cuts undone because D-SACKs showed the loss was reordering.
    pub spurious_recoveries_undone: u32,
}

/// One TCP connection.
#[derive(Debug)]
pub struct Tcb {
    pub(super) state: State,
    pub(super) local: SocketAddrV4,
    pub(super) remote: SocketAddrV4,
    pub(super) cfg: Config,
    /// Created by a listener (passive open) rather than by connect.
    pub(super) passive: bool,
    /// The application has closed its descriptor; nobody will read.
    pub(super) orphaned: bool,

    // Send sequence space (RFC 9293, 3.3.1).
    pub(super) iss: u32,
    pub(super) snd_una: u32,
    pub(super) snd_nxt: u32,
    /// The highest sequence number sent so far (SND.NXT rewinds on timeout).
    pub(super) snd_max: u32,
    /// The end of the last segment sent shorter than the MSS (Minshall's
    /// variant of Nagle waits only while that one is unacknowledged).
    pub(super) snd_sml: u32,
    /// When data was last sent (restart after idle, RFC 5681 4.1).
    pub(super) last_data_sent: Option<Instant>,
    /// When the last challenge or out-of-window ACK went (rate limit).
    pub(super) last_oow_ack: Option<Instant>,
    /// The acknowledgment number of the last ACK sent (RFC 7323's
    /// Last.ACK.sent: which segment's timestamp is echoed).
    pub(super) last_ack_sent: u32,
    /// An ICMP error seen on the open connection, reported instead of
    /// ETIMEDOUT if it times out.
    pub(super) soft_error: Option<Error>,
    /// Since when sent data has waited for an ACK that moves SND.UNA
    /// (TCP_USER_TIMEOUT counts from here).
    pub(super) unacked_since: Option<Instant>,
    /// Receive autotuning: RCV.NXT and the time at the start of the
    /// current round trip.
    pub(super) rcv_mark: Option<(u32, Instant)>,
    pub(super) snd_wnd: u32,
    pub(super) max_snd_wnd: u32,
    pub(super) snd_wl1: u32,
    pub(super) snd_wl2: u32,
    pub(super) snd_wscale: u8,
    /// Payload bytes per segment, after options.
    pub(super) send_mss: usize,
    /// The MSS both sides allow: payload plus options may not exceed it (RFC 6691).
    pub(super) segment_limit: usize,
    pub(super) send_buf: SendBuffer,
    /// The application shut down writing: FIN follows the queued data.
    pub(super) fin_queued: bool,
    /// The sequence number our FIN occupies, once sent.
    pub(super) fin_seq: Option<u32>,

    // Receive sequence space.
    pub(super) irs: u32,
    pub(super) rcv_nxt: u32,
    pub(super) rcv_wscale: u8,
    /// The right edge of the window last advertised.
    pub(super) rcv_adv: u32,
    pub(super) recv_buf: RecvBuffer,
    pub(super) fin_received: bool,
    /// Where the latest out-of-order segment started: its SACK block goes
    /// first (RFC 2018, 4).
    pub(super) sack_recent: Option<u32>,
    /// Duplicate bytes received, to report once as a D-SACK block.
    pub(super) dsack: Option<(u32, u32)>,
    /// A FIN that arrived beyond a hole: its sequence number.
    pub(super) ooo_fin: Option<u32>,
    /// The application shut down reading.
    pub(super) read_shut: bool,

    // Options in use.
    pub(super) ws_ok: bool,
    pub(super) sack_ok: bool,
    pub(super) ts_ok: bool,
    pub(super) ts_recent: u32,
    /// When TS.Recent was last updated.
    pub(super) ts_recent_at: Instant,
    pub(super) ts_offset: u32,

    // Timers, loss recovery, congestion.
    pub(super) rtt: RttEstimator,
    /// Karn's rule: one untransmitted-before segment timed at a time.
    pub(super) rtt_probe: Option<(u32, Instant)>,
    pub(super) cc: Congestion,
    pub(super) rto_deadline: Option<Instant>,
    pub(super) retries: u32,
    pub(super) ack_now: bool,
    /// Duplicate ACKs still to send, one per out-of-order segment, so the
    /// sender can count them (RFC 5681, 4.2) even when segments arrive in a batch.
    pub(super) acks_owed: u8,
    pub(super) ack_deadline: Option<Instant>,
    pub(super) segs_unacked: u32,
    /// Segments still to acknowledge at once (quick-ACK mode).
    pub(super) quick_acks: u8,
    /// When in-order data last arrived.
    pub(super) last_data_recv: Option<Instant>,
    pub(super) persist_deadline: Option<Instant>,
    pub(super) persist_backoff: u32,
    pub(super) persist_probe: bool,
    /// Zero-window probes sent since the peer last sent an acceptable ACK.
    pub(super) persist_probes: u32,
    /// The end of the byte a zero-window probe offered, while unanswered.
    pub(super) probe_end: Option<u32>,
    pub(super) time_wait_deadline: Option<Instant>,
    /// When the keep-alive timer fires next.
    pub(super) keepalive_deadline: Option<Instant>,
    /// Unanswered keep-alive probes sent.
    pub(super) keepalive_probes: u32,
    /// A keep-alive probe is due.
    pub(super) keepalive_probe: bool,
    /// When the peer last sent us anything.
    pub(super) last_heard: Instant,
    pub(super) fin_wait2_deadline: Option<Instant>,
    pub(super) fast_retransmit: bool,
    /// The first segment marked lost goes now, whatever the pipe (the
    /// first retransmission of a recovery, RFC 6675 5 step 4.3).
    pub(super) force_resend: bool,
    /// Tail loss probe timer (RFC 8985, 7): fires well before the RTO.
    pub(super) pto_deadline: Option<Instant>,
    /// A tail loss probe is due.
    pub(super) tlp_pending: bool,
    /// A probe was sent for this flight; no more until an ACK advances.
    pub(super) tlp_done: bool,
    /// What the peer SACKed, so recovery resends only the holes.
    pub(super) scoreboard: Scoreboard,
    /// Every segment in flight: when sent, resent or not, marked lost.
    pub(super) sent: SentLog,
    /// RACK's view of what was delivered (RFC 8985).
    pub(super) rack: Rack,
    /// RACK's reordering timer: look for overdue segments again then.
    pub(super) rack_deadline: Option<Instant>,
    /// When SND.UNA's segment was last resent: (its start, the time).
    pub(super) una_resent: Option<(u32, Instant)>,
    /// A reset to send: (seq, ack, flags).
    pub(super) pending_rst: Option<(u32, u32, TcpFlags)>,
    pub(super) ip_ident: u16,
    /// Pending error for SO_ERROR / the next call (read-and-clear).
    pub(super) error: Option<Error>,
    /// The connection ended by a reset or a timeout.
    pub(super) reset: bool,
    /// Loss-recovery counters.
    pub(super) stats: TcbStats,
    /// Set whenever readiness may have changed; the stack collects it.
    pub(super) changed: bool,
}

impl Tcb {
    fn blank(cfg: &Config, local: SocketAddrV4, remote: SocketAddrV4, iss: u32) -> Tcb {
        let rtt = RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto);
        let mss = cfg.mss as usize;
        Tcb {
            state: State::Closed,
            local,
            remote,
            cfg: cfg.clone(),
            passive: false,
            orphaned: false,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_sml: iss,
            last_data_sent: None,
            last_oow_ack: None,
            last_ack_sent: 0,
            soft_error: None,
            unacked_since: None,
            rcv_mark: None,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: 0,
            snd_wl2: 0,
            snd_wscale: 0,
            send_mss: 536,
            segment_limit: 536,
            send_buf: SendBuffer::new(cfg.send_buffer),
            fin_queued: false,
            fin_seq: None,
            irs: 0,
            rcv_nxt: 0,
            rcv_wscale: 0,
            rcv_adv: 0,
            recv_buf: RecvBuffer::new(cfg.recv_buffer),
            fin_received: false,
            sack_recent: None,
            ooo_fin: None,
            read_shut: false,
            ws_ok: false,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            ts_recent_at: Instant::ZERO,
            ts_offset: iss.rotate_left(13),
            rtt,
            rtt_probe: None,
            cc: Congestion::with_algorithm(mss, cfg.congestion),
            rto_deadline: None,
            retries: 0,
            ack_now: false,
            acks_owed: 0,
            ack_deadline: None,
            segs_unacked: 0,
            dsack: None,
            quick_acks: 0,
            last_data_recv: None,
            persist_deadline: None,
            persist_backoff: 0,
            persist_probe: false,
            persist_probes: 0,
            probe_end: None,
            time_wait_deadline: None,
            keepalive_deadline: None,
            keepalive_probes: 0,
            keepalive_probe: false,
            last_heard: Instant::ZERO,
            fin_wait2_deadline: None,
            fast_retransmit: false,
            force_resend: false,
            pto_deadline: None,
            tlp_pending: false,
            tlp_done: false,
            scoreboard: Scoreboard::default(),
            sent: SentLog::default(),
            rack: Rack::default(),
            rack_deadline: None,
            una_resent: None,
            pending_rst: None,
            ip_ident: (iss >> 16) as u16,
            error: None,
            reset: false,
            stats: TcbStats::default(),
            changed: false,
        }
    }

    /// Active open: a connection in SYN-SENT whose SYN goes out on the next
    /// `poll_transmit`.
    pub fn connect(cfg: &Config, local: SocketAddrV4, remote: SocketAddrV4, iss: u32) -> Tcb {
        let mut tcb = Tcb::blank(cfg, local, remote, iss);
        tcb.state = State::SynSent;
        tcb
    }

    /// Passive open: a listener got `syn`; the new connection is in
    /// SYN-RECEIVED and its SYN|ACK goes out on the next `poll_transmit`.
    pub fn accept_syn(
        cfg: &Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        syn: &TcpSegment,
    ) -> Tcb {
        let mut tcb = Tcb::blank(cfg, local, remote, iss);
        tcb.state = State::SynReceived;
        tcb.passive = true;
        tcb.irs = syn.seq;
        tcb.rcv_nxt = syn.seq.wrapping_add(1);
        tcb.set_rcv_adv(tcb.rcv_nxt);
        tcb.negotiate(syn);
        tcb.snd_wnd = syn.window as u32;
        tcb.max_snd_wnd = tcb.snd_wnd;
        tcb.snd_wl1 = syn.seq;
        tcb.snd_wl2 = iss;
        tcb
    }

    /// A connection rebuilt from a SYN cookie (the stack checked it): as if
    /// the peer's SYN had carried `syn_options` (MSS, window scale, SACK
    /// permitted, as the cookie kept them), and our SYN|ACK (ISN `iss`) had
    /// been sent. Hand the returning `ack` to [`Tcb::on_segment`] next: it
    /// completes the handshake.
    pub fn from_cookie(
        cfg: &Config,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: u32,
        ack: &TcpSegment,
        syn_options: crate::wire::TcpOptions,
    ) -> Tcb {
        let options = crate::wire::TcpOptions {
            timestamps: ack.options.timestamps.map(|(val, _)| (val, 0)),
            ..syn_options
        };
        let syn = TcpSegment {
            src_port: remote.port(),
            dst_port: local.port(),
            seq: ack.seq.wrapping_sub(1),
            ack: 0,
            flags: crate::wire::TcpFlags::SYN,
            window: 0,
            urgent: 0,
            options,
            payload: &[],
        };
        let mut tcb = Tcb::accept_syn(cfg, local, remote, iss, &syn);
        tcb.snd_nxt = iss.wrapping_add(1);
        tcb.snd_max = tcb.snd_nxt;
        tcb
    }

    /// Takes the options of the peer's SYN (or SYN|ACK) into account.
    pub(super) fn negotiate(&mut self, syn: &TcpSegment) {
        let o = &syn.options;
        if self.cfg.window_scaling {
            if let Some(shift) = o.window_scale {
                self.ws_ok = true;
                self.snd_wscale = shift.min(14);
                self.rcv_wscale = self.cfg.window_shift();
            }
        }
        self.sack_ok = self.cfg.sack && o.sack_permitted;
        self.cc.set_sack(self.sack_ok);
        if let (true, Some((val, _))) = (self.cfg.timestamps, o.timestamps) {
            self.ts_ok = true;
            self.ts_recent = val;
        }
        // RFC 9293 3.7.1: 536 when the peer sends no MSS option.
        let peer_mss = o.mss.unwrap_or(536).max(64) as usize;
        let mut mss = peer_mss.min(self.cfg.mss as usize);
        self.segment_limit = mss;
        if self.ts_ok {
            mss -= 12;
        }
        self.send_mss = mss;
        self.cc.set_mss(mss);
    }

    /// The connection's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Our address and port.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// The peer's address and port.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// True if created by a listener.
    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// RCV.NXT: the next sequence number expected from the peer.
    pub fn rcv_nxt_value(&self) -> u32 {
        self.rcv_nxt
    }

    /// SND.MAX: the highest sequence number sent so far (tests and tools).
    pub fn snd_max_value(&self) -> u32 {
        self.snd_max
    }

    /// TS.Recent, the newest timestamp of the peer's taken (None without
    /// timestamps; tests and tools).
    pub fn ts_recent_value(&self) -> Option<u32> {
        self.ts_ok.then_some(self.ts_recent)
    }

    /// The payload size per segment in use.
    pub fn send_mss(&self) -> usize {
        self.send_mss
    }

    /// Loss-recovery counters.
    pub fn stats(&self) -> TcbStats {
        self.stats
    }

    /// Bytes of buffer storage the connection holds now (its rings; the
    /// control block and small records aside).
    pub fn buffer_storage(&self) -> usize {
        self.send_buf.storage() + self.recv_buf.storage()
    }

    /// The congestion window in bytes.
    pub fn congestion_window(&self) -> usize {
        self.cc.window()
    }

    /// The smoothed RTT, if measured.
    pub fn srtt(&self) -> Option<std::time::Duration> {
        self.rtt.srtt()
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> std::time::Duration {
        self.rtt.rto()
    }

    /// The window the peer offers us, in bytes.
    pub fn send_window(&self) -> u32 {
        self.snd_wnd
    }

    /// Takes and clears the readiness-changed flag.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Sets TCP_NODELAY.
    pub fn set_nodelay(&mut self, on: bool) {
        self.cfg.nodelay = on;
    }

    /// Changes the send buffer size (SO_SNDBUF).
    pub fn set_send_buffer(&mut self, bytes: usize) {
        self.cfg.send_buffer = bytes;
        self.cfg.send_autotune = false;
        self.send_buf.set_capacity(bytes);
    }

    /// The send and receive buffer sizes now (autotuning grows them).
    pub fn buffer_sizes(&self) -> (usize, usize) {
        (self.send_buf.capacity(), self.recv_buf.capacity())
    }

    /// Send-buffer autotuning (Linux's tcp_sndbuf_expand): room for twice
    /// the congestion window, so the application can keep a growing window
    /// full (one window in flight, one being written), up to the maximum.
    /// It only grows; storage follows only as data is written.
    pub(super) fn grow_send_buffer(&mut self) {
        if !self.cfg.send_autotune {
            return;
        }
        let want = (2 * self.cc.window()).min(self.cfg.send_buffer_max);
        if want > self.send_buf.capacity() {
            self.cfg.send_buffer = want;
            self.send_buf.set_capacity(want);
            self.changed = true;
        }
    }

    /// Grows the receive buffer (SO_RCVBUF; the window is never withdrawn).
    pub fn set_recv_buffer(&mut self, bytes: usize) {
        self.cfg.recv_buffer = bytes;
        self.cfg.recv_autotune = false;
        self.recv_buf.grow(bytes);
    }

    /// The first sequence number of the send buffer's bytes.
    pub(super) fn data_seq(&self) -> u32 {
        if self.snd_una == self.iss {
            self.iss.wrapping_add(1)
        } else {
            self.snd_una
        }
    }

    /// True once our FIN has been acknowledged.
    pub(super) fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| seq::gt(self.snd_una, f))
    }

    /// When the retransmission timer armed now fires: one RTO from now,
    /// but never after the user timeout runs out (so it is met on time).
    pub(super) fn rto_at(&self, now: Instant) -> Instant {
        let at = now + self.rtt.rto();
        match (self.cfg.user_timeout, self.unacked_since) {
            (Some(limit), Some(since)) => at.min(since + limit),
            _ => at,
        }
    }

    /// True once sent data has waited longer than TCP_USER_TIMEOUT.
    pub(super) fn user_timeout_expired(&self, now: Instant) -> bool {
        matches!((self.cfg.user_timeout, self.unacked_since),
            (Some(limit), Some(since)) if now.saturating_since(since) >= limit)
    }

    /// TCP_CONGESTION: the algorithm from now on, keeping the window.
    pub fn set_congestion(&mut self, alg: super::Algorithm) {
        self.cfg.congestion = alg;
        self.cc.set_algorithm(alg);
    }

    /// The congestion-control algorithm in use.
    pub fn congestion(&self) -> super::Algorithm {
        self.cc.algorithm()
    }

    /// TCP_USER_TIMEOUT (None: off).
    pub fn set_user_timeout(&mut self, limit: Option<Duration>) {
        self.cfg.user_timeout = limit;
    }

    /// Ends the connection with `err` reported to the application.
    pub(super) fn fail(&mut self, err: Error) {
        self.error = Some(err);
        self.reset = true;
        self.enter_closed();
    }

    pub(super) fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.send_buf.shut();
        self.rto_deadline = None;
        self.pto_deadline = None;
        self.rack_deadline = None;
        self.tlp_pending = false;
        self.ack_deadline = None;
        self.persist_deadline = None;
        self.time_wait_deadline = None;
        self.fin_wait2_deadline = None;
        self.keepalive_deadline = None;
        self.ack_now = false;
        self.acks_owed = 0;
        self.fast_retransmit = false;
        self.force_resend = false;
        self.changed = true;
        self.release_storage();
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.rto_deadline = None;
        self.pto_deadline = None;
        self.rack_deadline = None;
        self.tlp_pending = false;
        self.persist_deadline = None;
        self.fin_wait2_deadline = None;
        self.time_wait_deadline = Some(now + self.cfg.msl * 2);
        self.changed = true;
        self.release_storage();
    }

    /// Gives back the memory of each direction that is finished: sending
    /// once our FIN is acknowledged, receiving once the peer's FIN was read
    /// (or reading was shut). A TIME-WAIT or closed connection then costs
    /// only its control block.
    pub(super) fn release_storage(&mut self) {
        if self.fin_acked() || self.state == State::Closed {
            self.send_buf.release();
            self.sent.release();
            self.scoreboard.release();
        }
        if self.fin_received || self.read_shut || self.state == State::Closed {
            self.recv_buf.finish();
        }
    }

    /// The right edge of the window the peer was told of; the receive ring
    /// learns it too, so a read without the stack's lock can tell whether
    /// the window opened by enough to say so.
    pub(super) fn set_rcv_adv(&mut self, edge: u32) {
        self.rcv_adv = edge;
        let ahead = edge.wrapping_sub(self.rcv_nxt);
        self.recv_buf
            .advertised(ahead, 2 * usize::from(self.cfg.mss));
    }

    /// Skips TIME-WAIT (the stack holds too many): CLOSED at once.
    pub fn leave_time_wait(&mut self) {
        if self.state == State::TimeWait {
            self.enter_closed();
        }
    }

    /// True once the connection is CLOSED and nothing is left to send:
    /// the stack may forget it.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed && self.pending_rst.is_none()
    }

    /// True while a closing connection still has data or a FIN the peer has
    /// not acknowledged (what an exiting process must wait for).
    pub fn is_delivering(&self) -> bool {
        match self.state {
            State::FinWait1 | State::Closing | State::LastAck => true,
            State::Established | State::CloseWait | State::SynReceived => !self.send_buf.is_empty(),
            _ => self.pending_rst.is_some(),
        }
    }

    /// True if something should be sent now (so the caller wakes the I/O thread).
    pub fn wants_transmit(&self) -> bool {
        if self.pending_rst.is_some()
            || self.ack_now
            || self.acks_owed > 0
            || self.fast_retransmit
            || self.force_resend
        {
            return true;
        }
        if !self.state.is_synchronized() {
            return self.snd_nxt == self.iss && self.state != State::Closed;
        }
        let data_end = self.data_seq().wrapping_add(self.send_buf.len() as u32);
        // SND.NXT below SND.MAX: a timeout rewound it and something (data
        // or just our FIN) must go again.
        seq::lt(self.snd_nxt, data_end)
            || seq::lt(self.snd_nxt, self.snd_max)
            || self.persist_probe
            || self.tlp_pending
            || self.keepalive_probe
            || (self.fin_queued && self.fin_seq.is_none())
    }

    /// The earliest deadline of any armed timer.
    pub fn deadline(&self) -> Option<Instant> {
        [
            self.rto_deadline,
            self.pto_deadline,
            self.rack_deadline,
            self.ack_deadline,
            self.persist_deadline,
            self.time_wait_deadline,
            self.fin_wait2_deadline,
            self.keepalive_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Arms the tail loss probe: 2·SRTT after the last send (more when a
    /// single segment is out, to allow for the peer's delayed ACK), if that
    /// comes before the RTO.
    pub(super) fn arm_pto(&mut self, now: Instant) {
        self.pto_deadline = None;
        if !self.cfg.tail_loss_probe
            || self.tlp_done
            || self.cc.in_recovery()
            || self.snd_una == self.snd_max
            || self.snd_wnd == 0
            || !self.state.is_synchronized()
        {
            return;
        }
        let Some(srtt) = self.rtt.srtt() else {
            return;
        };
        let mut pto = (srtt * 2).max(std::time::Duration::from_millis(10));
        if seq::dist(self.snd_una, self.snd_max) <= self.send_mss {
            pto = pto.max(srtt + self.cfg.delayed_ack + std::time::Duration::from_millis(2));
        }
        let at = now + pto;
        if self.rto_deadline.is_none_or(|rto| at < rto) {
            self.pto_deadline = Some(at);
        }
    }

    /// Our timestamp clock: milliseconds, offset per connection.
    pub(super) fn ts_now(&self, now: Instant) -> u32 {
        (now.millis() as u32).wrapping_add(self.ts_offset)
    }
}
