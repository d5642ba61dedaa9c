//! Sans-IO IPv4 host: the socket table, demultiplexing, port allocation,
//! ICMP echo, and the socket calls the API layer makes.
//!
//! Like `tcp/`, it never reads a clock or does I/O: packets and `now` come
//! in, packets and the next deadline go out.

mod calls;
mod input;
pub mod netstat;
pub mod ports;
pub mod socket_table;
pub mod syncookie;
mod time_wait;
pub mod timer_wheel;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::error::{Error, Result};
use crate::tcp::{self, IsnGenerator, State, Tcb, Transmit};
use crate::time::Instant;
use ports::Ports;
pub use socket_table::{
    FourTuple, Listener, Socket, SocketId, SocketKind, SocketOptions, SocketTable,
};
use timer_wheel::TimerWheel;

/// How the stack is set up.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// The stack's own address.
    pub addr: Ipv4Addr,
    /// The prefix length of the link's subnet.
    pub prefix_len: u8,
    /// The link MTU; the MSS is clamped to it.
    pub mtu: usize,
    /// TCP defaults for new connections.
    pub tcp: tcp::Config,
    /// The most connections kept in TIME-WAIT at once; beyond, a
    /// connection that would enter it closes at once (as Linux's
    /// tcp_max_tw_buckets), so closing peers cannot grow the stack without
    /// bound.
    pub max_time_wait: usize,
    /// Which shard of a sharded stack this is: its connections are those
    /// whose ports name it (`link::queues::shard_of`), the ones the kernel
    /// steers to its queue of a multi-queue TUN device, so the ephemeral
    /// ports it picks for connect() are such ports.
    pub shard: Shard,
}

/// One stack among `count` that share a device, each with its own queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This stack's number, from 0.
    pub index: usize,
    /// How many there are.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard { index: 0, count: 1 }
    }
}

impl Default for StackConfig {
    fn default() -> StackConfig {
        StackConfig {
            addr: Ipv4Addr::new(10, 77, 0, 2),
            prefix_len: 24,
            mtu: 1500,
            tcp: tcp::Config::default(),
            max_time_wait: 65536,
            shard: Shard::default(),
        }
    }
}

/// Counters of what the stack saw and did.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Packets handed to `on_packet`.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets received larger than the MTU: segments the kernel's receive
    /// offload glued together.
    pub rx_large_packets: u64,
    /// Packets sent carrying several segments, for the link to cut
    /// (segmentation offload).
    pub tx_large_packets: u64,
    /// Packets sent with their payload written from the send ring where it
    /// lies (`tcp::Config::zero_copy`), not copied into the packet first.
    pub tx_in_place: u64,
    /// Packets an application thread wrote to the link itself, in the
    /// call that queued them, instead of the I/O thread (the runtime
    /// counts them: see [`Stack::note_sent_by_caller`]).
    pub tx_by_callers: u64,
    /// Packets a busy-polling application thread took from the link
    /// itself (see [`Stack::note_received_by_caller`]).
    pub rx_by_callers: u64,
    /// Times the I/O thread woke (the runtime counts them: see
    /// [`Stack::note_io_wakeup`]); a thread that leads the device spares
    /// it most.
    pub io_wakeups: u64,
    /// IPv4 packets dropped as malformed (length, version, checksum).
    pub rx_bad_ip: u64,
    /// IPv4 fragments dropped (not reassembled).
    pub rx_fragments: u64,
    /// Packets for another address.
    pub rx_not_ours: u64,
    /// TCP segments dropped as malformed.
    pub rx_bad_tcp: u64,
    /// ICMP messages dropped as malformed.
    pub rx_bad_icmp: u64,
    /// Packets of protocols we do not speak.
    pub rx_unknown_protocol: u64,
    /// Segments answered with RST because no socket wanted them.
    pub rst_sent_no_socket: u64,
    /// SYNs dropped because the accept queue was full.
    pub syn_dropped_backlog: u64,
    /// SYN|ACKs sent with a SYN cookie (the SYN queue was full).
    pub syn_cookies_sent: u64,
    /// Connections rebuilt from a returning SYN cookie.
    pub syn_cookies_accepted: u64,
    /// Connections closed at once because too many were in TIME-WAIT.
    pub time_wait_overflow: u64,
    /// Connections opened by connect (netstat -s: active opens).
    pub tcp_active_opens: u64,
    /// Connections opened from a listener (passive opens).
    pub tcp_passive_opens: u64,
    /// TCP segments received and parsed (segments received).
    pub tcp_in_segs: u64,
    /// TCP segments sent, resets and SYN cookies included (segments sent).
    pub tcp_out_segs: u64,
    /// Segments retransmitted by connections that are gone (see
    /// [`Stack::tcp_retrans_segs`] for the total).
    pub tcp_retrans_segs_closed: u64,
    /// ICMP echo requests answered.
    pub echo_replies: u64,
    /// ICMP errors (destination unreachable) about one of our connections.
    pub icmp_errors: u64,
}

