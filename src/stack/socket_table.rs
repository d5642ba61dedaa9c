//! The sockets of a stack: a slab indexed by [`SocketId`], and the
//! 4-tuple map that finds a connection for an incoming segment in O(1).

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::tcp::{State, Tcb, TimeWait};
use crate::time::Instant;

/// A socket's slot in the stack's table and the generation of that slot.
/// A slot is reused once its socket is gone, but never with the same
/// generation: an id held by a thread that blocked on a socket another
/// thread closed can never reach the socket that took the slot next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    index: u32,
    generation: u32,
}

impl SocketId {
    /// The id of slot `index` in its `generation` (tables and tests).
    pub const fn new(index: u32, generation: u32) -> SocketId {
        SocketId { index, generation }
    }

    /// The slot number (for tables kept beside the stack).
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// How many sockets held the slot before this one.
    pub fn generation(self) -> u32 {
        self.generation
    }
}

/// A connection's key: our port, the peer's address and port (our address
/// is always the stack's one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FourTuple {
    /// Our port.
    pub local_port: u16,
    /// The peer's address.
    pub remote_ip: Ipv4Addr,
    /// The peer's port.
    pub remote_port: u16,
}

impl FourTuple {
    /// The key of a connection between `local` and `remote`.
    pub fn new(local: SocketAddrV4, remote: SocketAddrV4) -> FourTuple {
        FourTuple {
            local_port: local.port(),
            remote_ip: *remote.ip(),
            remote_port: remote.port(),
        }
    }
}

/// A listening socket's queues.
#[derive(Debug, Default)]
pub struct Listener {
    /// The most connections waiting for accept (handshakes included).
    pub backlog: usize,
    /// Children whose handshake is under way.
    pub pending: Vec<SocketId>,
    /// Children ready for accept, oldest first.
    pub ready: VecDeque<SocketId>,
}

/// What a socket is.
#[derive(Debug)]
pub enum SocketKind {
    /// Made by socket(), maybe bound, not yet listening or connected.
    Fresh,
    /// listen() was called.
    Listener(Listener),
    /// A connection (from connect, or from a listener).
    Conn(Box<Tcb>),
}

/// Options the stack keeps per socket.
#[derive(Clone, Debug)]
pub struct SocketOptions {
    /// SO_REUSEADDR.
    pub reuse_addr: bool,
    /// SO_KEEPALIVE with TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT.
    pub keepalive: crate::tcp::keepalive::KeepAlive,
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// SO_LINGER: None when off, else how long close waits (zero = reset).
    pub linger: Option<std::time::Duration>,
    /// SO_RCVBUF (bytes).
    pub recv_buffer: usize,
    /// SO_SNDBUF (bytes).
    pub send_buffer: usize,
    /// TCP_USER_TIMEOUT (None: off).
    pub user_timeout: Option<std::time::Duration>,
    /// TCP_MAXSEG set by the application: the MSS announced and used is at
    /// most this (None: from the MTU).
    pub max_seg: Option<u16>,
    /// SO_RCVBUF was set: the receive buffer keeps that size (no
    /// autotuning), as on Linux.
    pub recv_buffer_locked: bool,
    /// SO_SNDBUF was set: the send buffer keeps that size (no autotuning).
    pub send_buffer_locked: bool,
    /// TCP_CONGESTION.
    pub congestion: crate::tcp::Algorithm,
}

impl SocketOptions {
    /// The TCP configuration for a new connection of this socket.
    pub fn tcp_config(&self, base: &crate::tcp::Config) -> crate::tcp::Config {
        let mut cfg = base.clone();
        cfg.nodelay = self.nodelay;
        cfg.keepalive = self.keepalive;
        cfg.recv_buffer = self.recv_buffer;
        cfg.send_buffer = self.send_buffer;
        cfg.user_timeout = self.user_timeout;
        cfg.congestion = self.congestion;
        cfg.recv_autotune = base.recv_autotune && !self.recv_buffer_locked;
        cfg.send_autotune = base.send_autotune && !self.send_buffer_locked;
        if let Some(m) = self.max_seg {
            cfg.mss = cfg.mss.min(m);
        }
        cfg
    }
}

