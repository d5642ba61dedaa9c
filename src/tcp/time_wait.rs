//! A connection in TIME-WAIT whose socket is gone: a few words instead of
//! a whole [`Tcb`].
//!
//! Once both FINs are acknowledged and the application has closed its
//! descriptor, all a connection still does for 2·MSL is answer what the
//! peer may send: ACK a retransmitted FIN (and wait 2·MSL again), challenge
//! or drop strays, die on an exact RST. That needs the two sequence
//! numbers, the window and the timestamp state, not buffers, congestion
//! control or a sent record; as Linux keeps an `inet_timewait_sock`, the
//! stack keeps this instead of the control block (about 1.7 KiB).
//!
//! The answers are the control block's own, segment for segment: a test
//! feeds both the same segments and compares every byte they send.

use std::net::SocketAddrV4;
use std::time::Duration;

use super::input::{acceptable, paws_rejects, OOW_ACK_INTERVAL, PAWS_SLACK};
use super::seq;
use super::state::State;
use super::tcb::Tcb;
use crate::time::Instant;
use crate::wire::{emit_ipv4_tcp_with, Checksum, SackBlock, TcpFlags, TcpHeader, TcpOptions};

/// The timestamp state of a connection that negotiated timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timestamps {
    /// TS.Recent: the newest clock of the peer's we accepted.
    recent: u32,
    /// When TS.Recent was set.
    recent_at: Instant,
    /// Our clock's offset from the millisecond count.
    offset: u32,
}

/// What a segment to a connection in TIME-WAIT calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeWaitReply {
    /// Nothing.
    Nothing,
    /// An ACK ([`TimeWait::emit_ack`]).
    Ack,
    /// The peer reset the connection: forget it now.
    Closed,
}

/// A connection in TIME-WAIT, without its control block.
#[derive(Clone, Copy, Debug)]
pub struct TimeWait {
    local: SocketAddrV4,
    remote: SocketAddrV4,
    /// The sequence number of our ACKs (everything we sent is acknowledged).
    snd_nxt: u32,
    /// The largest window the peer offered: an ACK field more than this
    /// (or 64 KiB) below SND.UNA is too old to be genuine (RFC 5961, 5.2).
    max_snd_wnd: u32,
    /// The segment that last moved the peer's window (SND.WL1, SND.WL2).
    snd_wl: (u32, u32),
    snd_wscale: u8,
    /// The peer's ISN: a copy of its first SYN is still answered.
    irs: u32,
    /// Just past the peer's FIN.
    rcv_nxt: u32,
    /// Free room in the receive buffer (it can no longer change).
    rcv_free: u32,
    /// The smallest step the window's right edge moves by (receiver-side
    /// silly window avoidance).
    rcv_step: u32,
    /// The right edge of the window we last advertised.
    rcv_adv: u32,
    /// The ACK field of our last ACK.
    last_ack_sent: u32,
    rcv_wscale: u8,
    sack_ok: bool,
    ts: Option<Timestamps>,
    last_oow_ack: Option<Instant>,
    /// A D-SACK block for the next ACK: old data the peer sent again.
    dsack: Option<(u32, u32)>,
    ip_ident: u16,
    /// When the connection may be forgotten.
    deadline: Instant,
    /// 2·MSL: how long a retransmitted FIN makes it wait again.
    hold: Duration,
}

/// RFC 6191, as Linux decides it: a SYN (without ACK or RST) for a
/// connection in TIME-WAIT opens a new one on the same ports if it starts
/// beyond RCV.NXT, or carries a newer timestamp than TS.Recent (`recent`,
/// when timestamps are on) — so a peer whose new ISN happens to be lower
/// still gets in — unless its timestamp is old (PAWS).
fn syn_reopens(seg: &crate::wire::TcpSegment, rcv_nxt: u32, recent: Option<u32>) -> bool {
    let f = seg.flags;
    if !f.contains(TcpFlags::SYN) || f.intersects(TcpFlags::ACK | TcpFlags::RST) {
        return false;
    }
    let age = match (recent, seg.options.timestamps) {
        (Some(recent), Some((val, _))) => Some(recent.wrapping_sub(val) as i32),
        _ => None,
    };
    if age.is_some_and(|a| a > PAWS_SLACK) {
        return false;
    }
    seq::gt(seg.seq, rcv_nxt) || age.is_some_and(|a| a < 0)
}