/// Short control packets (RST, ICMP) wait here for `poll_transmit`.
const MAX_CONTROL_QUEUE: usize = 256;

/// The stack: sockets and everything around them.
#[derive(Debug)]
pub struct Stack {
    cfg: StackConfig,
    isn: IsnGenerator,
    sockets: SocketTable,
    ports: Ports,
    /// Sockets that may have something to send.
    tx_queue: VecDeque<SocketId>,
    /// Stack-generated packets, and spare buffers for them.
    control: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    /// Each socket's earliest deadline (`Socket::scheduled`); entries a
    /// socket no longer wants are skipped when they come up.
    timers: TimerWheel<SocketId>,
    /// The timer entries `on_timer` is working through.
    due: Vec<(Instant, SocketId)>,
    /// When compact TIME-WAIT connections end, oldest first: they all wait
    /// 2·MSL, so the queue stays in order (a restart queues a new entry;
    /// the old one is then stale and skipped).
    time_wait_ends: VecDeque<(Instant, FourTuple)>,
    changed: Vec<SocketId>,
    /// A timer became due before the earliest one queued so far.
    earlier_deadline: bool,
    /// Connections now in TIME-WAIT, with their socket or compact.
    time_wait: usize,
    stats: Stats,
    /// Connection events since the runtime last took them, when it asked
    /// for them ([`Stack::record_events`]; its debug log).
    events: Option<Vec<ConnEvent>>,
}

/// Something that happened to a connection, for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnEvent {
    /// Our end.
    pub local: SocketAddrV4,
    /// The peer's.
    pub remote: SocketAddrV4,
    /// What happened.
    pub kind: ConnEventKind,
}

/// What happened to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnEventKind {
    /// It moved from one state to another (`None`: it was just made).
    State(Option<State>, State),
    /// Its socket was freed: closed by the application and finished.
    Freed,
}

impl Stack {
    /// A stack with no sockets.
    pub fn new(mut cfg: StackConfig) -> Stack {
        let mtu_mss = cfg.mtu.saturating_sub(40).clamp(88, 0xffff) as u16;
        cfg.tcp.mss = cfg.tcp.mss.min(mtu_mss);
        Stack {
            cfg,
            isn: IsnGenerator::new(),
            sockets: SocketTable::default(),
            ports: Ports::default(),
            tx_queue: VecDeque::new(),
            control: VecDeque::new(),
            spare: Vec::new(),
            timers: TimerWheel::new(),
            due: Vec::new(),
            time_wait_ends: VecDeque::new(),
            changed: Vec::new(),
            earlier_deadline: false,
            time_wait: 0,
            stats: Stats::default(),
            events: None,
        }
    }

    /// Starts (or stops) recording connection events for
    /// [`Stack::take_events`]; off by default, so nothing accumulates.
    pub fn record_events(&mut self, on: bool) {
        self.events = on.then(Vec::new);
    }

