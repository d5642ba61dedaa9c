//! Who waits for which socket, and what changed.
//!
//! Each open socket has a readiness mask (POLLIN, POLLOUT, POLLERR,
//! POLLHUP, POLLRDHUP) recomputed whenever the stack says it may have
//! changed. A blocked thread registers its [`Waiter`] with the events it
//! waits for; a change wakes only the waiters for which one of their events
//! is now set. A consumer such as an epoll emulation can also ask for the
//! changed sockets as a queue (no scan of every socket).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::stack::SocketId;
use crate::sys::{self, Wake};

/// Events that wake a waiter whatever it asked for, as poll(2) reports them.
pub const ALWAYS: i16 = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;

/// A thread's place to sleep: a futex word that wakers bump, and, for
/// waits that must also watch kernel descriptors, an eventfd.
#[derive(Debug, Default)]
pub struct Waiter {
    word: AtomicU32,
    eventfd: std::sync::OnceLock<RawFd>,
    /// An epoll set holding the eventfd, and the device while the thread
    /// leads it (see `Shared::lead_device`).
    epoll: std::sync::OnceLock<RawFd>,
    /// Tokens of the watches that woke this waiter since it last took them.
    notes: parking_lot::Mutex<Vec<u64>>,
}

thread_local! {
    static CURRENT: OnceCell<Arc<Waiter>> = const { OnceCell::new() };
}

impl Waiter {
    /// The calling thread's waiter.
    pub fn current() -> Arc<Waiter> {
        CURRENT
            .try_with(|c| c.get_or_init(|| Arc::new(Waiter::default())).clone())
            // At exit the thread's storage may be gone already.
            .unwrap_or_else(|_| Arc::new(Waiter::default()))
    }

    /// Read before registering: a wake after this makes `sleep` return.
    pub fn ticket(&self) -> u32 {
        self.word.load(Ordering::Acquire)
    }

    /// Sleeps until woken after `ticket` was taken, `timeout` passes or a
    /// signal handler runs.
    pub fn sleep(&self, ticket: u32, timeout: Option<Duration>) -> Wake {
        sys::futex_wait(&self.word, ticket, timeout)
    }

    /// Wakes the thread (and makes its eventfd readable, if it has one).
    pub fn wake(&self) {
        self.word.fetch_add(1, Ordering::AcqRel);
        sys::futex_wake_all(&self.word);
        if let Some(&fd) = self.eventfd.get() {
            sys::eventfd_signal(fd);
        }
    }

    /// Moves the tokens of the watches that fired since the last call into
    /// `out` (each fired watch once per wake-up; duplicates are possible).
    pub fn take_notes(&self, out: &mut Vec<u64>) {
        out.append(&mut self.notes.lock());
    }

    fn note(&self, token: u64) {
        self.notes.lock().push(token);
        self.wake();
    }

    /// Notes `token` now; the wake-up is the caller's, later.
    fn note_only(&self, token: u64) {
        self.notes.lock().push(token);
    }

    /// An eventfd that becomes readable on every wake, for waits in ppoll
    /// beside kernel descriptors. Made on first use; the caller drains it.
    pub fn eventfd(&self) -> std::io::Result<RawFd> {
        if let Some(&fd) = self.eventfd.get() {
            return Ok(fd);
        }
        let fd = sys::eventfd()?;
        if self.eventfd.set(fd).is_err() {
            sys::close(fd);
        }
        Ok(*self.eventfd.get().expect("set above"))
    }

    /// An epoll set holding the eventfd (so it is readable on every wake),
    /// to which the device can be added and from which it can be taken
    /// while the thread sleeps on the set. Made on first use.
    pub fn epoll(&self) -> std::io::Result<RawFd> {
        if let Some(&ep) = self.epoll.get() {
            return Ok(ep);
        }
        let efd = self.eventfd()?;
        let ep = sys::epoll_create()?;
        if let Err(e) = sys::epoll_watch(ep, efd, true) {
            sys::close(ep);
            return Err(e);
        }
        if self.epoll.set(ep).is_err() {
            sys::close(ep);
        }
        Ok(*self.epoll.get().expect("set above"))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        for fd in [self.epoll.get(), self.eventfd.get()].into_iter().flatten() {
            sys::close(*fd);
        }
    }
}

/// One waiter's interest in one socket.
#[derive(Debug)]
struct Watch {
    waiter: Arc<Waiter>,
    events: i16,
    /// Set for lasting watches (an epoll set): noted in the waiter on
    /// every wake-up, so it learns which of its sockets changed.
    token: Option<u64>,
}