impl Tcb {
    /// Whether `seg` is a SYN that may open a new connection in place of
    /// this one, in TIME-WAIT (RFC 6191): the stack then lets it go and
    /// hands the SYN to the listener.
    pub fn syn_reopens(&self, seg: &crate::wire::TcpSegment) -> bool {
        self.state == State::TimeWait
            && syn_reopens(seg, self.rcv_nxt, self.ts_ok.then_some(self.ts_recent))
    }

    /// The connection as a [`TimeWait`], if it is in TIME-WAIT with nothing
    /// left to send and no timer but TIME-WAIT's own: then the compact
    /// form behaves exactly as the control block would.
    pub fn time_wait(&self) -> Option<TimeWait> {
        let quiet = self.state == State::TimeWait
            && !self.ack_now
            && self.acks_owed == 0
            && self.pending_rst.is_none()
            && self.dsack.is_none()
            && self.snd_una == self.snd_max
            && self.probe_end.is_none()
            && self.recv_buf.out_of_order().is_empty()
            && self.ack_deadline.is_none()
            && self.rto_deadline.is_none()
            && self.pto_deadline.is_none()
            && self.rack_deadline.is_none()
            && self.persist_deadline.is_none();
        if !quiet {
            return None;
        }
        Some(TimeWait {
            local: self.local,
            remote: self.remote,
            snd_nxt: self.acceptable_seq(),
            max_snd_wnd: self.max_snd_wnd,
            snd_wl: (self.snd_wl1, self.snd_wl2),
            snd_wscale: self.snd_wscale,
            irs: self.irs,
            rcv_nxt: self.rcv_nxt,
            rcv_free: self.recv_buf.window() as u32,
            rcv_step: self.window_step() as u32,
            rcv_adv: self.rcv_adv,
            last_ack_sent: self.last_ack_sent,
            rcv_wscale: self.rcv_wscale,
            sack_ok: self.sack_ok,
            ts: self.ts_ok.then_some(Timestamps {
                recent: self.ts_recent,
                recent_at: self.ts_recent_at,
                offset: self.ts_offset,
            }),
            last_oow_ack: self.last_oow_ack,
            dsack: None,
            ip_ident: self.ip_ident,
            deadline: self.time_wait_deadline?,
            hold: self.cfg.msl * 2,
        })
    }
}

impl TimeWait {
    /// Our end.
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// The peer's end.
    pub fn remote(&self) -> SocketAddrV4 {
        self.remote
    }

    /// When TIME-WAIT ends (a retransmitted FIN moves it later).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether `seg` is a SYN that may open a new connection in this one's
    /// place (see [`Tcb::syn_reopens`]).
    pub fn syn_reopens(&self, seg: &crate::wire::TcpSegment) -> bool {
        syn_reopens(seg, self.rcv_nxt, self.ts.map(|t| t.recent))
    }