/// One socket.
#[derive(Debug)]
pub struct Socket {
    /// Listener, connection, or neither yet.
    pub kind: SocketKind,
    /// The bound local address, if any.
    pub local: Option<SocketAddrV4>,
    /// Options set by the application.
    pub options: SocketOptions,
    /// The listener this connection came from, until it is accepted.
    pub parent: Option<SocketId>,
    /// The application closed its descriptor.
    pub app_closed: bool,
    /// The earliest timer entry queued for this socket.
    pub scheduled: Option<Instant>,
    /// Already on the list of sockets with something to send.
    pub in_tx_queue: bool,
    /// Readiness may have changed since the runtime last looked.
    pub changed: bool,
    /// Registered in the connection map under this key.
    pub key: Option<FourTuple>,
    /// Counted among the stack's TIME-WAIT connections.
    pub in_time_wait: bool,
    /// The connection's state as last reported in an event (for the
    /// debug log of state transitions).
    pub reported_state: Option<State>,
}

impl Socket {
    /// The connection, if this socket is one.
    pub fn tcb(&self) -> Option<&Tcb> {
        match &self.kind {
            SocketKind::Conn(t) => Some(t),
            _ => None,
        }
    }

    /// The connection, mutably.
    pub fn tcb_mut(&mut self) -> Option<&mut Tcb> {
        match &mut self.kind {
            SocketKind::Conn(t) => Some(t),
            _ => None,
        }
    }
}

/// A slot of the slab: the socket in it, if any, and its generation.
#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    socket: Option<Socket>,
}

/// The slab of sockets plus the lookup maps.
#[derive(Debug, Default)]
pub struct SocketTable {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Connections by 4-tuple.
    pub conns: HashMap<FourTuple, SocketId>,
    /// Listeners by port.
    pub listeners: HashMap<u16, SocketId>,
    /// Connections waiting out TIME-WAIT after their socket was closed,
    /// kept compact (no socket, no control block) by 4-tuple.
    pub time_waits: HashMap<FourTuple, TimeWait>,
    live: usize,
}

impl SocketTable {
    /// Stores a socket, reusing a free slot.
    pub fn insert(&mut self, socket: Socket) -> SocketId {
        self.live += 1;
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.socket = Some(socket);
        SocketId::new(index as u32, slot.generation)
    }

    /// Frees a slot, dropping its map entries.
    pub fn remove(&mut self, id: SocketId) -> Option<Socket> {
        let slot = self.slots.get_mut(id.index())?;
        if slot.generation != id.generation {
            return None;
        }
        let socket = slot.socket.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        if let Some(key) = socket.key {
            if self.conns.get(&key) == Some(&id) {
                self.conns.remove(&key);
            }
        }
        if let (SocketKind::Listener(_), Some(local)) = (&socket.kind, socket.local) {
            if self.listeners.get(&local.port()) == Some(&id) {
                self.listeners.remove(&local.port());
            }
        }
        self.free.push(id.index());
        self.live -= 1;
        Some(socket)
    }

    /// The socket in a slot.
    pub fn get(&self, id: SocketId) -> Option<&Socket> {
        let slot = self.slots.get(id.index())?;
        if slot.generation != id.generation {
            return None;
        }
        slot.socket.as_ref()
    }

    /// The socket in a slot, mutably.
    pub fn get_mut(&mut self, id: SocketId) -> Option<&mut Socket> {
        let slot = self.slots.get_mut(id.index())?;
        if slot.generation != id.generation {
            return None;
        }
        slot.socket.as_mut()
    }

    /// Number of sockets alive (open, or closing in the background).
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no socket is alive.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every live socket id (for the rare full scans: bind conflicts).
    pub fn ids(&self) -> impl Iterator<Item = SocketId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.socket.is_some())
            .map(|(i, s)| SocketId::new(i as u32, s.generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::{Stack, StackConfig};

    #[test]
    fn a_reused_slot_does_not_answer_to_the_old_id() {
        let mut stack = Stack::new(StackConfig::default());
        let now = Instant::ZERO;
        let old = stack.socket_tcp();
        stack.close(now, old).unwrap();
        let new = stack.socket_tcp();
        assert_eq!(old.index(), new.index(), "the freed slot is reused");
        assert_ne!(old, new);
        stack
            .bind(new, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8080))
            .unwrap();
        stack.listen(new, 8).unwrap();
        // What a thread still blocked on the closed socket would retry.
        assert_eq!(stack.accept(old), Err(crate::Error::BadDescriptor));
        assert_eq!(stack.state(old), Err(crate::Error::BadDescriptor));
        assert!(stack.socket(old).is_none());
        assert_eq!(stack.accept(new), Err(crate::Error::WouldBlock));
    }
}
