//! Choosing and building the next segment to send.

use super::send_buffer::Payload;
use super::seq;
use super::state::State;
use super::tcb::Tcb;
use crate::time::Instant;
use crate::wire::{
    emit_ipv4_tcp_with, Checksum, SackBlock, TcpFlags, TcpHeader, TcpOptions, IPV4_HEADER_LEN,
};

/// Bytes of IPv4 + TCP header (with the largest options) a packet buffer
/// needs on top of the payload.
pub const MAX_HEADERS: usize = IPV4_HEADER_LEN + 60;

/// A packet `poll_transmit` wrote.
#[derive(Clone, Debug)]
pub struct Transmit {
    /// Its length at the start of the buffer: the whole packet, or its
    /// headers when `payload` holds the rest.
    pub len: usize,
    /// For a packet carrying more than one segment's payload (only when
    /// `Config::gso_max` allows): the payload bytes per segment the link
    /// cuts it into. Its TCP checksum is then partial (`Link::send_gso`).
    pub gso: Option<u16>,
    /// How many segments the packet stands for on the wire.
    pub segments: u32,
    /// The payload, when it stays in the send ring (`Config::zero_copy`):
    /// the packet is the buffer's `len` bytes followed by these, and its
    /// TCP checksum is partial (the link completes it).
    pub payload: Option<Payload>,
}

impl Transmit {
    /// A packet that is one segment (or no TCP at all), checksum complete.
    pub fn one(len: usize) -> Transmit {
        Transmit {
            len,
            gso: None,
            segments: 1,
            payload: None,
        }
    }

    /// How its TCP checksum was left: partial when the link cuts it into
    /// segments or when the payload is not in the buffer.
    pub fn checksum(&self) -> Checksum {
        if self.gso.is_some() || self.payload.is_some() {
            Checksum::Partial
        } else {
            Checksum::Full
        }
    }
}

