//! The link under a packetdrill run: no device. Packets the stack sends
//! wait in an [`Outbox`] for netdev_receive, stamped with the wall-clock
//! time of sending (the clock of the table's gettimeofday); packets
//! packetdrill injects bypass the link (see [`crate::runtime::Shared::deliver`]).

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::link::Link;
use crate::time::Instant;

/// The link MTU packetdrill's scripts assume (MSS 1460).
pub const MTU: usize = 1500;

/// A packet the stack sent, and when.
#[derive(Debug)]
pub struct Sent {
    /// The whole IPv4 datagram.
    pub packet: Vec<u8>,
    /// Wall-clock time of sending, in microseconds since the epoch.
    pub time_usecs: i64,
}

/// Packets sent and not yet taken by netdev_receive, oldest first.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: Mutex<VecDeque<Sent>>,
    arrived: Condvar,
}

impl Outbox {
    /// Takes the oldest packet, waiting for one until `until` at the latest.
    pub fn take(&self, until: std::time::Instant) -> Option<Sent> {
        let mut q = self.queue.lock();
        while q.is_empty() && !self.arrived.wait_until(&mut q, until).timed_out() {}
        q.pop_front()
    }

    fn push(&self, packet: &[u8]) {
        let sent = Sent {
            packet: packet.to_vec(),
            time_usecs: wall_clock_usecs(),
        };
        self.queue.lock().push_back(sent);
        self.arrived.notify_all();
    }
}

/// gettimeofday(2) in microseconds: the clock packetdrill reads through
/// the table, so packet times and script times agree.
pub fn wall_clock_usecs() -> i64 {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: a valid timeval and no timezone.
    unsafe { libc::gettimeofday(&mut tv, std::ptr::null_mut()) };
    tv.tv_sec * 1_000_000 + tv.tv_usec
}

/// The stack's side: sending fills the outbox; nothing is ever received
/// here.
#[derive(Debug)]
pub struct OutboxLink(pub Arc<Outbox>);

impl Link for OutboxLink {
    fn recv(&mut self, _now: Instant, _buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(None)
    }

    fn send(&mut self, _now: Instant, packet: &[u8]) -> io::Result<()> {
        self.0.push(packet);
        Ok(())
    }

    fn readable_fd(&self) -> Option<RawFd> {
        None
    }

    fn mtu(&self) -> usize {
        MTU
    }
}
