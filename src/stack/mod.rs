//! Sans-IO IPv4 host: the socket table, demultiplexing, port allocation,
//! ICMP echo, and the socket calls the API layer makes.
//!
//! Like `tcp/`, it never reads a clock or does I/O: packets and `now` come
//! in, packets and the next deadline go out.

mod input;
pub mod ports;
pub mod socket_table;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::error::{Error, Result};
use crate::tcp::{self, IsnGenerator, State, Tcb};
use crate::time::Instant;
use ports::Ports;
pub use socket_table::{
    FourTuple, Listener, Socket, SocketId, SocketKind, SocketOptions, SocketTable,
};

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
}

impl Default for StackConfig {
    fn default() -> StackConfig {
        StackConfig {
            addr: Ipv4Addr::new(10, 77, 0, 2),
            prefix_len: 24,
            mtu: 1500,
            tcp: tcp::Config::default(),
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
    /// SYNs dropped because the listen backlog was full.
    pub syn_dropped_backlog: u64,
    /// ICMP echo requests answered.
    pub echo_replies: u64,
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
    timers: BinaryHeap<Reverse<(Instant, SocketId)>>,
    changed: Vec<SocketId>,
    stats: Stats,
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
            timers: BinaryHeap::new(),
            changed: Vec::new(),
            stats: Stats::default(),
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

    /// The number of live sockets, closing ones included.
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

    fn sock(&self, id: SocketId) -> Result<&Socket> {
        match self.sockets.get(id) {
            Some(s) if !s.app_closed => Ok(s),
            _ => Err(Error::BadDescriptor),
        }
    }

    fn sock_mut(&mut self, id: SocketId) -> Result<&mut Socket> {
        match self.sockets.get_mut(id) {
            Some(s) if !s.app_closed => Ok(s),
            _ => Err(Error::BadDescriptor),
        }
    }

    /// socket(AF_INET, SOCK_STREAM, 0).
    pub fn socket_tcp(&mut self) -> SocketId {
        let options = SocketOptions {
            reuse_addr: false,
            keep_alive: false,
            nodelay: self.cfg.tcp.nodelay,
            recv_buffer: self.cfg.tcp.recv_buffer,
            send_buffer: self.cfg.tcp.send_buffer,
        };
        self.sockets.insert(Socket {
            kind: SocketKind::Fresh,
            local: None,
            options,
            parent: None,
            app_closed: false,
            scheduled: None,
            in_tx_queue: false,
            changed: false,
            key: None,
        })
    }

    /// bind(): `0.0.0.0` or our address; port 0 picks an ephemeral port.
    pub fn bind(&mut self, id: SocketId, addr: SocketAddrV4) -> Result<()> {
        let sock = self.sock(id)?;
        if sock.local.is_some() || !matches!(sock.kind, SocketKind::Fresh) {
            return Err(Error::Invalid);
        }
        if !addr.ip().is_unspecified() && *addr.ip() != self.cfg.addr {
            return Err(Error::AddressNotAvailable);
        }
        let reuse = sock.options.reuse_addr;
        let port = if addr.port() == 0 {
            let r = self.isn.hash64(&id.0.to_le_bytes());
            self.ports.pick_ephemeral(r).ok_or(Error::AddressInUse)?
        } else {
            if self.port_conflict(addr.port(), reuse) {
                return Err(Error::AddressInUse);
            }
            addr.port()
        };
        self.ports.add(port, id);
        self.sock_mut(id)?.local = Some(SocketAddrV4::new(*addr.ip(), port));
        Ok(())
    }

    /// Linux's rule: a port can be shared only if both sides set
    /// SO_REUSEADDR and the holder is not listening; connections lingering
    /// in TIME-WAIT never block a SO_REUSEADDR bind.
    fn port_conflict(&self, port: u16, reuse: bool) -> bool {
        self.ports.users(port).iter().any(|&u| {
            let Some(s) = self.sockets.get(u) else {
                return false;
            };
            let listening = matches!(s.kind, SocketKind::Listener(_));
            let time_wait = s.tcb().is_some_and(|t| t.state() == State::TimeWait);
            !(reuse && (time_wait || (s.options.reuse_addr && !listening)))
        })
    }

    /// listen(): backlog ≤ 0 is taken as 1, as Linux effectively does.
    pub fn listen(&mut self, id: SocketId, backlog: i32) -> Result<()> {
        let backlog = backlog.clamp(1, 4096) as usize;
        let sock = self.sock(id)?;
        match &sock.kind {
            SocketKind::Listener(_) => {
                if let SocketKind::Listener(l) = &mut self.sock_mut(id)?.kind {
                    l.backlog = backlog;
                }
                return Ok(());
            }
            SocketKind::Conn(_) => return Err(Error::Invalid),
            SocketKind::Fresh => {}
        }
        if sock.local.is_none() {
            self.bind(id, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        }
        let port = self.sock(id)?.local.map(|a| a.port()).unwrap_or(0);
        if self.sockets.listeners.contains_key(&port) {
            return Err(Error::AddressInUse);
        }
        let sock = self.sock_mut(id)?;
        sock.kind = SocketKind::Listener(Listener {
            backlog,
            ..Listener::default()
        });
        self.sockets.listeners.insert(port, id);
        Ok(())
    }

    /// connect(): starts the handshake (the SYN goes out on the next
    /// `poll_transmit`). Completion shows in the socket's state.
    pub fn connect(&mut self, now: Instant, id: SocketId, remote: SocketAddrV4) -> Result<()> {
        let sock = self.sock(id)?;
        match &sock.kind {
            SocketKind::Listener(_) => return Err(Error::Invalid),
            SocketKind::Conn(t)
                if t.state() == State::Closed
                    && t.peek_error().is_none()
                    && sock.key.is_none()
                    && t.is_finished()
                    && !t.is_passive() =>
            {
                // A failed connect leaves the socket unconnected: it may try again.
            }
            SocketKind::Conn(t) => {
                return Err(match t.state() {
                    State::SynSent | State::SynReceived => Error::Already,
                    _ => Error::IsConnected,
                })
            }
            SocketKind::Fresh => {}
        }
        let ip = *remote.ip();
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || remote.port() == 0 {
            return Err(if remote.port() == 0 {
                Error::ConnectionRefused
            } else {
                Error::NetworkUnreachable
            });
        }
        if ip == self.cfg.addr {
            // Talking to ourselves would need a loopback path inside the stack.
            return Err(Error::ConnectionRefused);
        }
        if sock.local.is_none() {
            let r = self
                .isn
                .hash64(&[&ip.octets()[..], &remote.port().to_le_bytes()].concat());
            let port = self
                .ports
                .pick_ephemeral(r)
                .ok_or(Error::AddressNotAvailable)?;
            self.ports.add(port, id);
            self.sock_mut(id)?.local = Some(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        }
        let port = self.sock(id)?.local.map(|a| a.port()).unwrap_or(0);
        let local = SocketAddrV4::new(self.cfg.addr, port);
        let key = FourTuple::new(local, remote);
        if self.sockets.conns.contains_key(&key) {
            return Err(Error::AddressNotAvailable);
        }
        let mut cfg = self.cfg.tcp.clone();
        let opts = &self.sock(id)?.options;
        cfg.nodelay = opts.nodelay;
        cfg.recv_buffer = opts.recv_buffer;
        cfg.send_buffer = opts.send_buffer;
        let iss = self.isn.isn(now, local, remote);
        let tcb = Tcb::connect(&cfg, local, remote, iss);
        let sock = self.sock_mut(id)?;
        sock.kind = SocketKind::Conn(Box::new(tcb));
        sock.local = Some(local);
        sock.key = Some(key);
        self.sockets.conns.insert(key, id);
        self.after(now, id);
        Ok(())
    }

    /// accept(): the oldest established child, if any.
    pub fn accept(&mut self, id: SocketId) -> Result<SocketId> {
        let sock = self.sock_mut(id)?;
        let SocketKind::Listener(l) = &mut sock.kind else {
            return Err(Error::Invalid);
        };
        let child = l.ready.pop_front().ok_or(Error::WouldBlock)?;
        if let Some(c) = self.sockets.get_mut(child) {
            c.parent = None;
        }
        Ok(child)
    }

    /// send(): queues what fits in the send buffer.
    pub fn send(&mut self, now: Instant, id: SocketId, data: &[u8]) -> Result<usize> {
        let sock = self.sock_mut(id)?;
        let tcb = match &mut sock.kind {
            SocketKind::Conn(t) => t,
            _ => return Err(Error::NotConnected),
        };
        let r = tcb.send(data);
        if r.is_ok() || r == Err(Error::WouldBlock) {
            self.after(now, id);
        }
        r
    }

    /// recv(): copies received bytes (Ok(0) = end of stream).
    pub fn recv(
        &mut self,
        now: Instant,
        id: SocketId,
        out: &mut [u8],
        peek: bool,
    ) -> Result<usize> {
        let sock = self.sock_mut(id)?;
        let tcb = match &mut sock.kind {
            SocketKind::Conn(t) => t,
            _ => return Err(Error::NotConnected),
        };
        let r = tcb.recv(out, peek);
        if tcb.wants_transmit() {
            self.after(now, id);
        }
        r
    }

    /// shutdown(): `read` and/or `write` halves.
    pub fn shutdown(&mut self, now: Instant, id: SocketId, read: bool, write: bool) -> Result<()> {
        let sock = self.sock_mut(id)?;
        let tcb = match &mut sock.kind {
            SocketKind::Conn(t) => t,
            SocketKind::Listener(_) => {
                // Linux: shutting down a listener stops it and wakes accept.
                return Err(Error::NotConnected);
            }
            SocketKind::Fresh => return Err(Error::NotConnected),
        };
        if matches!(tcb.state(), State::Closed) && !tcb.read_closed() {
            return Err(Error::NotConnected);
        }
        if read {
            tcb.shutdown_read();
        }
        if write {
            let _ = tcb.shutdown_write();
        }
        self.after(now, id);
        Ok(())
    }

    /// close(): the descriptor goes away; a connection finishes in the background.
    pub fn close(&mut self, now: Instant, id: SocketId) -> Result<()> {
        let sock = self.sock_mut(id)?;
        sock.app_closed = true;
        match &mut sock.kind {
            SocketKind::Conn(t) => {
                t.close();
            }
            SocketKind::Listener(l) => {
                let children: Vec<SocketId> =
                    l.pending.drain(..).chain(l.ready.drain(..)).collect();
                if let Some(local) = sock.local {
                    if self.sockets.listeners.get(&local.port()) == Some(&id) {
                        self.sockets.listeners.remove(&local.port());
                    }
                }
                for c in children {
                    if let Some(t) = self.sockets.get_mut(c).and_then(|s| s.tcb_mut()) {
                        t.abort();
                    }
                    if let Some(s) = self.sockets.get_mut(c) {
                        s.app_closed = true;
                        s.parent = None;
                    }
                    self.after(now, c);
                }
            }
            SocketKind::Fresh => {}
        }
        self.after(now, id);
        Ok(())
    }

    /// SO_LINGER with a zero timeout: close() sends RST at once.
    pub fn abort(&mut self, now: Instant, id: SocketId) -> Result<()> {
        if let Some(t) = self.sock_mut(id)?.tcb_mut() {
            t.abort();
        }
        self.close(now, id)
    }

    /// The local address (0.0.0.0:0 when unbound).
    pub fn local_addr(&self, id: SocketId) -> Result<SocketAddrV4> {
        let s = self.sock(id)?;
        Ok(match s.tcb() {
            Some(t) => t.local(),
            None => s
                .local
                .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        })
    }

    /// The peer's address, for a connection that is (or was) established.
    pub fn peer_addr(&self, id: SocketId) -> Result<SocketAddrV4> {
        match self.sock(id)?.tcb() {
            Some(t) if !matches!(t.state(), State::SynSent | State::Closed) => Ok(t.remote()),
            Some(t)
                if t.state() == State::Closed && t.read_closed() && t.peek_error().is_none() =>
            {
                Ok(t.remote())
            }
            _ => Err(Error::NotConnected),
        }
    }

    /// The connection's state (LISTEN for listeners, CLOSED for fresh sockets).
    pub fn state(&self, id: SocketId) -> Result<State> {
        let s = self.sock(id)?;
        Ok(match &s.kind {
            SocketKind::Fresh => State::Closed,
            SocketKind::Listener(_) => State::Listen,
            SocketKind::Conn(t) => t.state(),
        })
    }

    /// The connection itself, for inspection.
    pub fn tcb(&self, id: SocketId) -> Option<&Tcb> {
        self.sockets.get(id)?.tcb()
    }

    /// SO_ERROR: read and clear.
    pub fn take_error(&mut self, id: SocketId) -> Result<Option<Error>> {
        Ok(self.sock_mut(id)?.tcb_mut().and_then(|t| t.take_error()))
    }

    /// The socket's options.
    pub fn options(&self, id: SocketId) -> Result<&SocketOptions> {
        Ok(&self.sock(id)?.options)
    }

    /// Changes the socket's options; connections pick them up at once.
    pub fn set_options(
        &mut self,
        now: Instant,
        id: SocketId,
        f: impl FnOnce(&mut SocketOptions),
    ) -> Result<()> {
        let sock = self.sock_mut(id)?;
        f(&mut sock.options);
        let o = sock.options.clone();
        if let Some(t) = sock.tcb_mut() {
            t.set_nodelay(o.nodelay);
            t.set_send_buffer(o.send_buffer);
            t.set_recv_buffer(o.recv_buffer);
        }
        self.after(now, id);
        Ok(())
    }

    /// poll() bits (POLLIN, POLLOUT, POLLERR, POLLHUP, POLLRDHUP) for a socket.
    pub fn readiness(&self, id: SocketId) -> Result<i16> {
        let s = self.sock(id)?;
        Ok(match &s.kind {
            SocketKind::Fresh => libc::POLLOUT | libc::POLLHUP,
            SocketKind::Listener(l) => {
                if l.ready.is_empty() {
                    0
                } else {
                    libc::POLLIN
                }
            }
            SocketKind::Conn(t) => {
                let mut m = 0;
                if t.readable() {
                    m |= libc::POLLIN;
                }
                if t.writable() {
                    m |= libc::POLLOUT;
                }
                if t.peek_error().is_some() {
                    m |= libc::POLLERR;
                }
                if t.read_closed() {
                    m |= libc::POLLRDHUP;
                }
                if (t.read_closed() && t.write_shut()) || t.state() == State::Closed {
                    m |= libc::POLLHUP;
                }
                m
            }
        })
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
        if let SocketKind::Conn(t) = &mut sock.kind {
            changed |= t.take_changed();
            if queue_tx && t.wants_transmit() && !sock.in_tx_queue {
                sock.in_tx_queue = true;
                self.tx_queue.push_back(id);
            }
            if let Some(d) = t.deadline() {
                if sock.scheduled.is_none_or(|s| d < s) {
                    sock.scheduled = Some(d);
                    self.timers.push(Reverse((d, id)));
                }
            }
            closed_conn = t.state() == State::Closed;
            established_child = sock.parent.is_some() && t.state() != State::SynReceived;
            dead = t.is_finished() && sock.app_closed && !sock.in_tx_queue;
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
        if changed {
            if let Some(s) = self.sockets.get_mut(id) {
                if !s.changed {
                    s.changed = true;
                    self.changed.push(id);
                }
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
            if let Some(p) = self.sockets.get_mut(parent) {
                if !p.changed {
                    p.changed = true;
                    self.changed.push(parent);
                }
            }
        }
    }

    fn free(&mut self, id: SocketId) {
        if let Some(s) = self.sockets.remove(id) {
            if let Some(local) = s.local {
                self.ports.remove(local.port(), id);
            }
        }
    }

    /// The next IPv4 packet to send, written into `buf` (at least MTU + 80
    /// bytes). Call until None.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if let Some(pkt) = self.control.pop_front() {
            let n = pkt.len().min(buf.len());
            buf[..n].copy_from_slice(&pkt[..n]);
            self.spare.push(pkt);
            self.stats.tx_packets += 1;
            return Some(n);
        }
        while let Some(&id) = self.tx_queue.front() {
            let sent = match self.sockets.get_mut(id).and_then(|s| s.tcb_mut()) {
                Some(t) => t.poll_transmit(now, buf),
                None => None,
            };
            if let Some(n) = sent {
                self.stats.tx_packets += 1;
                return Some(n);
            }
            self.tx_queue.pop_front();
            if let Some(s) = self.sockets.get_mut(id) {
                s.in_tx_queue = false;
            }
            // Whatever it still holds waits for an ACK, a timer or the application.
            self.after_inner(now, id, false);
        }
        None
    }

    /// True when something waits to be sent (so the I/O thread must run).
    pub fn has_pending_output(&self) -> bool {
        !self.tx_queue.is_empty() || !self.control.is_empty()
    }

    /// The earliest moment `on_timer` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Runs the timers that are due.
    pub fn on_timer(&mut self, now: Instant) {
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
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