impl Tcb {
    /// Writes the next IPv4 packet to send into `buf` and returns its length,
    /// or None when there is nothing to send now. Call until None.
    /// `buf` must hold at least the MSS plus 80 bytes of headers.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some((seq, ack, flags)) = self.pending_rst.take() {
            return Some(Transmit::one(
                self.emit(now, buf, seq, ack, flags, 0, false),
            ));
        }
        match self.state {
            State::Closed | State::Listen | State::TimeWait => {
                if self.state == State::TimeWait && self.ack_now {
                    return Some(Transmit::one(self.emit_ack(now, buf)));
                }
                None
            }
            State::SynSent => {
                if self.snd_nxt != self.iss {
                    return None;
                }
                Some(Transmit::one(self.emit_syn(now, buf, TcpFlags::SYN)))
            }
            // Our SYN is not acknowledged yet (FIN-WAIT-1 here means CLOSE
            // was called in SYN-RECEIVED): only SYN|ACK may go; the FIN
            // waits until the SYN is acknowledged.
            State::SynReceived | State::FinWait1 if self.snd_una == self.iss => {
                if self.snd_nxt != self.iss && !self.ack_now {
                    return None;
                }
                self.ack_now = false;
                Some(Transmit::one(self.emit_syn(
                    now,
                    buf,
                    TcpFlags::SYN | TcpFlags::ACK,
                )))
            }
            _ => {
                if self.keepalive_probe {
                    // One below SND.UNA: an old byte the peer must answer
                    // with an ACK (RFC 1122, 4.2.3.6), carrying no data.
                    self.keepalive_probe = false;
                    let seq = self.snd_una.wrapping_sub(1);
                    let n = self.emit(now, buf, seq, self.rcv_nxt, TcpFlags::ACK, 0, false);
                    return Some(Transmit::one(n));
                }
                if let Some(t) = self.emit_data(now, buf) {
                    return Some(t);
                }
                // What the application appends without the stack's lock
                // waits for the ACK due, if data waits behind data in flight.
                let data_end = self.data_seq().wrapping_add(self.send_buf.len() as u32);
                let waiting = seq::lt(self.snd_nxt, data_end);
                self.send_buf
                    .set_clocked(waiting && self.snd_una != self.snd_max);
                if self.ack_now || self.acks_owed > 0 {
                    return Some(Transmit::one(self.emit_ack(now, buf)));
                }
                None
            }
        }
    }

    fn emit_syn(&mut self, now: Instant, buf: &mut [u8], flags: TcpFlags) -> usize {
        let ack = if flags.contains(TcpFlags::ACK) {
            self.rcv_nxt
        } else {
            0
        };
        let n = self.emit(now, buf, self.iss, ack, flags, 0, true);
        self.snd_nxt = self.iss.wrapping_add(1);
        if seq::lt(self.snd_max, self.snd_nxt) {
            self.snd_max = self.snd_nxt;
        }
        if self.retries == 0 && self.rtt_probe.is_none() {
            self.rtt_probe = Some((self.snd_nxt, now));
        }
        if self.rto_deadline.is_none() {
            self.rto_deadline = Some(self.rto_at(now));
        }
        n
    }

    fn emit_ack(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let seq = self.acceptable_seq();
        self.emit(now, buf, seq, self.rcv_nxt, TcpFlags::ACK, 0, false)
    }

    /// The sequence number of a pure ACK: one the peer will accept, or it
    /// drops the segment unread, ACK and all. SND.MAX, not SND.NXT (after a
    /// timeout rewinds SND.NXT the peer has already seen higher numbers),
    /// but never past the right edge of the peer's window: a peer that
    /// shrank its window to zero accepts only SND.UNA (Linux's
    /// tcp_acceptable_seq).
    pub(super) fn acceptable_seq(&self) -> u32 {
        let edge = self.snd_una.wrapping_add(self.snd_wnd);
        if seq::gt(self.snd_max, edge) && self.state.is_synchronized() {
            edge
        } else {
            self.snd_max
        }
    }

    /// One data (and/or FIN) segment if the windows, Nagle and the state allow.
    fn emit_data(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let data_seq = self.data_seq();
        let data_end = data_seq.wrapping_add(self.send_buf.len() as u32);
        let room = buf.len().saturating_sub(MAX_HEADERS);
        let mss = self.send_mss.min(room).max(1);

        if self.fast_retransmit {
            self.fast_retransmit = false;
            self.stats.fast_retransmits += 1;
            self.rtt_probe = None;
            let from = seq::max(self.snd_una, data_seq);
            let (start, hole_end) = self.scoreboard.next_hole(from).unwrap_or((from, data_end));
            let len = if seq::lt(start, data_end) {
                seq::dist(start, data_end)
                    .min(mss)
                    .min(seq::dist(start, hole_end))
            } else {
                0
            };
            let fin = self
                .fin_seq
                .is_some_and(|f| f == start.wrapping_add(len as u32));
            if len > 0 || fin {
                return Some(self.emit_range(now, buf, start, data_seq, len, fin));
            }
        }

        if self.tlp_pending {
            self.tlp_pending = false;
            // Resend the last segment sent (or just the FIN).
            let end = if seq::lt(self.snd_max, data_end) {
                self.snd_max
            } else {
                data_end
            };
            let fin_out = self.fin_seq.is_some_and(|f| seq::gt(self.snd_max, f));
            if seq::lt(seq::max(self.snd_una, data_seq), end) {
                let back =
                    (mss as u32).min(seq::dist(seq::max(self.snd_una, data_seq), end) as u32);
                let start = end.wrapping_sub(back);
                let fin = fin_out && self.fin_seq == Some(end);
                return Some(self.emit_range(now, buf, start, data_seq, back as usize, fin));
            }
            if fin_out {
                let f = self.fin_seq.unwrap_or(end);
                return Some(self.emit_range(now, buf, f, data_seq, 0, true));
            }
        }

        if self.persist_probe {
            self.persist_probe = false;
            let room = self
                .snd_una
                .wrapping_add(self.snd_wnd)
                .wrapping_sub(self.snd_nxt) as i32;
            if self.snd_wnd > 0 && room > 0 && seq::lt(self.snd_nxt, data_end) {
                // A window open but smaller than we would send into: the
                // timer overrides silly-window avoidance (RFC 9293,
                // 3.8.6.2.1) and sends what fits, as real data.
                let len = (room as usize)
                    .min(seq::dist(self.snd_nxt, data_end))
                    .min(mss);
                let start = self.snd_nxt;
                return Some(self.emit_range(now, buf, start, data_seq, len, false));
            }
            if seq::lt(self.snd_una, data_end) {
                // One byte past the closed window makes the peer answer
                // with its current window (RFC 9293, 3.8.6.1).
                let start = seq::max(self.snd_una, data_seq);
                let (snd_nxt, snd_max, rto_deadline, rtt_probe) = (
                    self.snd_nxt,
                    self.snd_max,
                    self.rto_deadline,
                    self.rtt_probe,
                );
                let n = self.emit_range(now, buf, start, data_seq, 1, false);
                // The probe is not data in flight: SND.NXT and SND.MAX stay
                // (so our ACKs keep a sequence number the peer accepts, and
                // the byte goes again with the rest once the window opens),
                // an ACK up to `probe_end` is still taken, no RTT is timed
                // on it, and the persist timer, not the RTO, repeats it with
                // backoff for as long as the window stays shut.
                self.probe_end = Some(start.wrapping_add(1));
                self.stats.window_probes += 1;
                self.snd_nxt = snd_nxt;
                self.snd_max = snd_max;
                self.rto_deadline = rto_deadline;
                self.rtt_probe = rtt_probe;
                self.arm_persist(now);
                return Some(n);
            }
        }

        if let Some(t) = self.resend_lost(now, buf, mss) {
            return Some(t);
        }
        // Nothing outstanding and idle for longer than an RTO: the old
        // window no longer says anything about the path (RFC 5681, 4.1).
        if self.snd_una == self.snd_max
            && self
                .last_data_sent
                .is_some_and(|t| now.saturating_since(t) > self.rtt.rto())
        {
            self.cc.restart_after_idle();
            self.last_data_sent = None;
        }
        // After a timeout rewound SND.NXT, skip what the peer already holds.
        while let Some(end) = self.scoreboard.covered_until(self.snd_nxt) {
            self.snd_nxt = end;
        }
        let avail = if seq::lt(self.snd_nxt, data_end) {
            seq::dist(self.snd_nxt, data_end)
        } else {
            0
        };
        // Two limits, measured differently. The peer's buffer holds
        // everything from SND.UNA on, SACKed bytes included: new data may
        // reach SND.UNA + SND.WND and no further. The network holds only
        // what is not SACKed (the pipe, RFC 6675): congestion control
        // (plus limited transmit, RFC 3042) bounds that.
        let outstanding = seq::dist(self.snd_una, self.snd_nxt);
        let in_flight = (outstanding - self.scoreboard.sacked_below(self.snd_nxt))
            .saturating_sub(self.sent.lost_bytes());
        let peer_room = (self.snd_wnd as usize).saturating_sub(outstanding);
        // Any room at all admits a whole segment: Linux counts its window
        // in segments, and a segment held back for a few missing bytes
        // would wait for the peer's (delayed) ACK.
        let cc_room = (self.cc.window() + self.cc.limited_transmit())
            .saturating_sub(in_flight)
            .div_ceil(mss)
            * mss;
        let usable = peer_room.min(cc_room);
        // Resending after a timeout: no reason to hold back small pieces.
        let resend = seq::lt(self.snd_nxt, self.snd_max);
        let mut len = avail.min(usable).min(self.burst(buf.len(), mss));
        if let Some((_, hole_end)) = self.scoreboard.next_hole(self.snd_nxt) {
            // Resending after a timeout: stop where SACKed data begins.
            len = len.min(seq::dist(self.snd_nxt, hole_end));
        }
        let fin_due = self.fin_queued
            && match self.fin_seq {
                None => len == avail,
                Some(f) => f == self.snd_nxt.wrapping_add(len as u32),
            };
        let fin = fin_due && seq::le(self.snd_nxt.wrapping_add(len as u32), data_end);

        // Holding data with nothing in flight, no ACK will come to release
        // it: the persist timer must (a zero window, or one too small to
        // be worth a segment).
        let hold = |t: &mut Self| {
            if avail > 0
                && outstanding == 0
                && t.persist_deadline.is_none()
                && t.rto_deadline.is_none()
            {
                t.arm_persist(now);
            }
        };
        if len == 0 && !fin {
            hold(self);
            return None;
        }
        if len < mss && len < avail && !fin && !resend {
            // Sender-side silly window avoidance (RFC 9293, 3.8.6.2.1):
            // wait for a full segment unless half the peer's largest window fits.
            if len < (self.max_snd_wnd as usize) / 2 {
                hold(self);
                return None;
            }
        }
        let small_unacked =
            seq::gt(self.snd_sml, self.snd_una) && seq::le(self.snd_sml, self.snd_nxt);
        if len > 0
            && len < mss
            && len == avail
            && small_unacked
            && !self.cfg.nodelay
            && !fin
            && !resend
        {
            // Nagle with Minshall's rule (as Linux): one small segment in
            // flight at a time; full ones do not hold back the tail.
            return None;
        }
        let start = self.snd_nxt;
        Some(self.emit_range(now, buf, start, data_seq, len, fin))
    }

    /// Resends the first segment marked lost if the pipe (RFC 6675: what
    /// is neither SACKed nor lost) leaves room in the congestion window.
    fn resend_lost(&mut self, now: Instant, buf: &mut [u8], mss: usize) -> Option<Transmit> {
        let forced = std::mem::take(&mut self.force_resend);
        if self.sent.lost_bytes() == 0 {
            return None;
        }
        // The pipe first: while it is full, no scan of the record for the
        // lost segment (this runs for every segment sent).
        let outstanding = seq::dist(self.snd_una, self.snd_nxt);
        let pipe = outstanding
            .saturating_sub(self.scoreboard.sacked_below(self.snd_nxt))
            .saturating_sub(self.sent.lost_bytes());
        if !forced && pipe >= self.cc.window() {
            return None;
        }
        let (_, s) = self.sent.first_lost(0)?;
        let (start, end) = (s.start, s.end);
        if forced {
            self.stats.fast_retransmits += 1;
        }
        let data_seq = self.data_seq();
        let data_end = data_seq.wrapping_add(self.send_buf.len() as u32);
        let data_stop = seq::min(end, data_end);
        let len = if seq::lt(start, data_stop) {
            seq::dist(start, data_stop).min(mss)
        } else {
            0
        };
        let fin = self
            .fin_seq
            .is_some_and(|f| f == start.wrapping_add(len as u32) && seq::lt(f, end));
        if len == 0 && !fin {
            return None;
        }
        Some(self.emit_range(now, buf, start, data_seq, len, fin))
    }

    /// The window to advertise. Receiver-side silly window avoidance (RFC
    /// 1122, 4.2.3.3; RFC 9293, 3.8.6.2.2): the right edge moves forward
    /// only by at least min(half the buffer, one MSS), and never back.
    pub(super) fn advertised_window(&self) -> usize {
        let free = self.recv_buf.window();
        let promised = if seq::gt(self.rcv_adv, self.rcv_nxt) {
            seq::dist(self.rcv_nxt, self.rcv_adv)
        } else {
            0
        };
        if free >= promised + self.window_step() {
            free
        } else {
            promised
        }
    }

    /// The least the window's right edge moves by: min(half the buffer,
    /// one MSS).
    pub(super) fn window_step(&self) -> usize {
        (self.recv_buf.capacity() / 2)
            .min(self.cfg.mss as usize)
            .max(1)
    }

    /// Starts the persist timer: the RTO, doubled for each probe already sent.
    fn arm_persist(&mut self, now: Instant) {
        let backoff = self.rtt.rto() * (1u32 << self.persist_backoff.min(6));
        self.persist_deadline = Some(now + backoff.min(self.cfg.max_rto));
    }

    /// The most payload one packet may carry: one segment, or as many
    /// whole segments of `mss` as fit the link's offload limit and `buf`.
    fn burst(&self, buf_len: usize, mss: usize) -> usize {
        let limit = self.cfg.gso_max.min(buf_len).saturating_sub(MAX_HEADERS);
        (limit / mss * mss).max(mss)
    }

    /// Sends `len` bytes from sequence `start` (plus FIN) and does the
    /// bookkeeping: SND.NXT, SND.MAX, the RTO timer and the RTT probe.
    /// More than a segment's payload goes as one packet of several
    /// segments for the link to cut (the sent record keeps one entry per
    /// segment, as the peer sees them).
    fn emit_range(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        start: u32,
        data_seq: u32,
        len: usize,
        fin: bool,
    ) -> Transmit {
        let data_end = data_seq.wrapping_add(self.send_buf.len() as u32);
        let mut header = self.header(now, start, self.rcv_nxt, TcpFlags::ACK, false);
        // Options (SACK blocks) eat into the segment: payload + options <= MSS.
        let options_len = header.header_len() - crate::wire::TCP_HEADER_LEN;
        let room = self.segment_limit.saturating_sub(options_len).max(1);
        let most = self.burst(buf.len(), room);
        let (mut len, mut fin) = if len > most {
            (most, false)
        } else {
            (len, fin)
        };
        if len > room && len % room != 0 && start.wrapping_add(len as u32) != data_end {
            // Whole segments only, but for the tail of what is queued: a
            // short one mid-stream (options grew since the length was
            // chosen) would be a runt on the wire.
            len -= len % room;
            fin = false;
        }
        if fin {
            header.flags |= TcpFlags::FIN;
        }
        if len > 0 && start.wrapping_add(len as u32) == data_end {
            header.flags |= TcpFlags::PSH;
        }
        let offset = seq::dist(data_seq, start);
        // The link writes the payload from the ring itself if it can (a
        // TUN device that completes checksums): no copy here.
        let payload = if self.cfg.zero_copy {
            self.send_buf.pin(offset, len)
        } else {
            None
        };
        let copied = match &payload {
            Some(p) => p.len(),
            None => {
                let at = IPV4_HEADER_LEN + header.header_len();
                self.send_buf.copy_out(offset, &mut buf[at..at + len])
            }
        };
        debug_assert_eq!(copied, len);
        let segments = len.div_ceil(room).max(1);
        let mut sent = Transmit {
            len: 0,
            gso: (segments > 1).then_some(room as u16),
            segments: segments as u32,
            payload,
        };
        let n = self.finish(buf, &header, copied, sent.checksum());
        sent.len = n - sent.payload.as_ref().map_or(0, Payload::len);
        // The link numbers the segments after the first (as the kernel's GSO).
        self.ip_ident = self.ip_ident.wrapping_add(segments as u16 - 1);

        let end = start.wrapping_add(len as u32 + fin as u32);
        self.stats.segments_sent += segments as u64;
        if len > 0 {
            self.last_data_sent = Some(now);
            if self.unacked_since.is_none() {
                self.unacked_since = Some(now);
            }
        }
        if len % room != 0 {
            // The last segment is shorter than a full one with these options: small.
            self.snd_sml = start.wrapping_add(len as u32);
        }
        let mut from = start;
        for i in 1..=segments {
            let to = if i == segments {
                end
            } else {
                start.wrapping_add((i * room) as u32)
            };
            self.sent.on_send(from, to, now);
            from = to;
        }
        if seq::lt(start, self.snd_max) {
            self.stats.retransmitted_segments += segments as u64;
            self.cc.on_retransmit(start, end);
            // Karn's rule: an ACK of a resent segment times neither send;
            // nor does a cumulative ACK that a resent hole below the timed
            // segment released.
            if self.rtt_probe.is_some_and(|(e, _)| seq::lt(start, e)) {
                self.rtt_probe = None;
            }
            if seq::le(start, self.snd_una) && len > 0 {
                self.una_resent = Some((self.snd_una, now));
            }
        }
        if fin && self.fin_seq.is_none() {
            self.fin_seq = Some(start.wrapping_add(len as u32));
        }
        if seq::gt(end, self.snd_nxt) {
            self.snd_nxt = end;
        }
        let new_data = seq::gt(end, self.snd_max);
        if new_data {
            if self.rtt_probe.is_none() && self.retries == 0 {
                self.rtt_probe = Some((end, now));
            }
            self.snd_max = end;
        }
        if self.rto_deadline.is_none() {
            self.rto_deadline = Some(self.rto_at(now));
        }
        if new_data {
            self.arm_pto(now);
        }
        sent
    }

    /// Builds the header for a segment (window, timestamps, SACK) and notes
    /// that an ACK went out.
    fn header(
        &mut self,
        now: Instant,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        syn: bool,
    ) -> TcpHeader {
        let mut options = TcpOptions::default();
        let window;
        if syn {
            options.mss = Some(self.cfg.mss);
            if self.passive {
                // Answer only with what the peer offered.
                if self.ws_ok {
                    options.window_scale = Some(self.rcv_wscale);
                }
                options.sack_permitted = self.sack_ok;
                if self.ts_ok {
                    options.timestamps = Some((self.ts_now(now), self.ts_recent));
                }
            } else {
                if self.cfg.window_scaling {
                    options.window_scale = Some(self.cfg.window_shift());
                }
                options.sack_permitted = self.cfg.sack;
                if self.cfg.timestamps {
                    options.timestamps = Some((self.ts_now(now), 0));
                }
            }
            window = self.recv_buf.window().min(0xffff) as u16;
        } else {
            if self.ts_ok {
                options.timestamps = Some((self.ts_now(now), self.ts_recent));
            }
            if self.sack_ok && flags.contains(TcpFlags::ACK) {
                // A D-SACK block goes first, once (RFC 2883).
                if let Some((start, end)) = self.dsack.take() {
                    options.push_sack(SackBlock { start, end });
                }
                let ranges = self.recv_buf.out_of_order();
                // RFC 2018, 4: the block holding the segment that arrived
                // last comes first, then the others in sequence order.
                let recent = self.sack_recent.and_then(|at| {
                    let offset = seq::dist(self.rcv_nxt, at);
                    ranges.iter().position(|&(s, e)| s <= offset && offset < e)
                });
                let others = (0..ranges.len()).filter(|&i| Some(i) != recent);
                let room = 3 - options.sack().len().min(3);
                for i in recent.into_iter().chain(others).take(room) {
                    let (s, e) = ranges[i];
                    let start = self.rcv_nxt.wrapping_add(s as u32);
                    let end = self.rcv_nxt.wrapping_add(e as u32);
                    options.push_sack(SackBlock { start, end });
                }
            }
            let wnd = self.advertised_window() >> self.rcv_wscale;
            window = wnd.min(0xffff) as u16;
        }
        if flags.contains(TcpFlags::ACK) && !flags.contains(TcpFlags::RST) {
            self.last_ack_sent = ack;
            self.ack_now = false;
            self.acks_owed = self.acks_owed.saturating_sub(1);
            self.ack_deadline = None;
            self.segs_unacked = 0;
            let edge = ack.wrapping_add((window as u32) << if syn { 0 } else { self.rcv_wscale });
            if seq::gt(edge, self.rcv_adv) {
                self.set_rcv_adv(edge);
            }
        }
        TcpHeader {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq,
            ack,
            flags,
            window,
            options,
        }
    }

    /// Writes the IPv4 and TCP headers around a payload already in place.
    fn finish(
        &mut self,
        buf: &mut [u8],
        header: &TcpHeader,
        payload_len: usize,
        mode: Checksum,
    ) -> usize {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        emit_ipv4_tcp_with(
            buf,
            *self.local.ip(),
            *self.remote.ip(),
            self.ip_ident,
            header,
            payload_len,
            mode,
        )
    }

    /// A segment without payload.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        payload_len: usize,
        syn: bool,
    ) -> usize {
        let header = if flags.contains(TcpFlags::RST) {
            TcpHeader {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq,
                ack,
                flags,
                window: 0,
                options: TcpOptions::default(),
            }
        } else {
            self.header(now, seq, ack, flags, syn)
        };
        self.finish(buf, &header, payload_len, Checksum::Full)
    }
}
