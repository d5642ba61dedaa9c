//! Segment arrival (RFC 9293, 3.10.7), with the RFC 5961 mitigations.

use std::time::Duration;

use super::cc::AckSample;
use super::seq;
use super::state::State;
use super::tcb::Tcb;
use crate::error::Error;
use crate::time::Instant;
use crate::wire::{TcpFlags, TcpSegment};

/// True if the segment's first SACK block is a D-SACK: it covers data at
/// or below the cumulative ACK (RFC 2883, 4).
fn is_dsack(seg: &TcpSegment, snd_una: u32) -> bool {
    match (seg.options.sack().first(), seg.options.sack().get(1)) {
        (Some(b), _) if seq::le(b.end, snd_una) => true,
        // Or it lies inside the second block, which it repeats.
        (Some(b), Some(c)) => seq::le(c.start, b.start) && seq::le(b.end, c.end),
        _ => false,
    }
}

/// How many ticks older than TS.Recent a timestamp may be before PAWS
/// drops the segment (Linux's TCP_PAWS_WINDOW).
pub(super) const PAWS_SLACK: i32 = 1;

/// After this long without an update TS.Recent is no longer trusted
/// (RFC 7323, 5.5: 24 days).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);

/// At most one challenge or out-of-window ACK per this interval (Linux's
/// tcp_invalid_ratelimit default).
pub(super) const OOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// PAWS (RFC 7323, 5.3): true if timestamp `val` is older than TS.Recent
/// (`recent`, set at `recent_at`), marking an old duplicate even where its
/// sequence number looks right after the sequence space wrapped. One tick
/// of slack, as Linux allows: a retransmission that overtakes segments
/// sent just before it must not get them dropped. After 24 idle days
/// TS.Recent itself may have wrapped: it is taken from the segment.
pub(super) fn paws_rejects(
    recent: &mut u32,
    recent_at: &mut Instant,
    val: u32,
    now: Instant,
) -> bool {
    if recent.wrapping_sub(val) as i32 <= PAWS_SLACK {
        return false;
    }
    if now - *recent_at > PAWS_IDLE {
        *recent = val;
        *recent_at = now;
        return false;
    }
    true
}

/// Whether a segment of `len` (data and FIN) from sequence `start` falls in
/// the receive window of `wnd` bytes at `rcv_nxt` (RFC 9293, 3.10.7.4).
pub(super) fn acceptable(start: u32, len: u32, rcv_nxt: u32, wnd: u32) -> bool {
    let end = rcv_nxt.wrapping_add(wnd);
    match (len, wnd) {
        (0, 0) => start == rcv_nxt,
        (0, _) => seq::in_range(start, rcv_nxt, end),
        (_, 0) => false,
        _ => {
            seq::in_range(start, rcv_nxt, end)
                || seq::in_range(start.wrapping_add(len - 1), rcv_nxt, end)
        }
    }
}

impl Tcb {
    /// Processes one segment addressed to this connection.
    pub fn on_segment(&mut self, now: Instant, seg: &TcpSegment) {
        match self.state {
            State::Closed | State::Listen => {}
            // The handshake's segments pass their own checks there.
            State::SynSent => {
                self.on_segment_syn_sent(now, seg);
                self.heard_from_peer(now);
            }
            // Only acceptable segments count as word from the peer there
            // (a forged one must not keep a dead connection alive).
            _ => self.on_segment_synchronized(now, seg),
        }
    }