    /// Takes one segment for this connection (RFC 9293, 3.10.7.4, with
    /// PAWS and the RFC 5961 challenges, as the control block does).
    pub fn on_segment(&mut self, now: Instant, seg: &crate::wire::TcpSegment) -> TimeWaitReply {
        let mut f = seg.flags;
        let mut seq_start = seg.seq;
        let mut ack = false;
        if f.contains(TcpFlags::SYN) && seg.seq == self.irs {
            // A copy of the peer's first SYN: it gets an ACK.
            f = TcpFlags(f.bits() & !TcpFlags::SYN.bits());
            seq_start = seg.seq.wrapping_add(1);
            ack = true;
        }
        let payload = seg.payload.len() as u32;
        let seg_len = payload + f.contains(TcpFlags::FIN) as u32;
        if let (Some(ts), false) = (self.ts.as_mut(), f.contains(TcpFlags::RST)) {
            if let Some((val, _)) = seg.options.timestamps {
                if paws_rejects(&mut ts.recent, &mut ts.recent_at, val, now) {
                    return self.oow_ack_or(now, seg, ack);
                }
            }
        }
        let wnd = self.advertised_window();
        let mut data = payload > 0;
        if !acceptable(seq_start, seg_len, self.rcv_nxt, wnd) {
            if wnd == 0 && seq_start == self.rcv_nxt {
                // Data and FIN at a shut window are not taken: answered.
                ack |= seg_len > 0;
                data = false;
                f = TcpFlags(f.bits() & !TcpFlags::FIN.bits());
            } else {
                if f.contains(TcpFlags::FIN) {
                    // The peer retransmitted its FIN: our last ACK was lost.
                    self.deadline = now + self.hold;
                }
                if f.contains(TcpFlags::RST) {
                    return self.reply(ack);
                }
                let data_end = seq_start.wrapping_add(payload);
                if self.sack_ok && payload > 0 && seq::le(data_end, self.rcv_nxt) {
                    self.dsack = Some((seq_start, data_end));
                }
                return self.oow_ack_or(now, seg, ack);
            }
        }
        if let (Some(ts), Some((val, _))) = (self.ts.as_mut(), seg.options.timestamps) {
            if seq::le(seq_start, self.last_ack_sent) && seq::ge(val, ts.recent) {
                ts.recent = val;
                ts.recent_at = now;
            }
        }
        if f.contains(TcpFlags::RST) {
            if seq_start != self.rcv_nxt {
                return self.oow_ack_or(now, seg, ack);
            }
            return TimeWaitReply::Closed;
        }
        if f.contains(TcpFlags::SYN) {
            return self.oow_ack_or(now, seg, ack);
        }
        if !f.contains(TcpFlags::ACK) {
            return self.reply(ack);
        }
        let floor = self.snd_nxt.wrapping_sub(self.max_snd_wnd.max(1 << 16));
        if seq::gt(seg.ack, self.snd_nxt) || seq::lt(seg.ack, floor) {
            return self.oow_ack_or(now, seg, ack);
        }
        let (wl1, wl2) = self.snd_wl;
        if seq::lt(wl1, seg.seq) || (wl1 == seg.seq && seq::le(wl2, seg.ack)) {
            let window = (seg.window as u32) << self.snd_wscale;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            self.snd_wl = (seg.seq, seg.ack);
        }
        // Data after the peer's FIN is bogus: it gets an ACK.
        ack |= data;
        if f.contains(TcpFlags::FIN) {
            let fin = seq_start.wrapping_add(payload);
            ack = true;
            if fin == self.rcv_nxt {
                self.deadline = now + self.hold;
            }
        }
        self.reply(ack)
    }

    /// The window to check segments against and to advertise, as the
    /// control block computes it (`Tcb::advertised_window`).
    fn advertised_window(&self) -> u32 {
        let promised = if seq::gt(self.rcv_adv, self.rcv_nxt) {
            seq::dist(self.rcv_nxt, self.rcv_adv) as u32
        } else {
            0
        };
        if self.rcv_free >= promised + self.rcv_step {
            self.rcv_free
        } else {
            promised
        }
    }

    fn reply(&self, ack: bool) -> TimeWaitReply {
        if ack {
            TimeWaitReply::Ack
        } else {
            TimeWaitReply::Nothing
        }
    }

    /// The answer to a stray: an ACK, limited to one per 500 ms for
    /// segments without data, so a forged flood is not echoed — unless
    /// `ack` (an ACK owed anyway, to a copy of the peer's first SYN).
    fn oow_ack_or(
        &mut self,
        now: Instant,
        seg: &crate::wire::TcpSegment,
        ack: bool,
    ) -> TimeWaitReply {
        let pure = seg.payload.is_empty() || seg.flags.contains(TcpFlags::SYN);
        if pure {
            if self
                .last_oow_ack
                .is_some_and(|t| now.saturating_since(t) < OOW_ACK_INTERVAL)
            {
                return self.reply(ack);
            }
            self.last_oow_ack = Some(now);
        }
        TimeWaitReply::Ack
    }

    /// Writes our ACK into `buf` (IPv4 and TCP) and returns its length.
    pub fn emit_ack(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let mut options = TcpOptions::default();
        if let Some(ts) = self.ts {
            let val = (now.millis() as u32).wrapping_add(ts.offset);
            options.timestamps = Some((val, ts.recent));
        }
        if let (true, Some((start, end))) = (self.sack_ok, self.dsack.take()) {
            options.push_sack(SackBlock { start, end });
        }
        let window = (self.advertised_window() >> self.rcv_wscale).min(0xffff) as u16;
        let header = TcpHeader {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: TcpFlags::ACK,
            window,
            options,
        };
        self.last_ack_sent = self.rcv_nxt;
        let edge = self
            .rcv_nxt
            .wrapping_add((window as u32) << self.rcv_wscale);
        if seq::gt(edge, self.rcv_adv) {
            self.rcv_adv = edge;
        }
        self.ip_ident = self.ip_ident.wrapping_add(1);
        emit_ipv4_tcp_with(
            buf,
            *self.local.ip(),
            *self.remote.ip(),
            self.ip_ident,
            &header,
            0,
            Checksum::Full,
        )
    }
}
