//! poll() over our descriptors, and the queue of changed sockets.

use std::time::Duration;

use super::Sockets;
use crate::error::{Error, Result};
use crate::runtime::readiness::ALWAYS;
use crate::runtime::{Event, Waiter};
use crate::sys::Wake;

/// One entry of a poll set, as `struct pollfd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor; negative ones are skipped (revents 0), as in poll(2).
    pub fd: i32,
    /// Events of interest (POLLIN, POLLOUT, POLLRDHUP…).
    pub events: i16,
    /// Events that happened; POLLERR, POLLHUP and POLLNVAL are always reported.
    pub revents: i16,
}

impl Sockets {
    /// Fills `revents` and returns how many entries have any; waits up to
    /// `timeout` (None = forever) for one to become ready. A signal
    /// handler ends the wait with EINTR, as poll(2)'s.
    pub fn poll(&self, fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let entries: Vec<_> = fds.iter().map(|p| self.fds.get(p.fd).ok()).collect();
        let waiter = Waiter::current();
        loop {
            let mut inner = self.lock();
            if self.shared.is_dead() {
                return Err(Error::Io);
            }
            let mut ready = 0;
            for (p, e) in fds.iter_mut().zip(entries.iter()) {
                p.revents = 0;
                if p.fd < 0 {
                    continue;
                }
                let mask = match e {
                    Some(e) => inner.stack.readiness(e.id).unwrap_or(libc::POLLNVAL),
                    None => libc::POLLNVAL,
                };
                p.revents = mask & (p.events | ALWAYS);
                if p.revents != 0 {
                    ready += 1;
                }
            }
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            if ready > 0 || left.is_some_and(|l| l.is_zero()) {
                return Ok(ready);
            }
            let ticket = waiter.ticket();
            for (p, e) in fds.iter().zip(entries.iter()) {
                if let Some(e) = e {
                    inner.readiness.watch(e.id, &waiter, p.events);
                }
            }
            drop(inner);
            let woke = waiter.sleep(ticket, left);
            let mut inner = self.lock();
            for e in entries.iter().flatten() {
                inner.readiness.unwatch(e.id, &waiter);
            }
            if woke == Wake::Interrupted {
                return Err(Error::Interrupted);
            }
        }
    }

    /// Keeps a queue of the sockets whose readiness changed, and signals
    /// (a library-owned copy of) the eventfd `fd` whenever it becomes
    /// non-empty; -1 stops both. For an epoll emulation: drain the queue
    /// with [`Sockets::take_events`] instead of rescanning every socket.
    pub fn set_readiness_fd(&self, fd: i32) -> Result<()> {
        self.shared.set_readiness_fd(fd)
    }

    /// Moves the queued readiness changes (descriptor, current mask) into
    /// `out`, oldest first, each socket once.
    pub fn take_events(&self, out: &mut Vec<Event>) {
        self.lock().readiness.drain(out);
    }
}