impl Watch {
    fn fire(&self) {
        match self.token {
            Some(t) => self.waiter.note(t),
            None => self.waiter.wake(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    fd: i32,
    mask: i16,
    queued: bool,
    waiters: Vec<Watch>,
}

/// The readiness of every open socket and the threads waiting on them.
#[derive(Debug, Default)]
pub struct Readiness {
    entries: HashMap<SocketId, Entry>,
    /// Waiters woken by any change at all (closing, exit linger).
    watchers: Vec<Arc<Waiter>>,
    /// Sockets with events since the consumer last drained, oldest first.
    queue: Vec<SocketId>,
    /// Someone drains `queue`; without one nothing is queued.
    tracking: bool,
}

/// One entry of the queue of changed sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The socket's descriptor.
    pub fd: i32,
    /// Its readiness when the event was taken.
    pub mask: i16,
}

impl Readiness {
    /// Starts tracking socket `id`, known to the application as `fd`.
    pub fn add(&mut self, id: SocketId, fd: i32, mask: i16) {
        self.entries.insert(
            id,
            Entry {
                fd,
                mask,
                queued: false,
                waiters: Vec::new(),
            },
        );
    }

    /// Stops tracking `id` (its descriptor was closed) and wakes whoever
    /// still waits on it: their calls then fail with EBADF.
    pub fn remove(&mut self, id: SocketId) {
        if let Some(e) = self.entries.remove(&id) {
            for w in e.waiters {
                w.fire();
            }
        }
        self.queue.retain(|q| *q != id);
    }

    /// Wakes every waiter of `id`, whatever it waits for (shutdown).
    pub fn wake_all(&mut self, id: SocketId) {
        if let Some(e) = self.entries.get(&id) {
            for w in &e.waiters {
                w.fire();
            }
        }
    }

    /// `waiter` waits for any of `events` (plus [`ALWAYS`]) on `id`; with
    /// a `token`, each wake-up also leaves the token in the waiter's notes.
    /// False if `id` is not tracked.
    pub fn watch(
        &mut self,
        id: SocketId,
        waiter: &Arc<Waiter>,
        events: i16,
        token: Option<u64>,
    ) -> bool {
        let Some(e) = self.entries.get_mut(&id) else {
            return false;
        };
        e.waiters.push(Watch {
            waiter: waiter.clone(),
            events: events | ALWAYS,
            token,
        });
        true
    }

    /// Undoes [`Readiness::watch`]: the watch of `waiter` on `id` with the
    /// same token (one waiter may watch a socket under several tokens, as
    /// an epoll set holding a socket and its dup does).
    pub fn unwatch(&mut self, id: SocketId, waiter: &Arc<Waiter>, token: Option<u64>) {
        if let Some(e) = self.entries.get_mut(&id) {
            if let Some(i) = e
                .waiters
                .iter()
                .position(|w| Arc::ptr_eq(&w.waiter, waiter) && w.token == token)
            {
                e.waiters.swap_remove(i);
            }
        }
    }

    /// `waiter` is woken by every change of any socket.
    pub fn watch_all(&mut self, waiter: &Arc<Waiter>) {
        self.watchers.push(waiter.clone());
    }

    /// Undoes [`Readiness::watch_all`].
    pub fn unwatch_all(&mut self, waiter: &Arc<Waiter>) {
        if let Some(i) = self.watchers.iter().position(|w| Arc::ptr_eq(w, waiter)) {
            self.watchers.swap_remove(i);
        }
    }

    /// The socket's readiness is now `mask`: the waiters one of whose
    /// events is set go into `wake` (their tokens noted now), for the
    /// caller to wake once it has released the stack's lock — a wake-up is
    /// a system call or two, and nobody should wait on the lock for it.
    /// Queues the socket for the consumer. Returns true if the queue went
    /// from empty to non-empty.
    pub fn update(&mut self, id: SocketId, mask: i16, wake: &mut Vec<Arc<Waiter>>) -> bool {
        let Some(e) = self.entries.get_mut(&id) else {
            return false;
        };
        e.mask = mask;
        for w in &e.waiters {
            if w.events & mask != 0 {
                if let Some(t) = w.token {
                    w.waiter.note_only(t);
                }
                wake.push(w.waiter.clone());
            }
        }
        if !self.tracking || e.queued {
            return false;
        }
        e.queued = true;
        self.queue.push(id);
        self.queue.len() == 1
    }

    /// Wakes every waiting thread (the stack failed).
    pub fn wake_everyone(&self) {
        for e in self.entries.values() {
            for w in &e.waiters {
                w.fire();
            }
        }
        self.wake_watchers();
    }

    /// Wakes the threads that watch every change.
    pub fn wake_watchers(&self) {
        for w in &self.watchers {
            w.wake();
        }
    }

    /// Adds the waiters woken by any change to `wake` (see [`Readiness::update`]).
    pub fn defer_watchers(&self, wake: &mut Vec<Arc<Waiter>>) {
        wake.extend(self.watchers.iter().cloned());
    }

    /// Turns the queue of changed sockets on or off.
    pub fn set_tracking(&mut self, on: bool) {
        self.tracking = on;
        if !on {
            for id in self.queue.drain(..) {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.queued = false;
                }
            }
        }
    }

    /// Moves the queued events (descriptor and current mask) into `out`.
    pub fn drain(&mut self, out: &mut Vec<Event>) {
        for id in self.queue.drain(..) {
            if let Some(e) = self.entries.get_mut(&id) {
                e.queued = false;
                out.push(Event {
                    fd: e.fd,
                    mask: e.mask,
                });
            }
        }
    }

    /// The last readiness computed for `id`.
    pub fn mask(&self, id: SocketId) -> Option<i16> {
        self.entries.get(&id).map(|e| e.mask)
    }

    /// How many threads wait on `id` (for tests).
    pub fn waiter_count(&self, id: SocketId) -> usize {
        self.entries.get(&id).map_or(0, |e| e.waiters.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `update`, then the wake-ups it deferred, as the runtime does.
    fn update_now(r: &mut Readiness, id: SocketId, mask: i16) -> bool {
        let mut wake = Vec::new();
        let queued = r.update(id, mask, &mut wake);
        for w in wake {
            w.wake();
        }
        queued
    }

    fn id(n: u32) -> SocketId {
        SocketId::new(n, 0)
    }

    #[test]
    fn only_waiters_whose_events_are_set_wake() {
        let mut r = Readiness::default();
        r.add(id(1), 5, 0);
        let reader = Arc::new(Waiter::default());
        let writer = Arc::new(Waiter::default());
        r.watch(id(1), &reader, libc::POLLIN, None);
        r.watch(id(1), &writer, libc::POLLOUT, Some(41));
        let (tr, tw) = (reader.ticket(), writer.ticket());
        update_now(&mut r, id(1), libc::POLLOUT);
        assert_eq!(reader.ticket(), tr, "a reader is not woken by POLLOUT");
        assert_ne!(writer.ticket(), tw);
        let mut notes = Vec::new();
        writer.take_notes(&mut notes);
        assert_eq!(notes, [41], "a lasting watch leaves its token");
        let tw = writer.ticket();
        update_now(&mut r, id(1), libc::POLLHUP);
        assert_ne!(reader.ticket(), tr, "POLLHUP wakes every waiter");
        assert_ne!(writer.ticket(), tw);
        r.unwatch(id(1), &reader, None);
        assert_eq!(r.waiter_count(id(1)), 1);
        // A wake before the sleep makes the sleep return at once.
        let t = writer.ticket();
        r.remove(id(1));
        assert_eq!(writer.sleep(t, None), Wake::Woken);
    }

    #[test]
    fn the_queue_holds_each_changed_socket_once_with_its_latest_mask() {
        let mut r = Readiness::default();
        r.add(id(1), 7, 0);
        r.add(id(2), 8, 0);
        assert!(
            !update_now(&mut r, id(1), libc::POLLIN),
            "nothing queued untracked"
        );
        r.set_tracking(true);
        assert!(update_now(&mut r, id(1), libc::POLLIN));
        assert!(!update_now(&mut r, id(2), libc::POLLOUT));
        assert!(!update_now(&mut r, id(1), libc::POLLIN | libc::POLLOUT));
        let mut out = Vec::new();
        r.drain(&mut out);
        assert_eq!(
            out,
            vec![
                Event {
                    fd: 7,
                    mask: libc::POLLIN | libc::POLLOUT
                },
                Event {
                    fd: 8,
                    mask: libc::POLLOUT
                }
            ]
        );
        update_now(&mut r, id(2), 0);
        r.remove(id(2));
        out.clear();
        r.drain(&mut out);
        assert!(out.is_empty(), "a closed socket leaves the queue");
    }

    #[test]
    fn a_timed_sleep_ends() {
        let w = Waiter::default();
        let t = w.ticket();
        assert_eq!(w.sleep(t, Some(Duration::from_millis(20))), Wake::TimedOut);
    }
}
