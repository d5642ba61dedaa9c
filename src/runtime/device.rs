//! The TUN device shared with application threads: a call writes the
//! packets it queued itself when the link is free (the transmit lock), and
//! a thread that must wait either spins on the device (busy-poll) or
//! sleeps on it (the device's leader) and takes packets in itself (the
//! receive lock), so that an answer costs one wake-up, not two. The device
//! moves between the epoll sets the sleepers sleep on without waking them
//! ([`DeviceWaiters`]). Lock order: receive, then the stack's, then
//! transmit (try-locked only); no other lock is taken while the waiters'
//! lock is held.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::MutexGuard;

use super::{config, output, trace, Inner, Shared};
use crate::rs_log;
use crate::sys;

/// Packets an application thread sends itself before it leaves the rest
/// to the I/O thread (one call's worth: a request, or two 64 KiB packets).
const DIRECT_PACKETS: usize = 8;

thread_local! {
    /// Each busy-polling application thread's buffer for a packet it reads.
    static RX_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Each application thread's buffer for the packets it sends itself.
    static DIRECT_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Who sleeps on the device. The I/O thread's epoll set holds it unless
/// some thread busy-polls or leads; a leader's own epoll set holds it while
/// that thread leads. Handing it over is an `epoll_ctl` on the sets of
/// threads that may be asleep, not a wake-up: nobody sleeping is disturbed
/// by a change of hands (a set to which a device with a packet waiting is
/// added wakes its sleeper, as it should).
#[derive(Debug, Default)]
pub(super) struct DeviceWaiters {
    /// Takeovers so far: a leader's guard knows its own.
    generation: u64,
    /// The leader: its eventfd, and the epoll set it sleeps on, if any
    /// (one that polls the device directly must be woken to let go).
    leader: Option<(RawFd, Option<RawFd>)>,
    /// Threads busy-polling.
    spinners: usize,
    /// The device is closed (the I/O thread stopped): nothing moves.
    pub(super) gone: bool,
}

impl DeviceWaiters {
    /// Application threads that read the device now: the I/O thread
    /// leaves it to them while there are any. A leader taken over from
    /// no longer counts, asleep or not: its successor does.
    fn users(&self) -> usize {
        self.spinners + usize::from(self.leader.is_some())
    }
}

/// A thread busy-polling (see [`Shared::busy_poller`]); the last one to
/// stop hands the device back to the I/O thread.
#[derive(Debug)]
pub struct BusyPoller<'a>(&'a Shared);

impl Drop for BusyPoller<'_> {
    fn drop(&mut self) {
        let s = self.0;
        let mut d = s.device.lock();
        let before = d.users();
        d.spinners -= 1;
        s.users_changed(&d, before);
    }
}

/// The application thread that waits on the device (see
/// [`Shared::lead_device`]).
#[derive(Debug)]
pub struct DeviceLeader<'a> {
    shared: &'a Shared,
    generation: u64,
    /// The epoll set the thread sleeps on, holding the device.
    set: Option<RawFd>,
}

/// The device queues one waiter leads: one per shard, for a waiter that
/// may wait for sockets of any shard (the LD_PRELOAD shim's poll and
/// epoll). One shard costs no allocation.
#[derive(Debug, Default)]
pub struct DeviceLeaders<'a> {
    first: Option<DeviceLeader<'a>>,
    rest: Vec<DeviceLeader<'a>>,
}

impl<'a> DeviceLeaders<'a> {
    /// Adds the lead of one more queue.
    pub fn push(&mut self, leader: DeviceLeader<'a>) {
        match self.first {
            None => self.first = Some(leader),
            Some(_) => self.rest.push(leader),
        }
    }

    /// Lets go of the queues another thread has taken over (or whose I/O
    /// thread stopped); then every one left has a device to poll.
    pub fn keep_leading(&mut self) {
        self.rest.retain(|l| l.device_fd().is_some());
        if self.first.as_ref().is_some_and(|l| l.device_fd().is_none()) {
            self.first = (!self.rest.is_empty()).then(|| self.rest.remove(0));
        }
    }

    /// The queues led, in a stable order (see [`DeviceLeaders::keep_leading`]).
    pub fn iter(&self) -> impl Iterator<Item = &DeviceLeader<'a>> {
        self.first.iter().chain(self.rest.iter())
    }
}

