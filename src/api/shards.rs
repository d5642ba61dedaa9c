//! Sockets over several shards (`RuntimeConfig::shards`): a listener
//! listens in every shard (its copies are the entry's mirrors), accept
//! takes from any of them, and a socket bound to a port whose connection
//! another shard receives moves there before it connects.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{FdEntry, Sockets};
use crate::error::{Error, Result};
use crate::runtime::Waiter;
use crate::stack::SocketId;
use crate::sys::Wake;
use std::net::SocketAddrV4;

impl Sockets {
    /// listen()'s copies of `e` (descriptor `fd`) in the other shards,
    /// with its options and address.
    pub(super) fn mirror_listener(&self, e: &FdEntry, fd: i32, backlog: i32) -> Result<()> {
        let (options, local) = {
            let inner = self.rt(e.shard).lock();
            let options = inner.stack.options(e.id)?.clone();
            (options, inner.stack.local_addr(e.id)?)
        };
        let mut mirrors = Vec::new();
        let mut failed = None;
        for i in (0..self.shards.len()).filter(|&i| i != e.shard) {
            match self.copy_socket(i, fd, &options, local, Some(backlog)) {
                Ok(id) => mirrors.push((i, id)),
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        if let Some(err) = failed {
            for (i, id) in mirrors {
                let mut inner = self.rt(i).lock();
                inner.readiness.remove(id);
                let now = self.rt(i).now();
                let _ = inner.stack.close(now, id);
            }
            return Err(err);
        }
        let _ = e.mirrors.set(mirrors);
        Ok(())
    }

    /// accept() on a listener with copies in other shards: the first
    /// connection any of them holds (starting at a different one each
    /// time, so none is starved), waiting on all of them. Signals and
    /// timeouts as for `blocking`.
    pub(super) fn accept_any(
        &self,
        e: &FdEntry,
        timeout: Option<Duration>,
    ) -> Result<(usize, SocketId)> {
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        let places: Vec<_> = e.places().collect();
        let first = self.next_home.fetch_add(1, Ordering::Relaxed);
        let waiter = Waiter::current();
        let (mut last, mut interrupted) = (false, false);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            let sleep = !e.is_nonblocking() && !last && !left.is_some_and(|l| l.is_zero());
            let ticket = waiter.ticket();
            let mut watched = Vec::new();
            for k in 0..places.len() {
                let (i, id) = places[(first + k) % places.len()];
                let mut inner = self.rt(i).lock();
                if self.rt(i).is_dead() {
                    return Err(Error::Io);
                }
                match inner.stack.accept(id) {
                    Ok(child) => {
                        drop(inner);
                        self.unwatch_places(&watched, &waiter);
                        return Ok((i, child));
                    }
                    Err(Error::WouldBlock) if sleep => {
                        // Watched under the same lock that saw nothing.
                        inner.readiness.watch(id, &waiter, libc::POLLIN, None);
                        watched.push((i, id));
                    }
                    Err(Error::WouldBlock) => {}
                    Err(err) => {
                        drop(inner);
                        self.unwatch_places(&watched, &waiter);
                        return Err(err);
                    }
                }
            }
            if !sleep {
                return Err(if interrupted {
                    Error::Interrupted
                } else {
                    Error::WouldBlock
                });
            }
            let woke = waiter.sleep(ticket, left);
            self.unwatch_places(&watched, &waiter);
            match woke {
                Wake::Woken => {}
                // One more look, then EINTR.
                Wake::Interrupted => (last, interrupted) = (true, true),
                Wake::TimedOut => {}
            }
        }
    }

    fn unwatch_places(&self, places: &[(usize, SocketId)], waiter: &Arc<Waiter>) {
        for &(i, id) in places {
            self.rt(i).lock().readiness.unwatch(id, waiter, None);
        }
    }

    /// With several shards: a socket bound to a port whose connection to
    /// `remote` the kernel would steer to another shard moves there first
    /// (options and address with it), or the answers would reach a stack
    /// that does not know the connection. An unbound socket stays: its
    /// shard picks a port of its own.
    pub(super) fn place_for(
        &self,
        fd: i32,
        e: Arc<FdEntry>,
        remote: SocketAddrV4,
    ) -> Result<Arc<FdEntry>> {
        let (local, options) = {
            let inner = self.rt(e.shard).lock();
            let local = inner.stack.local_addr(e.id).ok();
            (local, inner.stack.options(e.id)?.clone())
        };
        let Some(local) = local.filter(|l| l.port() != 0) else {
            return Ok(e);
        };
        let target = crate::link::queues::shard_of(local.port(), remote.port(), self.shards.len());
        if target == e.shard || e.mirrors.get().is_some() {
            return Ok(e);
        }
        if e.refs.load(Ordering::Acquire) > 1 {
            // Other descriptors (dups) hold this entry: it cannot move.
            return Err(Error::AddressNotAvailable);
        }
        let id = self.copy_socket(target, fd, &options, local, None)?;
        let moved = FdEntry::new(id, e.is_nonblocking()).on_shard(target);
        for (to, from) in [
            (&moved.recv_timeout, &e.recv_timeout),
            (&moved.send_timeout, &e.send_timeout),
            (&moved.busy_poll, &e.busy_poll),
        ] {
            to.store(from.load(Ordering::Acquire), Ordering::Release);
        }
        moved
            .cloexec
            .store(e.cloexec.load(Ordering::Acquire), Ordering::Release);
        let moved = Arc::new(moved);
        self.fds.replace(fd, moved.clone())?;
        let old = self.rt(e.shard);
        let mut inner = old.lock();
        inner.readiness.remove(e.id);
        let _ = inner.stack.close(old.now(), e.id);
        Ok(moved)
    }

    /// A socket in shard `shard` with `options`, bound to `local` (and
    /// listening with `backlog`, if given), known to that shard's
    /// readiness as descriptor `fd`.
    fn copy_socket(
        &self,
        shard: usize,
        fd: i32,
        options: &crate::stack::SocketOptions,
        local: SocketAddrV4,
        backlog: Option<i32>,
    ) -> Result<SocketId> {
        let shared = self.rt(shard);
        let mut inner = shared.lock();
        let id = inner.stack.socket_tcp();
        let now = shared.now();
        let made = inner
            .stack
            .set_options(now, id, |o| *o = options.clone())
            .and_then(|_| inner.stack.bind(id, local))
            .and_then(|_| backlog.map_or(Ok(()), |b| inner.stack.listen(id, b)));
        if let Err(err) = made {
            let _ = inner.stack.close(now, id);
            return Err(err);
        }
        let mask = inner.stack.readiness(id).unwrap_or(0);
        inner.readiness.add(id, fd, mask);
        Ok(id)
    }

    /// The shard the socket behind `fd` lives in (for tests and tools).
    pub fn shard_of_fd(&self, fd: i32) -> Result<usize> {
        Ok(self.fds.get(fd)?.shard)
    }
}
