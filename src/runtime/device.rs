//! The TUN device shared with application threads: a call writes the
//! packets it queued itself when the link is free (the transmit lock), and
//! a thread that must wait either spins on the device (busy-poll) or
//! sleeps on it (the device's leader) and takes packets in itself (the
//! receive lock), so that an answer costs one wake-up, not two. Lock
//! order: receive, then the stack's, then transmit (try-locked only).

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::MutexGuard;

use super::{checksum_of, config, trace, Inner, Shared};
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

/// A thread busy-polling (see [`Shared::busy_poller`]); the last one to
/// stop hands the device back to the I/O thread.
#[derive(Debug)]
pub struct BusyPoller<'a>(&'a Shared);

impl Drop for BusyPoller<'_> {
    fn drop(&mut self) {
        if self.0.busy_pollers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.wake();
        }
    }
}

/// The application thread that waits on the device (see
/// [`Shared::lead_device`]).
#[derive(Debug)]
pub struct DeviceLeader<'a> {
    shared: &'a Shared,
    generation: u64,
    _poller: BusyPoller<'a>,
}

impl DeviceLeader<'_> {
    /// False once another thread has taken over.
    pub fn leads(&self) -> bool {
        self.shared.leader.lock().0 == self.generation
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
                fd: device,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake_fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        Some(match sys::poll(&mut fds, timeout) {
            Ok(0) => sys::Wake::TimedOut,
            Ok(_) => {
                if fds[1].revents != 0 {
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
        let mut l = self.shared.leader.lock();
        if l.0 == self.generation {
            l.1 = None;
        }
    }
}

impl Shared {
    /// Sends queued packets from the calling thread if the link is free
    /// (see `tx`), releasing the stack's lock around each write; returns
    /// with the lock held, true when nothing is left for the I/O thread.
    pub(super) fn transmit_here(&self, g: &mut MutexGuard<'_, Inner>) -> bool {
        let sent_all = DIRECT_BUF.try_with(|buf| {
            let Ok(mut buf) = buf.try_borrow_mut() else {
                return false;
            };
            for _ in 0..DIRECT_PACKETS {
                if !g.stack.has_pending_output() {
                    return true;
                }
                let Some(tx) = self.tx.try_lock() else {
                    return false; // another thread is writing: it or the I/O thread sends
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
                    let packet = &buf[..t.len];
                    if trace::packets_on() {
                        trace::log_packet("out", packet, checksum_of(t.gso));
                    }
                    let sent = match t.gso {
                        Some(mss) => writer.send_gso(packet, mss),
                        None => writer.send(packet),
                    };
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
        if !self.shareable {
            return None;
        }
        self.busy_pollers.fetch_add(1, Ordering::AcqRel);
        Some(BusyPoller(self))
    }

    /// Makes the calling thread, about to block, the one that waits on the
    /// device itself until the returned guard is dropped: packets that
    /// arrive meanwhile wake it, not the I/O thread, and it takes them in
    /// (as the kernel runs a packet's receive path in whichever context
    /// it arrives), so an answer to its own socket costs one wake-up, not
    /// two. None when another thread waits on the device, or the link
    /// cannot be read from here.
    pub fn lead_device(&self, wake_fd: RawFd) -> Option<DeviceLeader<'_>> {
        // The thread that blocked last leads: it is the likeliest to be
        // waiting for an answer (a request just sent); the one it takes
        // over from is woken and sleeps as others do.
        let poller = self.busy_poller()?;
        let mut l = self.leader.lock();
        l.0 += 1;
        let generation = l.0;
        let before = l.1.replace(wake_fd);
        drop(l);
        if let Some(fd) = before {
            sys::eventfd_signal(fd);
        }
        Some(DeviceLeader {
            shared: self,
            generation,
            _poller: poller,
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