impl DeviceLeader<'_> {
    /// False once another thread has taken over.
    pub fn leads(&self) -> bool {
        self.shared.device.lock().generation == self.generation
    }

    /// The device's descriptor to poll for packets while this thread
    /// leads; None once another thread has taken over or the I/O thread
    /// has stopped (the device is gone).
    pub fn device_fd(&self) -> Option<RawFd> {
        if !self.leads() {
            return None;
        }
        self.shared.rx.lock().map(|h| h.fd())
    }

    /// Runs every packet waiting on the device through the stack.
    pub fn take_in(&self) {
        while self.shared.poll_link_here() {}
    }

    /// Sleeps until a packet arrives, `wake_fd` (the waiter's eventfd) is
    /// signalled, or `timeout` passes; takes in every waiting packet before
    /// it returns. None, at once, once the I/O thread has stopped and the
    /// device is gone: the caller sleeps as any other then.
    pub fn wait(&self, wake_fd: RawFd, timeout: Option<Duration>) -> Option<sys::Wake> {
        let device = self.device_fd()?;
        let mut fds = [
            libc::pollfd {
                // On the set, a takeover leaves this thread asleep.
                fd: self.set.unwrap_or(device),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if self.set.is_some() { -1 } else { wake_fd },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        Some(match sys::poll(&mut fds, timeout) {
            Ok(0) => sys::Wake::TimedOut,
            Ok(_) => {
                // Which member of the set is ready is not known: both are
                // looked at, without blocking.
                if fds[1].revents != 0 || self.set.is_some() {
                    sys::eventfd_drain(wake_fd);
                }
                if fds[0].revents != 0 {
                    self.take_in();
                }
                sys::Wake::Woken
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => sys::Wake::Interrupted,
            Err(_) => sys::Wake::Woken,
        })
    }
}

impl Drop for DeviceLeader<'_> {
    fn drop(&mut self) {
        let mut d = self.shared.device.lock();
        if d.generation == self.generation {
            let before = d.users();
            d.leader = None;
            if let Some(set) = self.set {
                self.shared.move_device(&d, set, false);
            }
            self.shared.users_changed(&d, before);
        }
    }
}

impl Shared {
    /// Sends queued packets from the calling thread if the link is free
    /// (see `tx`), releasing the stack's lock around each write; returns
    /// with the lock held, true when nothing is left for the I/O thread
    /// (everything is sent, or the thread writing now sends the rest).
    pub(super) fn transmit_here(&self, g: &mut MutexGuard<'_, Inner>) -> bool {
        let sent_all = DIRECT_BUF.try_with(|buf| {
            let Ok(mut buf) = buf.try_borrow_mut() else {
                return false;
            };
            for _ in 0..DIRECT_PACKETS {
                if !g.stack.has_pending_output() {
                    return true;
                }
                let Some(tx) = self.tx.try_lock().or_else(|| {
                    // Taken: say so, then try once more, so that a holder
                    // letting go after the second try sees it (see
                    // `Shared::tx_wanted`).
                    self.tx_wanted.store(true, Ordering::SeqCst);
                    std::sync::atomic::fence(Ordering::SeqCst);
                    self.tx.try_lock()
                }) else {
                    // Another thread is writing, and looks again once it
                    // lets go: no need to wake the I/O thread for these.
                    return true;
                };
                let Some(writer) = *tx else {
                    return false;
                };
                if buf.len() < self.tx_size {
                    buf.resize(self.tx_size, 0);
                }
                let Some(t) = g.stack.poll_transmit(self.now(), &mut buf) else {
                    return true;
                };
                g.stack.note_sent_by_caller();
                MutexGuard::unlocked(g, || {
                    let sent =
                        output::send_packet(&mut buf, &t, Some(writer), |packet, gso| match gso {
                            Some(mss) => writer.send_gso(packet, mss),
                            None => writer.send(packet),
                        });
                    drop(tx);
                    if let Err(e) = sent {
                        rs_log!(Warn, "link send failed: {e}");
                    }
                });
            }
            !g.stack.has_pending_output()
        });
        sent_all.unwrap_or(false)
    }

    /// Sets the busy-poll of blocking calls on sockets that did not set
    /// their own (SO_BUSY_POLL).
    pub fn set_busy_poll(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(config::MAX_BUSY_POLL_US)) as u64;
        self.busy_poll_us.store(us, Ordering::Relaxed);
    }

    /// The busy-poll of blocking calls on sockets that did not set their own.
    pub fn busy_poll(&self) -> Duration {
        Duration::from_micros(self.busy_poll_us.load(Ordering::Relaxed))
    }

    /// Registers the calling thread as busy-polling until the returned
    /// guard is dropped; None if the link cannot be read from here.
    pub fn busy_poller(&self) -> Option<BusyPoller<'_>> {
        // Only a bare TUN device can be read from here.
        self.device_fd?;
        let mut d = self.device.lock();
        let before = d.users();
        d.spinners += 1;
        self.users_changed(&d, before);
        Some(BusyPoller(self))
    }

    /// After the device's users went from `before` to `d.users()`: the
    /// I/O thread's set gives up the device to the first and takes it back
    /// from the last.
    fn users_changed(&self, d: &DeviceWaiters, before: usize) {
        let users = d.users();
        self.device_users.store(users, Ordering::Release);
        match (before, users) {
            (0, 1..) => self.move_device(d, self.io_epoll, false),
            (1.., 0) => self.move_device(d, self.io_epoll, true),
            _ => {}
        }
    }

    /// Adds the device to epoll set `set`, or takes it out (unless it is
    /// closed: its number may be another file's by then).
    fn move_device(&self, d: &DeviceWaiters, set: RawFd, on: bool) {
        if let (Some(fd), false) = (self.device_fd, d.gone) {
            if let Err(e) = sys::epoll_watch(set, fd, on) {
                rs_log!(Warn, "moving the device between waiters failed: {e}");
            }
        }
    }

    /// Makes the calling thread, about to block, the one that waits on the
    /// device itself until the returned guard is dropped: packets that
    /// arrive meanwhile wake it, not the I/O thread, and it takes them in
    /// (as the kernel runs a packet's receive path in whichever context
    /// it arrives), so an answer to its own socket costs one wake-up, not
    /// two. `set` is the epoll set (holding `wake_fd`) the thread sleeps
    /// on, if it sleeps on one: the device joins it. None when the link
    /// cannot be read from here.
    pub fn lead_device(&self, wake_fd: RawFd, set: Option<RawFd>) -> Option<DeviceLeader<'_>> {
        // The thread that blocked last leads: it is the likeliest to be
        // waiting for an answer (a request just sent). The one it takes
        // over from sleeps on as others do: its set loses the device, or,
        // if it polls the device directly, it is woken to let go.
        // Only a bare TUN device can be read from here.
        self.device_fd?;
        let mut d = self.device.lock();
        d.generation += 1;
        let generation = d.generation;
        if let Some(set) = set {
            self.move_device(&d, set, true);
        }
        let users = d.users();
        let before = d.leader.replace((wake_fd, set));
        self.users_changed(&d, users);
        let signal = match before {
            Some((_, Some(old))) if Some(old) != set => {
                self.move_device(&d, old, false);
                None
            }
            Some((fd, None)) => Some(fd),
            _ => None,
        };
        drop(d);
        if let Some(fd) = signal {
            sys::eventfd_signal(fd);
        }
        Some(DeviceLeader {
            shared: self,
            generation,
            set,
        })
    }

    /// Takes waiting packets from the device in the calling thread and runs
    /// them through the stack (a busy-polling caller, instead of waiting for
    /// the I/O thread to be scheduled); answers go out as from any call.
    /// Returns true if there were any. Does nothing while another thread
    /// is reading, or when the link is not a bare TUN device.
    pub fn poll_link_here(&self) -> bool {
        let Some(rx) = self.rx.try_lock() else {
            return false;
        };
        let Some(handle) = *rx else {
            return false;
        };
        let got = RX_BUF.try_with(|buf| {
            let Ok(mut buf) = buf.try_borrow_mut() else {
                return false;
            };
            if buf.len() < self.tx_size {
                buf.resize(self.tx_size, 0);
            }
            let Ok(Some((n, checksum))) = handle.recv(&mut buf, false) else {
                return false;
            };
            if trace::packets_on() {
                trace::log_packet("in ", &buf[..n], checksum);
            }
            let mut inner = self.lock();
            if self.is_dead() {
                return false;
            }
            let now = self.now();
            inner.stack.note_received_by_caller();
            inner.stack.on_packet_checked(now, &buf[..n], checksum);
            drop(rx);
            true
        });
        got.unwrap_or(false)
    }
}
