//! The socket calls the API layer makes on the stack: socket, bind, listen,
//! connect, accept, send, recv, shutdown, close, addresses, options and
//! readiness. Each runs in microseconds under the stack's lock; blocking is
//! the API layer's business.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::socket_table::{FourTuple, Listener, Socket, SocketId, SocketKind, SocketOptions};
use super::Stack;
use crate::error::{Error, Result};
use crate::tcp::{Rings, State, Tcb};
use crate::time::Instant;

impl Stack {
    /// socket(AF_INET, SOCK_STREAM, 0).
    pub fn socket_tcp(&mut self) -> SocketId {
        let options = SocketOptions {
            reuse_addr: false,
            keepalive: self.cfg.tcp.keepalive,
            linger: None,
            nodelay: self.cfg.tcp.nodelay,
            recv_buffer: self.cfg.tcp.recv_buffer,
            send_buffer: self.cfg.tcp.send_buffer,
            user_timeout: None,
            max_seg: None,
            recv_buffer_locked: false,
            send_buffer_locked: false,
            congestion: self.cfg.tcp.congestion,
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
            in_time_wait: false,
            reported_state: None,
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
            let r = self.isn.hash64(&(id.index() as u64).to_le_bytes());
            // Whose shard it lands in depends on a peer not known yet.
            self.ports
                .pick_ephemeral(r, |_| true)
                .ok_or(Error::AddressInUse)?
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
        if !reuse && self.ports.time_waits(port) > 0 {
            return true;
        }
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
            // Linux answers EISCONN for a listening socket.
            SocketKind::Listener(_) => return Err(Error::IsConnected),
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
            let shard = self.cfg.shard;
            let fits = |p: u16| {
                crate::link::queues::shard_of(p, remote.port(), shard.count) == shard.index
            };
            let port = self
                .ports
                .pick_ephemeral(r, fits)
                .ok_or(Error::AddressNotAvailable)?;
            self.ports.add(port, id);
            self.sock_mut(id)?.local = Some(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        }
        let port = self.sock(id)?.local.map(|a| a.port()).unwrap_or(0);
        let local = SocketAddrV4::new(self.cfg.addr, port);
        let key = FourTuple::new(local, remote);
        if self.sockets.conns.contains_key(&key) || self.sockets.time_waits.contains_key(&key) {
            return Err(Error::AddressNotAvailable);
        }
        let cfg = self.sock(id)?.options.tcp_config(&self.cfg.tcp);
        let iss = self.isn.isn(now, local, remote);
        let tcb = Tcb::connect(&cfg, local, remote, iss);
        let sock = self.sock_mut(id)?;
        sock.kind = SocketKind::Conn(Box::new(tcb));
        sock.local = Some(local);
        sock.key = Some(key);
        self.sockets.conns.insert(key, id);
        self.stats.tcp_active_opens += 1;
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
            // Linux: EPIPE for a socket that never connected.
            _ => return Err(Error::BrokenPipe),
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

    /// The rings through which the application reads and writes
    /// connection `id` without the stack's lock (None if not a connection).
    pub fn rings(&self, id: SocketId) -> Option<Rings> {
        self.tcb(id).map(|t| t.rings())
    }

    /// The application read or wrote connection `id` through its [`Rings`]
    /// and the stack should look at it: a window the read opened, data the
    /// write appended with nothing under way to send it.
    pub fn nudge(&mut self, now: Instant, id: SocketId) {
        if let Some(SocketKind::Conn(t)) = self.sockets.get_mut(id).map(|s| &mut s.kind) {
            t.window_update();
            self.after(now, id);
        }
    }

    /// shutdown(): `read` and/or `write` halves.
    pub fn shutdown(&mut self, now: Instant, id: SocketId, read: bool, write: bool) -> Result<()> {
        let sock = self.sock_mut(id)?;
        let tcb = match &mut sock.kind {
            SocketKind::Conn(t) => t,
            SocketKind::Listener(_) => {
                // Linux: SHUT_RD stops listening (the socket stays bound and
                // may listen again; a blocked accept wakes with EINVAL, the
                // usual way to stop an accept thread); SHUT_WR does nothing.
                if read {
                    self.stop_listening(now, id);
                    self.mark_changed(id);
                }
                return Ok(());
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
                t.close(now);
            }
            SocketKind::Listener(_) => self.stop_listening(now, id),
            SocketKind::Fresh => {}
        }
        self.after(now, id);
        Ok(())
    }

    /// A listener stops: its unaccepted children are reset, its port no
    /// longer takes SYNs, and it is a bound, unconnected socket again.
    fn stop_listening(&mut self, now: Instant, id: SocketId) {
        let Some(sock) = self.sockets.get_mut(id) else {
            return;
        };
        let SocketKind::Listener(l) = std::mem::replace(&mut sock.kind, SocketKind::Fresh) else {
            return;
        };
        if let Some(local) = sock.local {
            if self.sockets.listeners.get(&local.port()) == Some(&id) {
                self.sockets.listeners.remove(&local.port());
            }
        }
        for c in l.pending.into_iter().chain(l.ready) {
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

    /// connect(AF_UNSPEC) on a connection: RST, and CLOSED at once.
    pub fn reset_connection(&mut self, now: Instant, id: SocketId) -> Result<()> {
        if let Some(t) = self.sock_mut(id)?.tcb_mut() {
            t.abort();
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
        let keepalive_before = sock.options.keepalive;
        f(&mut sock.options);
        let o = sock.options.clone();
        if let Some(t) = sock.tcb_mut() {
            t.set_nodelay(o.nodelay);
            if o.send_buffer_locked {
                t.set_send_buffer(o.send_buffer);
            }
            if o.recv_buffer_locked {
                t.set_recv_buffer(o.recv_buffer);
            }
            t.set_user_timeout(o.user_timeout);
            t.set_congestion(o.congestion);
            if o.keepalive != keepalive_before {
                t.set_keepalive(now, o.keepalive);
            }
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
}