    /// The connection events recorded since the last call, appended to `out`.
    pub fn take_events(&mut self, out: &mut Vec<ConnEvent>) {
        if let Some(events) = self.events.as_mut() {
            out.append(events);
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Segments retransmitted over the stack's life (netstat -s:
    /// segments retransmitted), live connections included.
    pub fn tcp_retrans_segs(&self) -> u64 {
        self.stats.tcp_retrans_segs_closed
            + self
                .connections()
                .map(|(_, t)| t.stats().retransmitted_segments)
                .sum::<u64>()
    }

    /// Connections now in TIME-WAIT, with their socket or compact.
    pub fn time_wait_count(&self) -> usize {
        self.time_wait
    }

    /// The number of live sockets, closing ones included (not the compact
    /// TIME-WAIT entries that outlive theirs: see `time_waits`).
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    /// Every connection, for inspection (observability tools, tests).
    pub fn connections(&self) -> impl Iterator<Item = (SocketId, &Tcb)> + '_ {
        self.sockets
            .ids()
            .filter_map(|id| Some((id, self.sockets.get(id)?.tcb()?)))
    }

    /// A socket, for inspection.
    pub fn socket(&self, id: SocketId) -> Option<&Socket> {
        self.sockets.get(id)
    }

    pub(super) fn sock(&self, id: SocketId) -> Result<&Socket> {
        match self.sockets.get(id) {
            Some(s) if !s.app_closed => Ok(s),
            _ => Err(Error::BadDescriptor),
        }
    }

    pub(super) fn sock_mut(&mut self, id: SocketId) -> Result<&mut Socket> {
        match self.sockets.get_mut(id) {
            Some(s) if !s.app_closed => Ok(s),
            _ => Err(Error::BadDescriptor),
        }
    }

    /// Moves the sockets whose readiness may have changed into `out`.
    pub fn take_changed(&mut self, out: &mut Vec<SocketId>) {
        for id in self.changed.drain(..) {
            if let Some(s) = self.sockets.get_mut(id) {
                s.changed = false;
                out.push(id);
            }
        }
    }

    /// Bookkeeping after anything touched socket `id`: queue it for
    /// transmission, schedule its timer, note readiness changes, move
    /// finished handshakes to the accept queue, and free dead sockets.
    pub(crate) fn after(&mut self, now: Instant, id: SocketId) {
        self.after_inner(now, id, true)
    }

    fn after_inner(&mut self, _now: Instant, id: SocketId, queue_tx: bool) {
        let Some(sock) = self.sockets.get_mut(id) else {
            return;
        };
        let mut changed = sock.changed;
        let mut closed_conn = false;
        let mut established_child = false;
        let mut dead = false;
        let mut compact = None;
        if let SocketKind::Conn(t) = &mut sock.kind {
            changed |= t.take_changed();
            if queue_tx && t.wants_transmit() && !sock.in_tx_queue {
                sock.in_tx_queue = true;
                self.tx_queue.push_back(id);
            }
            if let Some(d) = t.deadline() {
                if sock.scheduled.is_none_or(|s| d < s) {
                    sock.scheduled = Some(d);
                    if self.timers.next_deadline().is_none_or(|first| d < first) {
                        self.earlier_deadline = true;
                    }
                    self.timers.insert(d, id);
                }
            }
            // TIME-WAIT accounting: counted on the way in, uncounted on
            // the way out (or when the socket goes).
            let in_tw = t.state() == State::TimeWait;
            if in_tw && !sock.in_time_wait {
                if self.time_wait >= self.cfg.max_time_wait {
                    t.leave_time_wait();
                    self.stats.time_wait_overflow += 1;
                } else {
                    sock.in_time_wait = true;
                    self.time_wait += 1;
                }
            } else if !in_tw && sock.in_time_wait {
                sock.in_time_wait = false;
                self.time_wait -= 1;
            }
            closed_conn = t.state() == State::Closed;
            established_child = sock.parent.is_some() && t.state() != State::SynReceived;
            dead = t.is_finished() && sock.app_closed && !sock.in_tx_queue;
            if sock.in_time_wait && sock.app_closed && sock.parent.is_none() && !sock.in_tx_queue {
                compact = t.time_wait();
            }
            if let Some(events) = self.events.as_mut() {
                let (local, remote) = (t.local(), t.remote());
                if sock.reported_state != Some(t.state()) {
                    let kind = ConnEventKind::State(sock.reported_state, t.state());
                    events.push(ConnEvent {
                        local,
                        remote,
                        kind,
                    });
                    sock.reported_state = Some(t.state());
                }
                if dead {
                    let kind = ConnEventKind::Freed;
                    events.push(ConnEvent {
                        local,
                        remote,
                        kind,
                    });
                }
            }
        } else if sock.app_closed {
            dead = true;
        }
        if closed_conn {
            if let Some(key) = sock.key.take() {
                if self.sockets.conns.get(&key) == Some(&id) {
                    self.sockets.conns.remove(&key);
                }
            }
        }
        if established_child {
            self.promote_child(id, closed_conn);
        }
        if dead {
            self.free(id);
            return;
        }
        if let Some(tw) = compact {
            self.compact_time_wait(id, tw);
            return;
        }
        if changed {
            self.mark_changed(id);
        }
    }

    /// The socket's readiness may have changed: the runtime looks again.
    pub(crate) fn mark_changed(&mut self, id: SocketId) {
        if let Some(s) = self.sockets.get_mut(id) {
            if !s.changed {
                s.changed = true;
                self.changed.push(id);
            }
        }
    }

    /// A child left SYN-RECEIVED: established ones join the accept queue,
    /// failed ones vanish.
    fn promote_child(&mut self, id: SocketId, failed: bool) {
        let Some(parent) = self.sockets.get_mut(id).and_then(|s| s.parent) else {
            return;
        };
        let Some(SocketKind::Listener(l)) = self.sockets.get_mut(parent).map(|p| &mut p.kind)
        else {
            return;
        };
        if !l.pending.contains(&id) {
            return;
        }
        l.pending.retain(|&c| c != id);
        if failed {
            if let Some(s) = self.sockets.get_mut(id) {
                s.app_closed = true;
                s.parent = None;
            }
        } else {
            l.ready.push_back(id);
            self.mark_changed(parent);
        }
    }

    fn free(&mut self, id: SocketId) {
        if let Some(s) = self.sockets.remove(id) {
            if let Some(t) = s.tcb() {
                self.stats.tcp_retrans_segs_closed += t.stats().retransmitted_segments;
            }
            if s.in_time_wait {
                self.time_wait -= 1;
            }
            if let Some(local) = s.local {
                self.ports.remove(local.port(), id);
            }
        }
    }

    /// The next IPv4 packet to send, written into `buf` (at least MTU + 80
    /// bytes; packets of several segments use up to `tcp.gso_max`). Call
    /// until None.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some(pkt) = self.control.pop_front() {
            let n = pkt.len().min(buf.len());
            buf[..n].copy_from_slice(&pkt[..n]);
            self.spare.push(pkt);
            self.stats.tx_packets += 1;
            return Some(Transmit::one(n));
        }
        while let Some(id) = self.tx_queue.pop_front() {
            let sent = match self.sockets.get_mut(id).and_then(|s| s.tcb_mut()) {
                Some(t) => t.poll_transmit(now, buf),
                None => None,
            };
            if let Some(t) = sent {
                self.stats.tx_packets += 1;
                self.stats.tcp_out_segs += u64::from(t.segments);
                if t.gso.is_some() {
                    self.stats.tx_large_packets += 1;
                }
                if t.payload.is_some() {
                    self.stats.tx_in_place += 1;
                }
                // Round-robin: one packet, then the next socket's turn, so
                // no connection waits while another drains its window.
                self.tx_queue.push_back(id);
                return Some(t);
            }
            if let Some(s) = self.sockets.get_mut(id) {
                s.in_tx_queue = false;
            }
            // Whatever it still holds waits for an ACK, a timer or the application.
            self.after_inner(now, id, false);
        }
        None
    }

    /// Counts a packet from `poll_transmit` that the calling application
    /// thread writes itself.
    pub fn note_sent_by_caller(&mut self) {
        self.stats.tx_by_callers += 1;
    }

    /// Counts a packet a busy-polling application thread read from the
    /// link itself before handing it to `on_packet`.
    pub fn note_received_by_caller(&mut self) {
        self.stats.rx_by_callers += 1;
    }

    /// Counts a wake-up of the I/O thread.
    pub fn note_io_wakeup(&mut self) {
        self.stats.io_wakeups += 1;
    }

    /// True when something waits to be sent (so the I/O thread must run).
    pub fn has_pending_output(&self) -> bool {
        !self.tx_queue.is_empty() || !self.control.is_empty()
    }

    /// True if the I/O thread must run soon: something waits to be sent, or
    /// a call made a timer due earlier than any the thread is sleeping
    /// towards (e.g. keep-alive turned on for an idle connection). Clears
    /// the latter; the I/O thread calls this too, before it sleeps.
    pub fn needs_io_thread(&mut self) -> bool {
        self.take_earlier_deadline() || self.has_pending_output()
    }

    /// True (once) if a call made a timer due earlier than any the I/O
    /// thread is sleeping towards.
    pub fn take_earlier_deadline(&mut self) -> bool {
        std::mem::take(&mut self.earlier_deadline)
    }

    /// The earliest moment `on_timer` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let sockets = self.timers.next_deadline();
        let time_waits = self.time_wait_ends.front().map(|&(t, _)| t);
        sockets.into_iter().chain(time_waits).min()
    }

    /// Runs the timers that are due.
    pub fn on_timer(&mut self, now: Instant) {
        self.end_time_waits(now);
        let mut due = std::mem::take(&mut self.due);
        loop {
            self.timers.expire(now, &mut due);
            if due.is_empty() {
                break;
            }
            // In deadline order, as they fell due (ties by socket), so a
            // run does not depend on how the wheel stored them.
            due.sort_unstable();
            for &(t, id) in &due {
                let Some(sock) = self.sockets.get_mut(id) else {
                    continue;
                };
                if sock.scheduled != Some(t) {
                    continue; // a stale entry; a newer one is queued
                }
                sock.scheduled = None;
                if let Some(tcb) = sock.tcb_mut() {
                    tcb.on_timer(now);
                }
                self.after(now, id);
            }
            due.clear();
        }
        self.due = due;
    }

    pub(crate) fn queue_control(&mut self, build: impl FnOnce(&mut [u8]) -> usize) {
        if self.control.len() >= MAX_CONTROL_QUEUE {
            return;
        }
        let mut pkt = self.spare.pop().unwrap_or_default();
        pkt.resize(self.cfg.mtu.max(576) + 80, 0);
        let n = build(&mut pkt);
        pkt.truncate(n);
        if n > 0 {
            self.control.push_back(pkt);
        }
    }
}
