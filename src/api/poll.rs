//! poll() over our descriptors, waits that mix ours with the kernel's, and
//! the queue of changed sockets.

use std::sync::Arc;
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

/// A sleep long enough to stand for "no timeout".
const NEVER: Duration = Duration::from_secs(3600);

impl Sockets {
    /// Fills `revents` and returns how many entries have any; waits up to
    /// `timeout` (None = forever) for one to become ready. A signal
    /// handler ends the wait with EINTR, as poll(2)'s.
    pub fn poll(&self, fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize> {
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        let waiter = Waiter::current();
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            let last = left.is_some_and(|l| l.is_zero());
            let ticket = waiter.ticket();
            let ready = self.poll_prepare(fds, (!last).then_some(&waiter))?;
            if ready > 0 || last {
                return Ok(ready);
            }
            // Always a finite sleep: the kernel restarts an untimed futex
            // wait after an SA_RESTART handler, but poll(2) is never
            // restarted, and neither is a timed wait.
            let woke = waiter.sleep(ticket, Some(left.unwrap_or(NEVER)));
            self.poll_release(fds, &waiter);
            if woke == Wake::Interrupted {
                return Err(Error::Interrupted);
            }
        }
    }

    /// The first half of a wait that may also involve kernel descriptors:
    /// fills `revents` and returns how many entries are ready; when none is
    /// and a `waiter` is given, registers it on each socket, so that the
    /// caller can sleep (on the waiter, or in ppoll on its eventfd) and
    /// must then call [`Sockets::poll_release`]. Take the waiter's ticket
    /// before calling. Unknown descriptors report POLLNVAL.
    pub fn poll_prepare(&self, fds: &mut [PollFd], waiter: Option<&Arc<Waiter>>) -> Result<usize> {
        if self.is_dead() {
            return Err(Error::Io);
        }
        for p in fds.iter_mut() {
            p.revents = 0;
        }
        // Each shard's lock once: the readiness of the descriptors whose
        // sockets (or a listener's copies) are there.
        for shard in 0..self.shard_count() {
            let inner = self.rt(shard).lock();
            for p in fds.iter_mut().filter(|p| p.fd >= 0) {
                match self.fds.get(p.fd) {
                    Ok(e) => {
                        for (_, id) in e.places().filter(|&(s, _)| s == shard) {
                            p.revents |= inner.stack.readiness(id).unwrap_or(libc::POLLNVAL);
                        }
                    }
                    Err(_) if shard == 0 => p.revents = libc::POLLNVAL,
                    Err(_) => {}
                }
            }
        }
        let mut ready = 0;
        for p in fds.iter_mut() {
            p.revents &= p.events | ALWAYS;
            if p.revents != 0 {
                ready += 1;
            }
        }
        if let (0, Some(w)) = (ready, waiter) {
            // Anything that changed since the look above wakes the waiter:
            // look once more under each lock as it is registered.
            for shard in 0..self.shard_count() {
                let mut inner = self.rt(shard).lock();
                for p in fds.iter_mut() {
                    let Ok(e) = self.fds.get(p.fd) else { continue };
                    for (_, id) in e.places().filter(|&(s, _)| s == shard) {
                        inner.readiness.watch(id, w, p.events, None);
                        let now = inner.stack.readiness(id).unwrap_or(libc::POLLNVAL);
                        p.revents |= now & (p.events | ALWAYS);
                    }
                }
            }
            ready = fds.iter().filter(|p| p.revents != 0).count();
        }
        Ok(ready)
    }

    /// Undoes the registration of [`Sockets::poll_prepare`].
    pub fn poll_release(&self, fds: &[PollFd], waiter: &Arc<Waiter>) {
        for p in fds {
            if let Ok(e) = self.fds.get(p.fd) {
                for (shard, id) in e.places() {
                    self.rt(shard).lock().readiness.unwatch(id, waiter, None);
                }
            }
        }
    }

    /// The readiness of `fd` now (POLLIN, POLLOUT, POLLERR, POLLHUP, POLLRDHUP).
    pub fn readiness(&self, fd: i32) -> Result<i16> {
        let e = self.fds.get(fd)?;
        let mut mask = 0;
        for (shard, id) in e.places() {
            mask |= self.rt(shard).lock().stack.readiness(id)?;
        }
        Ok(mask)
    }

    /// A lasting watch, for an epoll set: `waiter` is woken, and `token`
    /// left in its notes, whenever `fd` changes while one of `events` (or
    /// POLLERR / POLLHUP) is set. Ends with [`Sockets::unwatch`] or when
    /// the socket closes.
    pub fn watch(&self, fd: i32, waiter: &Arc<Waiter>, events: i16, token: u64) -> Result<()> {
        let e = self.fds.get(fd)?;
        for (shard, id) in e.places() {
            let mut inner = self.rt(shard).lock();
            if !inner.readiness.watch(id, waiter, events, Some(token)) {
                return Err(Error::BadDescriptor);
            }
        }
        Ok(())
    }

    /// Ends the watch of [`Sockets::watch`] with this `token`.
    pub fn unwatch(&self, fd: i32, waiter: &Arc<Waiter>, token: u64) {
        if let Ok(e) = self.fds.get(fd) {
            for (shard, id) in e.places() {
                self.rt(shard)
                    .lock()
                    .readiness
                    .unwatch(id, waiter, Some(token));
            }
        }
    }

    /// Keeps a queue of the sockets whose readiness changed, and signals
    /// (a library-owned copy of) the eventfd `fd` whenever it becomes
    /// non-empty; -1 stops both. For an epoll emulation: drain the queue
    /// with [`Sockets::take_events`] instead of rescanning every socket.
    pub fn set_readiness_fd(&self, fd: i32) -> Result<()> {
        for shard in 0..self.shard_count() {
            self.rt(shard).set_readiness_fd(fd)?;
        }
        Ok(())
    }

    /// Moves the queued readiness changes (descriptor, current mask) into
    /// `out`, oldest first, each socket once.
    pub fn take_events(&self, out: &mut Vec<Event>) {
        for shard in 0..self.shard_count() {
            self.rt(shard).lock().readiness.drain(out);
        }
    }
}
