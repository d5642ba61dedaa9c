//! The I/O thread: owns the link, drives the stack, wakes waiting callers.
//!
//! Application threads change socket state under the stack's lock and wake
//! this thread through an eventfd when something must be sent. This thread
//! never holds the lock across a system call: it reads a batch of packets,
//! takes the lock to run them through the stack and collect what to send,
//! drops it, and writes the batch.

pub mod config;

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::link::Link;
use crate::rs_log;
use crate::stack::{SocketId, Stack, StackConfig};
use crate::time::Instant;
pub use config::RuntimeConfig;

/// Packets read or written per lock round.
const BATCH: usize = 64;

/// What the lock protects: the stack and the wait queues of its sockets.
#[derive(Debug)]
pub struct Inner {
    /// The sans-IO stack.
    pub stack: Stack,
    /// A condition variable per socket that someone may block on.
    pub conds: HashMap<SocketId, Arc<Condvar>>,
}

/// State shared between the I/O thread and application threads.
#[derive(Debug)]
pub struct Shared {
    inner: Mutex<Inner>,
    /// Signalled whenever any socket's readiness may have changed (for poll).
    pub any_change: Condvar,
    wake_fd: RawFd,
    wake_pending: AtomicBool,
    readiness_fd: AtomicI32,
    stop: AtomicBool,
    /// The I/O thread died (a bug caught as a panic): every call fails with EIO.
    dead: AtomicBool,
    origin: std::time::Instant,
}

impl Shared {
    /// Locks the stack.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// The stack's clock: monotonic time since the runtime started.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }

    /// Converts a stack instant back to the monotonic clock (for waits).
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        self.origin + Duration::from_micros(t.micros())
    }

    /// Asks the I/O thread to run the stack (something is queued to send).
    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a valid u64 to our own eventfd.
            unsafe {
                libc::write(self.wake_fd, &one as *const u64 as *const libc::c_void, 8);
            }
        }
    }

    /// From now on, also signal `fd` (an eventfd) whenever readiness may
    /// have changed; -1 turns it off. The LD_PRELOAD shim waits on this.
    pub fn set_readiness_fd(&self, fd: RawFd) {
        self.readiness_fd.store(fd, Ordering::Release);
    }

    /// True once the I/O thread has died; callers report EIO.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Signals the registered readiness eventfd, if any.
    pub fn signal_readiness(&self) {
        let fd = self.readiness_fd.load(Ordering::Acquire);
        if fd >= 0 {
            let one: u64 = 1;
            // SAFETY: an 8-byte write to a descriptor the caller registered.
            unsafe {
                libc::write(fd, &one as *const u64 as *const libc::c_void, 8);
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the eventfd is ours and nobody uses it once Shared is gone.
        unsafe {
            libc::close(self.wake_fd);
        }
    }
}

/// A running stack: the shared state plus the I/O thread.
#[derive(Debug)]
pub struct Runtime {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Runtime {
    /// Opens the TUN device described by `cfg` (in the calling thread's
    /// network namespace) and starts the I/O thread on it.
    pub fn start(cfg: &RuntimeConfig) -> Result<Runtime> {
        let link = cfg.open_link()?;
        Runtime::with_link(link, cfg.stack_config())
    }

    /// Starts the I/O thread on any link (tests use in-memory pairs).
    pub fn with_link(link: Box<dyn Link>, mut stack_cfg: StackConfig) -> Result<Runtime> {
        stack_cfg.mtu = stack_cfg.mtu.min(link.mtu());
        // SAFETY: plain syscall; the result is checked.
        let wake_fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if wake_fd < 0 {
            return Err(Error::NoBuffers);
        }
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                stack: Stack::new(stack_cfg),
                conds: HashMap::new(),
            }),
            any_change: Condvar::new(),
            wake_fd,
            wake_pending: AtomicBool::new(false),
            readiness_fd: AtomicI32::new(-1),
            stop: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            origin: std::time::Instant::now(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rstcp-io".into())
            .spawn(move || {
                let keep = s.clone();
                let run = std::panic::AssertUnwindSafe(|| io_loop(s, link));
                if std::panic::catch_unwind(run).is_err() {
                    // Never take the host program down: fail every socket
                    // call with EIO instead, and wake whoever waits.
                    rs_log!(Error, "I/O thread panicked; the stack is stopped");
                    keep.dead.store(true, Ordering::Release);
                    let inner = keep.lock();
                    for c in inner.conds.values() {
                        c.notify_all();
                    }
                    keep.any_change.notify_all();
                    drop(inner);
                    keep.signal_readiness();
                }
            })
            .map_err(|_| Error::NoBuffers)?;
        Ok(Runtime {
            shared,
            thread: Some(thread),
        })
    }

    /// The state shared with the I/O thread.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops the I/O thread (pending data is not flushed).
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake_pending.store(false, Ordering::Release);
        self.shared.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

fn poll_fds(link_fd: Option<RawFd>, wake_fd: RawFd, timeout_ms: i32) -> (bool, bool) {
    let mut fds = [
        libc::pollfd {
            fd: wake_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: link_fd.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two valid pollfd structs; a negative fd is ignored by poll.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    if n <= 0 {
        return (false, false);
    }
    (fds[0].revents != 0, fds[1].revents != 0)
}

fn io_loop(shared: Arc<Shared>, mut link: Box<dyn Link>) {
    let size = link.mtu().max(1500) + 128;
    let mut rx: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0; size]).collect();
    let mut tx: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0; size]).collect();
    let mut rx_len = [0usize; BATCH];
    let mut tx_len = [0usize; BATCH];
    let mut changed = Vec::new();
    let mut busy = false;
    let mut next_timer: Option<Instant> = None;
    let link_fd = link.readable_fd();
    rs_log!(Info, "I/O thread started (MTU {})", link.mtu());
    while !shared.stop.load(Ordering::Acquire) {
        if !busy {
            let now = shared.now();
            // The stack's deadline was read at the end of the last round; a
            // call that moved it earlier since has woken us through the eventfd.
            let next = [next_timer, link.next_release()]
                .into_iter()
                .flatten()
                .min();
            let timeout_ms = match next {
                None => -1,
                Some(t) if t <= now => 0,
                // Round up so we never wake just before a deadline and spin.
                Some(t) => ((t.micros() - now.micros()).div_ceil(1000)).min(60_000) as i32,
            };
            let (woken, _) = poll_fds(link_fd, shared.wake_fd, timeout_ms);
            if woken {
                let mut v: u64 = 0;
                // SAFETY: reading 8 bytes into a u64 from our eventfd.
                unsafe {
                    libc::read(shared.wake_fd, &mut v as *mut u64 as *mut libc::c_void, 8);
                }
            }
        }
        shared.wake_pending.store(false, Ordering::Release);
        let now = shared.now();
        let mut n_rx = 0;
        while n_rx < BATCH {
            match link.recv(now, &mut rx[n_rx]) {
                Ok(Some(n)) => {
                    rx_len[n_rx] = n;
                    n_rx += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    rs_log!(Error, "link receive failed: {e}");
                    break;
                }
            }
        }
        let mut n_tx = 0;
        {
            let mut inner = shared.lock();
            let now = shared.now();
            for (buf, &len) in rx.iter().zip(rx_len.iter()).take(n_rx) {
                inner.stack.on_packet(now, &buf[..len]);
            }
            inner.stack.on_timer(now);
            while n_tx < BATCH {
                match inner.stack.poll_transmit(now, &mut tx[n_tx]) {
                    Some(n) => {
                        tx_len[n_tx] = n;
                        n_tx += 1;
                    }
                    None => break,
                }
            }
            // Whatever a call armed before now is covered by this reading.
            inner.stack.needs_io_thread();
            next_timer = inner.stack.poll_timeout();
            inner.stack.take_changed(&mut changed);
            if !changed.is_empty() {
                for id in changed.drain(..) {
                    if let Some(c) = inner.conds.get(&id) {
                        c.notify_all();
                    }
                }
                shared.any_change.notify_all();
                shared.signal_readiness();
            }
        }
        for (buf, &len) in tx.iter().zip(tx_len.iter()).take(n_tx) {
            if let Err(e) = link.send(now, &buf[..len]) {
                rs_log!(Warn, "link send failed: {e}");
            }
        }
        busy = n_rx == BATCH || n_tx == BATCH;
    }
    rs_log!(Info, "I/O thread stopped");
}