    fn on_segment_syn_sent(&mut self, now: Instant, seg: &TcpSegment) {
        let f = seg.flags;
        let has_ack = f.contains(TcpFlags::ACK);
        if has_ack && (seq::le(seg.ack, self.iss) || seq::gt(seg.ack, self.snd_max)) {
            if !f.contains(TcpFlags::RST) {
                self.pending_rst = Some((seg.ack, 0, TcpFlags::RST));
            }
            return;
        }
        if f.contains(TcpFlags::RST) {
            if has_ack {
                self.fail(Error::ConnectionRefused);
            }
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq.wrapping_add(1);
        // Nothing promised yet: the right edge starts at RCV.NXT, wherever
        // the peer's ISN put it in sequence space.
        self.set_rcv_adv(self.rcv_nxt);
        self.negotiate(seg);
        self.snd_wnd = seg.window as u32;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
        if has_ack {
            self.snd_una = seg.ack;
            self.take_rtt_sample(now, seg, seg.ack, None);
            self.rto_deadline = None;
            self.retries = 0;
            self.state = State::Established;
            self.send_buf.open();
            self.ack_now = true;
            self.changed = true;
            if !seg.payload.is_empty() {
                self.accept_data(now, seg.seq.wrapping_add(1), seg.payload);
            }
            if f.contains(TcpFlags::FIN) {
                self.on_fin(now, seg.seq.wrapping_add(1 + seg.payload.len() as u32));
            }
        } else {
            // Simultaneous open: answer with SYN|ACK from our original ISS.
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
            self.rtt_probe = None;
        }
    }

    /// Receive-buffer autotuning (dynamic right-sizing, as Linux does):
    /// when half the buffer or more arrived within one round trip, the
    /// window is what limits the peer, so the buffer doubles, up to
    /// `recv_buffer_max`. Storage grows only then, not up front.
    fn autotune(&mut self, now: Instant) {
        let cap = self.recv_buf.capacity();
        if !self.cfg.recv_autotune || cap >= self.cfg.recv_buffer_max {
            return;
        }
        let Some(rtt) = self.rtt.srtt() else {
            return;
        };
        let rtt = rtt.max(Duration::from_millis(1));
        match self.rcv_mark {
            Some((from, at)) if now.saturating_since(at) >= rtt => {
                if seq::dist(from, self.rcv_nxt) * 2 >= cap {
                    let grown = (cap * 2).min(self.cfg.recv_buffer_max);
                    self.recv_buf.grow(grown);
                    self.cfg.recv_buffer = grown;
                    self.stats.recv_buffer_grown += 1;
                }
                self.rcv_mark = Some((self.rcv_nxt, now));
            }
            Some(_) => {}
            None => self.rcv_mark = Some((self.rcv_nxt, now)),
        }
    }

    /// Answers a segment that is out of the window, fails PAWS, is a RST or
    /// SYN that must be challenged, or acknowledges what was never sent
    /// (RFC 5961). Answers to segments without data (and to SYNs) are
    /// limited to one per 500 ms, as Linux does, so a forged flood does not
    /// turn into an ACK flood; data segments are always answered (no loop
    /// of ACKs can form with them).
    fn oow_ack(&mut self, now: Instant, seg: &TcpSegment<'_>) {
        let pure = seg.payload.is_empty() || seg.flags.contains(TcpFlags::SYN);
        if pure
            && self
                .last_oow_ack
                .is_some_and(|t| now.saturating_since(t) < OOW_ACK_INTERVAL)
        {
            self.stats.acks_rate_limited += 1;
            return;
        }
        if pure {
            self.last_oow_ack = Some(now);
        }
        self.ack_now = true;
    }

    /// The receive window segments are checked against: what we advertise
    /// (or would advertise now), never less than what was promised. Bytes
    /// beyond it — a zero-window probe — are not taken, as Linux does.
    fn rcv_wnd(&self) -> u32 {
        self.advertised_window() as u32
    }

    fn on_segment_synchronized(&mut self, now: Instant, seg: &TcpSegment) {
        let mut f = seg.flags;
        let mut seq_start = seg.seq;
        // A retransmitted SYN of the peer (simultaneous open, or our SYN|ACK
        // was lost): drop the SYN bit and look at the rest.
        if f.contains(TcpFlags::SYN) && seg.seq == self.irs {
            f = TcpFlags(f.bits() & !TcpFlags::SYN.bits());
            seq_start = seg.seq.wrapping_add(1);
            if self.state == State::SynReceived && !f.contains(TcpFlags::ACK) {
                // Echo the newest SYN's clock so the peer's RTT sample is
                // not inflated by its own retransmission.
                if let (true, Some((val, _))) = (self.ts_ok, seg.options.timestamps) {
                    self.ts_recent = val;
                }
                self.ack_now = true;
                return;
            }
            if self.state.is_synchronized() {
                // A duplicate of the SYN that opened the connection: its
                // SYN|ACK again because our ACK was lost, or an old SYN.
                // Either way it is answered (RFC 9293, 3.10.7.4: any SYN
                // in a synchronized state gets an ACK), or a peer stuck in
                // SYN-RECEIVED would retransmit until it gives up.
                self.ack_now = true;
            }
        }
        let mut payload = seg.payload;
        let seg_len = payload.len() as u32 + f.contains(TcpFlags::FIN) as u32;
        let wnd = self.rcv_wnd();

        // PAWS (RFC 7323, 5.3): a timestamp older than the newest one seen
        // marks an old duplicate, even if its sequence number looks right
        // after the sequence space wrapped.
        if self.ts_ok && !f.contains(TcpFlags::RST) {
            if let Some((val, _)) = seg.options.timestamps {
                // One tick of slack, as Linux allows: a retransmission that
                // overtakes segments sent just before it must not get them
                // dropped.
                if paws_rejects(&mut self.ts_recent, &mut self.ts_recent_at, val, now) {
                    self.stats.paws_rejected += 1;
                    self.oow_ack(now, seg);
                    return;
                }
            }
        }

        // First: is the segment in the window at all?
        let acceptable = acceptable(seq_start, seg_len, self.rcv_nxt, wnd);
        if !acceptable {
            // A zero window still takes ACKs and RSTs at RCV.NXT.
            if wnd == 0 && seq_start == self.rcv_nxt {
                // Its data and FIN are not taken, so they are not acceptable
                // and get an ACK (RFC 9293, 3.10.7.4): this answers the
                // peer's zero-window probes with our window.
                if seg_len > 0 {
                    self.ack_now = true;
                }
                payload = &[];
                f = TcpFlags(f.bits() & !TcpFlags::FIN.bits());
            } else {
                if self.state == State::TimeWait && f.contains(TcpFlags::FIN) {
                    // The peer retransmitted its FIN: our last ACK was lost.
                    self.time_wait_deadline = Some(now + self.cfg.msl * 2);
                }
                if !f.contains(TcpFlags::RST) {
                    let data_end = seq_start.wrapping_add(payload.len() as u32);
                    if self.sack_ok && !payload.is_empty() && seq::le(data_end, self.rcv_nxt) {
                        // Old data again: the ACK reports it as a D-SACK.
                        self.dsack = Some((seq_start, data_end));
                    }
                    self.oow_ack(now, seg);
                }
                return;
            }
        }

        // Timestamps: remember the peer's clock (RFC 7323, 4.3).
        if self.ts_ok {
            if let Some((val, _)) = seg.options.timestamps {
                // An acceptable segment at or before Last.ACK.sent moves
                // TS.Recent (RFC 7323, 4.3): with delayed ACKs the echo is
                // the oldest unacknowledged segment's clock, so the peer's
                // RTT includes the delay. Old duplicates never get here
                // (they are not acceptable), so a needless retransmission
                // cannot push TS.Recent past segments still on their way.
                if seq::le(seq_start, self.last_ack_sent) && seq::ge(val, self.ts_recent) {
                    self.ts_recent = val;
                    self.ts_recent_at = now;
                }
            }
        }

        // Second: RST, only exactly at RCV.NXT (RFC 5961, 3.2).
        if f.contains(TcpFlags::RST) {
            if seq_start != self.rcv_nxt {
                self.oow_ack(now, seg); // challenge ACK
                return;
            }
            match self.state {
                State::SynReceived if self.passive => self.enter_closed(),
                State::SynReceived => self.fail(Error::ConnectionRefused),
                State::Established | State::FinWait1 | State::FinWait2 => {
                    self.recv_buf.clear();
                    self.fail(Error::ConnectionReset)
                }
                State::CloseWait => self.fail(Error::BrokenPipe),
                _ => self.enter_closed(),
            }
            return;
        }

        // Fourth: a SYN in a synchronized state gets a challenge ACK (RFC 5961, 4.2).
        if f.contains(TcpFlags::SYN) {
            self.oow_ack(now, seg);
            return;
        }

        // Fifth: the ACK field.
        if !f.contains(TcpFlags::ACK) {
            return;
        }
        if self.state == State::SynReceived {
            if seq::gt(seg.ack, self.snd_una) && seq::le(seg.ack, self.snd_max) {
                self.state = State::Established;
                self.send_buf.open();
                self.changed = true;
                self.snd_wnd = (seg.window as u32) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = seg.ack;
            } else {
                self.pending_rst = Some((seg.ack, 0, TcpFlags::RST));
                return;
            }
        }
        let ack_limit = match self.probe_end {
            Some(p) => seq::max(p, self.snd_max),
            None => self.snd_max,
        };
        if seq::gt(seg.ack, ack_limit) {
            self.oow_ack(now, seg);
            return;
        }
        if seq::lt(
            seg.ack,
            self.snd_una.wrapping_sub(self.max_snd_wnd.max(1 << 16)),
        ) {
            // Far too old (RFC 5961, 5.2): likely forged.
            self.oow_ack(now, seg);
            return;
        }
        // Past every check a forged segment fails: the peer is alive.
        self.heard_from_peer(now);
        // The peer is alive: its window may stay shut for as long as it likes.
        self.persist_probes = 0;
        let window = (seg.window as u32) << self.snd_wscale;
        if self.sack_ok {
            let una = seq::max(seg.ack, self.snd_una);
            if is_dsack(seg, una) {
                self.on_dsack(seg);
            }
            for b in seg.options.sack() {
                self.note_sack_block(now, b, una);
                self.scoreboard.add(b.start, b.end, una, self.snd_max);
            }
        }
        if seq::gt(seg.ack, self.snd_una) {
            self.on_new_ack(now, seg, seg.ack);
        } else if seg.ack == self.snd_una
            && payload.is_empty()
            && !f.contains(TcpFlags::FIN)
            && self.snd_max != self.snd_una
            // RFC 5681 also asks for an unchanged window, but Linux moves
            // its window on nearly every ACK while it tunes its buffer; a
            // SACK block or an unchanged window both mark a true duplicate.
            && (window == self.snd_wnd || !seg.options.sack().is_empty())
            && window > 0
            // A D-SACK (RFC 2883) reports a segment the peer got twice: the
            // network duplicated or we resent it needlessly; nothing is lost.
            && !is_dsack(seg, self.snd_una)
            // RACK counts time, not duplicates.
            && !self.rack_on()
        {
            let flight = seq::dist(self.snd_una, self.snd_max);
            let in_recovery = self.cc.in_recovery();
            // Early retransmit (RFC 5827): with fewer than four segments out
            // and nothing new to send, three duplicates can never come.
            let segments_out = flight.div_ceil(self.send_mss.max(1)) as u32;
            let data_end = self.data_seq().wrapping_add(self.send_buf.len() as u32);
            let nothing_new = !seq::lt(self.snd_max, data_end);
            let threshold = if segments_out < 4 && nothing_new {
                segments_out.saturating_sub(1).max(1)
            } else {
                super::congestion::DUP_ACK_THRESHOLD
            };
            if self
                .cc
                .on_dup_ack_with(now, self.snd_max, flight, threshold)
            {
                self.resend_head();
            } else if in_recovery {
                self.detect_lost_retransmission(now);
            }
        }
        self.detect_losses(now);
        if seq::lt(self.snd_wl1, seg.seq)
            || (self.snd_wl1 == seg.seq && seq::le(self.snd_wl2, seg.ack))
        {
            let opened = window > self.snd_wnd;
            self.snd_wnd = window;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            if window > 0 {
                self.persist_deadline = None;
                self.persist_backoff = 0;
            }
            if opened {
                self.changed = true;
            }
        }
        if self.fin_acked() {
            self.release_storage();
            match self.state {
                State::FinWait1 => {
                    self.state = State::FinWait2;
                    self.changed = true;
                    if self.orphaned {
                        self.fin_wait2_deadline = Some(now + self.cfg.fin_timeout);
                    }
                }
                State::Closing => self.enter_time_wait(now),
                State::LastAck => {
                    self.enter_closed();
                    return;
                }
                _ => {}
            }
        }

        // Seventh: the data.
        if !payload.is_empty() {
            match self.state {
                State::Established | State::FinWait1 | State::FinWait2 => {
                    if self.orphaned {
                        // Nobody will ever read it: tell the peer (as Linux does).
                        self.pending_rst = Some((self.snd_max, 0, TcpFlags::RST));
                        self.enter_closed();
                        return;
                    }
                    self.accept_data(now, seq_start, payload);
                }
                // The peer already sent FIN: data after it is bogus.
                _ => self.ack_now = true,
            }
        }

        // Eighth: FIN.
        if f.contains(TcpFlags::FIN) {
            let fin = seq_start.wrapping_add(payload.len() as u32);
            self.on_fin(now, fin);
        }
    }

    fn on_new_ack(&mut self, now: Instant, seg: &TcpSegment, ack: u32) {
        let flight_before = seq::dist(self.snd_una, self.snd_max);
        let data_seq = self.data_seq();
        let data_end = data_seq.wrapping_add(self.send_buf.len() as u32);
        let acked_data = if seq::gt(ack, data_seq) {
            seq::dist(data_seq, seq::max(data_seq, seq::min(ack, data_end)))
        } else {
            0
        };
        let acked = seq::dist(self.snd_una, ack);
        self.send_buf.consume(acked_data);
        self.snd_una = ack;
        if seq::gt(ack, self.snd_max) {
            // The peer took a zero-window probe's byte.
            self.snd_max = ack;
        }
        if self.probe_end.is_some_and(|p| seq::ge(ack, p)) {
            self.probe_end = None;
        }
        if seq::lt(self.snd_nxt, ack) {
            self.snd_nxt = ack;
        }
        let timed = self.note_cumulative_ack(now, ack);
        let rtt = self.take_rtt_sample(now, seg, ack, timed);
        self.retries = 0;
        self.scoreboard.advance(ack);
        let sample = AckSample {
            now,
            acked,
            flight_before,
            ack,
            snd_max: self.snd_max,
            rtt,
            min_rtt: self.rtt.min_rtt(),
        };
        let partial = self.cc.on_ack(&sample);
        self.grow_send_buffer();
        if partial && !self.rack_on() {
            // A partial ACK in recovery: the next hole is lost too
            // (NewReno, RFC 6582; with RFC 6675 before three more SACKs
            // would say so).
            if !self.sack_ok {
                self.fast_retransmit = true;
            } else if self.sent.get(0).is_some_and(|s| !s.retransmitted) {
                self.sent.mark_lost(0);
            }
        }
        // Progress: the user timeout counts afresh for what is left.
        self.unacked_since = (self.snd_una != self.snd_max).then_some(now);
        self.rto_deadline = if self.snd_una == self.snd_max {
            None
        } else {
            Some(self.rto_at(now))
        };
        self.tlp_done = false;
        self.arm_pto(now);
        if acked_data > 0 {
            self.changed = true;
        }
    }

    /// Duplicates still arrive more than a round trip after SND.UNA was
    /// resent, and it is still missing: the retransmission itself was lost
    /// (the idea of RACK, RFC 8985, for the one segment that matters most).
    /// Resend it rather than wait for the RTO.
    fn detect_lost_retransmission(&mut self, now: Instant) {
        let Some((start, sent)) = self.una_resent else {
            return;
        };
        let srtt = self.rtt.srtt().unwrap_or(self.cfg.initial_rto);
        if start == self.snd_una && now - sent > srtt + srtt / 4 + Duration::from_millis(1) {
            self.una_resent = None;
            self.resend_head();
            self.stats.lost_retransmissions += 1;
        }
    }

    /// Takes the RTT this ACK measures, if any, and returns it: from the
    /// sent record (`timed`, microseconds, every ACK), else the one timed
    /// segment (the handshake), else the timestamps (whole milliseconds,
    /// which on a fast path reads 0).
    fn take_rtt_sample(
        &mut self,
        now: Instant,
        seg: &TcpSegment,
        ack: u32,
        timed: Option<Duration>,
    ) -> Option<Duration> {
        if let Some(r) = timed {
            self.rtt.sample(r);
            self.rtt_probe = None;
            return Some(r);
        }
        if let Some((end, sent)) = self.rtt_probe {
            if seq::ge(ack, end) {
                let r = now - sent;
                self.rtt.sample(r);
                self.rtt_probe = None;
                return Some(r);
            }
        }
        if self.ts_ok {
            if let Some((_, ecr)) = seg.options.timestamps {
                if ecr != 0 {
                    let ms = self.ts_now(now).wrapping_sub(ecr);
                    if (ms as i32) >= 0 {
                        let r = Duration::from_millis(ms as u64);
                        self.rtt.sample(r);
                        return Some(r);
                    }
                }
            }
        }
        None
    }

    /// Puts in-window payload starting at `start` into the receive buffer.
    pub(super) fn accept_data(&mut self, now: Instant, start: u32, payload: &[u8]) {
        let mut start = start;
        let mut payload = payload;
        if seq::lt(start, self.rcv_nxt) {
            let skip = seq::dist(start, self.rcv_nxt);
            // Bytes we already had: a D-SACK tells the sender (RFC 2883),
            // so it can see a needless retransmission.
            let dup_end = start.wrapping_add(skip.min(payload.len()) as u32);
            if self.sack_ok {
                self.dsack = Some((start, dup_end));
            }
            if skip >= payload.len() {
                self.owe_ack();
                return;
            }
            payload = &payload[skip..];
            start = self.rcv_nxt;
        }
        if self.read_shut {
            // Read side shut: take the bytes in sequence, keep nothing.
            if start == self.rcv_nxt {
                self.rcv_nxt = self.rcv_nxt.wrapping_add(payload.len() as u32);
            }
            self.ack_now = true;
            return;
        }
        let offset = seq::dist(self.rcv_nxt, start);
        let had_holes = !self.recv_buf.out_of_order().is_empty();
        match self.recv_buf.write(offset, payload) {
            Some(n) if n > 0 => {
                self.rcv_nxt = self.rcv_nxt.wrapping_add(n as u32);
                self.autotune(now);
                self.changed = true;
                // Counted in full-sized segments: one the kernel's receive
                // offload glued together stands for many, and is ACKed at
                // once like the two it at least is.
                let mss = usize::from(self.cfg.mss).max(1);
                self.segs_unacked += n.div_ceil(mss) as u32;
                let quick = self.quick_ack(now);
                if had_holes || quick || self.segs_unacked >= 2 {
                    self.ack_now = true;
                } else if self.ack_deadline.is_none() {
                    self.ack_deadline = Some(now + self.cfg.delayed_ack);
                }
                if let Some(fin) = self.ooo_fin {
                    if fin == self.rcv_nxt {
                        self.ooo_fin = None;
                        self.on_fin(now, fin);
                    }
                }
            }
            // Out of order, beyond the window, or untrackable: a duplicate
            // ACK at once tells the sender (RFC 5681, 4.2).
            n => {
                if n.is_some() {
                    self.sack_recent = Some(start);
                }
                self.owe_ack();
            }
        }
    }

    /// Linux's quick-ACK mode: the first segments of a connection, and
    /// those after the peer was silent for longer than an RTO, are
    /// acknowledged at once (up to 16, or half the window in segments), so
    /// a sender in slow start is not held by our delayed ACKs.
    fn quick_ack(&mut self, now: Instant) -> bool {
        let quiet = self
            .last_data_recv
            .is_none_or(|t| now.saturating_since(t) > self.rtt.rto());
        self.last_data_recv = Some(now);
        if quiet {
            let half_window = self.recv_buf.capacity() / (2 * self.cfg.mss.max(1) as usize);
            self.quick_acks = half_window.clamp(2, 16) as u8;
        }
        if self.quick_acks > 0 {
            self.quick_acks -= 1;
            return true;
        }
        false
    }

    fn owe_ack(&mut self) {
        self.acks_owed = self.acks_owed.saturating_add(1).min(16);
    }

    fn on_fin(&mut self, now: Instant, fin: u32) {
        if fin != self.rcv_nxt {
            if seq::gt(fin, self.rcv_nxt) {
                self.ooo_fin = Some(fin);
            }
            self.ack_now = true;
            return;
        }
        if self.fin_received {
            self.ack_now = true;
            if self.state == State::TimeWait {
                self.time_wait_deadline = Some(now + self.cfg.msl * 2);
            }
            return;
        }
        self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
        self.fin_received = true;
        self.changed = true;
        self.release_storage();
        match self.state {
            State::SynReceived | State::Established => {
                self.state = State::CloseWait;
                // As Linux does, the ACK of the peer's FIN waits (up to the
                // delayed-ACK time) for what the application does next: its
                // reply or its close usually carries it, one packet instead
                // of two.
                if self.ack_deadline.is_none() {
                    self.ack_deadline = Some(now + self.cfg.delayed_ack);
                }
                return;
            }
            State::FinWait1 => {
                if self.fin_acked() {
                    self.enter_time_wait(now);
                } else {
                    self.state = State::Closing;
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
        self.ack_now = true;
    }
}
