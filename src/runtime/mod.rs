//! The I/O thread: owns the link, drives the stack, wakes waiting callers.
//!
//! Application threads change socket state under the stack's lock and wake
//! this thread through an eventfd when something must be sent. This thread
//! never holds the lock across a system call: it reads a batch of packets,
//! takes the lock to run them through the stack and collect what to send,
//! drops it, and writes the batch.

pub mod config;
mod device;
mod output;
pub mod readiness;
mod trace;

use std::ops::{Deref, DerefMut};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::link::{Link, TunHandle};
use crate::rs_log;
use crate::stack::{SocketId, Stack, StackConfig};
use crate::sys;
use crate::tcp::Transmit;
use crate::time::Instant;
use crate::wire::Checksum;
pub use config::RuntimeConfig;
pub use device::{BusyPoller, DeviceLeader, DeviceLeaders};
pub use readiness::{Event, Readiness, Waiter};

/// Packets read or written per lock round.
const BATCH: usize = 64;

/// What the lock protects: the stack and who waits for its sockets.
#[derive(Debug)]
pub struct Inner {
    /// The sans-IO stack.
    pub stack: Stack,
    /// Readiness masks, waiters and the queue of changed sockets.
    pub readiness: Readiness,
    changed: Vec<SocketId>,
}

impl Inner {
    /// Recomputes the readiness of every socket the stack marked changed
    /// and puts whoever waits for it into `wake`, to be woken once the lock
    /// is released ([`wake_all`]). Returns true if the queue of changed
    /// sockets became non-empty.
    fn dispatch(&mut self, wake: &mut Vec<Arc<readiness::Waiter>>) -> bool {
        self.stack.take_changed(&mut self.changed);
        if self.changed.is_empty() {
            return false;
        }
        let mut queued = false;
        for id in self.changed.drain(..) {
            let mask = self.stack.readiness(id).unwrap_or(0);
            queued |= self.readiness.update(id, mask, wake);
        }
        self.readiness.defer_watchers(wake);
        queued
    }
}

/// Wakes the waiters a dispatch collected (outside the lock), leaving
/// `wake` empty with its capacity for the next time.
fn wake_all(wake: &mut Vec<Arc<readiness::Waiter>>) {
    for w in wake.drain(..) {
        w.wake();
    }
}

thread_local! {
    /// Each application thread's list of waiters to wake on release.
    static TO_WAKE: std::cell::RefCell<Vec<Arc<readiness::Waiter>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The stack's lock as application threads hold it: on release, readiness
/// changes they caused reach the waiters, and the I/O thread is woken if
/// they queued something for it.
pub struct Locked<'a> {
    guard: Option<MutexGuard<'a, Inner>>,
    shared: &'a Shared,
}

impl Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        self.guard.as_ref().expect("held until drop")
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        self.guard.as_mut().expect("held until drop")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Some(mut g) = self.guard.take() else {
            return;
        };
        if std::thread::panicking() {
            // Unwinding from a bug: release the lock, touch nothing more.
            return;
        }
        // (A thread being torn down has no thread-locals: a fresh list then.)
        let mut to_wake = TO_WAKE
            .try_with(|t| t.try_borrow_mut().map(|mut v| std::mem::take(&mut *v)))
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        let timers = g.stack.take_earlier_deadline();
        // A kernel send() transmits in the caller: so does this, while the
        // link is free, instead of handing the packets to the I/O thread.
        let pending = g.stack.has_pending_output() && !self.shared.transmit_here(&mut g);
        let wake = timers || pending;
        let queued = g.dispatch(&mut to_wake);
        drop(g);
        wake_all(&mut to_wake);
        let _ = TO_WAKE.try_with(|t| {
            if let Ok(mut v) = t.try_borrow_mut() {
                *v = to_wake;
            }
        });
        if queued {
            self.shared.signal_readiness();
        }
        if wake {
            self.shared.wake();
        }
    }
}

impl std::fmt::Debug for Locked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Locked")
    }
}

/// State shared between the I/O thread and application threads.
#[derive(Debug)]
pub struct Shared {
    inner: Mutex<Inner>,
    /// The link's sender for application threads (a bare TUN device only).
    /// Whoever writes packets holds this lock from before it takes them
    /// from the stack (under the stack's lock) until they are written, so
    /// packets leave in the order the stack made them. It is only ever
    /// taken while the stack's lock is held, and the stack's lock never
    /// while it is: no deadlock. None once the I/O thread has stopped.
    tx: Mutex<Option<TunHandle>>,
    /// A caller found `tx` taken and left its packets to the holder. A
    /// caller holding it looks at the queue again after each write; the
    /// I/O thread, which polls the queue only before its writes, looks at
    /// this after letting go and runs another round if it is set.
    tx_wanted: AtomicBool,
    /// Sockets nudged while the stack's lock was taken (see
    /// [`Shared::nudge`]); the I/O thread looks at them.
    nudged: Mutex<Vec<SocketId>>,
    /// The same device for reading, by the I/O thread or a busy-polling
    /// caller: whoever reads holds this lock until the packets have been
    /// through the stack, so they are taken in the order they came. Taken
    /// before the stack's lock, never while holding it.
    rx: Mutex<Option<TunHandle>>,
    /// The default busy-poll of blocking calls, in microseconds.
    busy_poll_us: AtomicU64,
    /// Application threads reading the device now (busy-polling, or the
    /// leader): while there are any, the I/O thread leaves the device to
    /// them (as Linux's NAPI does for a busy-polling socket), or it would
    /// take their packets first. Kept by `device::DeviceWaiters`.
    device_users: AtomicUsize,
    /// Who sleeps on the device (see `device::DeviceWaiters`).
    device: Mutex<device::DeviceWaiters>,
    /// The device, when application threads may read and write it too (a
    /// bare TUN device).
    device_fd: Option<RawFd>,
    /// The I/O thread sleeps on this epoll set: its eventfd, and the link
    /// while no application thread leads or busy-polls.
    io_epoll: RawFd,
    /// Buffer size for one packet to send (a 64 KiB one with offload).
    tx_size: usize,
    wake_fd: RawFd,
    wake_pending: AtomicBool,
    readiness_fd: AtomicI32,
    stop: AtomicBool,
    /// The stack failed (a bug caught as a panic): every call fails with EIO.
    dead: AtomicBool,
    origin: std::time::Instant,
}

impl Shared {
    /// Locks the stack. Releasing the lock wakes the waiters whose sockets
    /// became ready and, if needed, the I/O thread.
    pub fn lock(&self) -> Locked<'_> {
        Locked {
            guard: Some(self.inner.lock()),
            shared: self,
        }
    }

    /// A read or write without the stack's lock left work for it on
    /// socket `id` (see `Stack::nudge`): done in this thread if the lock is
    /// free, else in the I/O thread's next round (woken for it), so the
    /// caller never waits for whoever holds the lock.
    pub fn nudge(&self, id: SocketId) {
        if let Some(guard) = self.inner.try_lock() {
            let mut inner = Locked {
                guard: Some(guard),
                shared: self,
            };
            let now = self.now();
            inner.stack.nudge(now, id);
            return;
        }
        self.nudged.lock().push(id);
        self.wake();
    }

    /// The stack's clock: monotonic time since the runtime started.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }

    /// Converts a stack instant back to the monotonic clock (for waits).
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        self.origin + Duration::from_micros(t.micros())
    }

    /// Runs one received packet through the stack in the calling thread,
    /// for a link fed from outside the I/O thread (packetdrill's
    /// netdev_send): when this returns, its effects are visible to calls
    /// and any answer is queued, the I/O thread woken to send it.
    pub fn deliver(&self, packet: &[u8]) {
        if self.is_dead() {
            return;
        }
        let mut inner = self.lock();
        let now = self.now();
        inner.stack.on_packet(now, packet);
    }

    /// Asks the I/O thread to run the stack (something is queued to send).
    pub fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            sys::eventfd_signal(self.wake_fd);
        }
    }

    /// From now on, also signal a copy of `fd` (an eventfd) whenever the
    /// queue of changed sockets becomes non-empty, and keep that queue;
    /// -1 turns both off. The library signals its own duplicate, so the
    /// caller may close `fd` and reuse its number safely.
    pub fn set_readiness_fd(&self, fd: RawFd) -> Result<()> {
        let mut inner = self.lock();
        let own = if fd >= 0 {
            sys::dup_cloexec(fd).map_err(|_| Error::BadDescriptor)?
        } else {
            -1
        };
        let old = self.readiness_fd.swap(own, Ordering::AcqRel);
        if old >= 0 {
            sys::close(old);
        }
        inner.readiness.set_tracking(own >= 0);
        drop(inner);
        if own >= 0 {
            sys::eventfd_signal(own);
        }
        Ok(())
    }

    /// True once the stack has failed; callers report EIO.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Marks the stack failed after a caught panic, in the I/O thread or
    /// in a caller: every blocked and later call fails with EIO.
    pub fn fail(&self) {
        self.dead.store(true, Ordering::Release);
        self.stop.store(true, Ordering::Release);
        self.wake();
        let inner = self.inner.lock();
        inner.readiness.wake_everyone();
        drop(inner);
        self.signal_readiness();
    }

    /// Signals the registered readiness eventfd, if any.
    pub fn signal_readiness(&self) {
        let fd = self.readiness_fd.load(Ordering::Acquire);
        if fd >= 0 {
            sys::eventfd_signal(fd);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        sys::close(self.io_epoll);
        sys::close(self.wake_fd);
        let fd = self.readiness_fd.load(Ordering::Acquire);
        if fd >= 0 {
            sys::close(fd);
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
        let rt = Runtime::with_link(link, cfg.stack_config())?;
        rt.shared.set_busy_poll(cfg.busy_poll);
        Ok(rt)
    }

    /// Starts one runtime per shard (`cfg.shards`, see
    /// [`RuntimeConfig::open_links`]), each a stack with its own I/O
    /// thread and lock on its own queue of the device; fewer when the
    /// device cannot be shared out.
    pub fn start_shards(cfg: &RuntimeConfig) -> Result<Vec<Runtime>> {
        let links = cfg.open_links()?;
        let count = links.len();
        links
            .into_iter()
            .enumerate()
            .map(|(index, link)| {
                let mut stack_cfg = cfg.stack_config();
                stack_cfg.shard = crate::stack::Shard { index, count };
                let rt = Runtime::with_link(link, stack_cfg)?;
                rt.shared.set_busy_poll(cfg.busy_poll);
                Ok(rt)
            })
            .collect()
    }

    /// Starts the I/O thread on any link (tests use in-memory pairs).
    pub fn with_link(link: Box<dyn Link>, mut stack_cfg: StackConfig) -> Result<Runtime> {
        stack_cfg.mtu = stack_cfg.mtu.min(link.mtu());
        // A device that cuts segments itself gets packets of many.
        stack_cfg.tcp.gso_max = link.gso_max();
        // Segments leave from the send ring (no copy) through a device
        // that completes checksums.
        stack_cfg.tcp.zero_copy = link.handle().is_some_and(|h| h.completes_checksums());
        let wake_fd = sys::eventfd().map_err(|_| Error::NoBuffers)?;
        let io_epoll = match sys::epoll_create() {
            Ok(ep) => ep,
            Err(_) => {
                sys::close(wake_fd);
                return Err(Error::NoBuffers);
            }
        };
        for fd in [Some(wake_fd), link.readable_fd()].into_iter().flatten() {
            if sys::epoll_watch(io_epoll, fd, true).is_err() {
                sys::close(wake_fd);
                sys::close(io_epoll);
                return Err(Error::NoBuffers);
            }
        }
        let tx_size = link.max_packet().max(link.gso_max()).max(1500) + 128;
        let mut stack = Stack::new(stack_cfg);
        // From the first call on: a caller may connect and send its SYN
        // before the I/O thread has run at all.
        stack.record_events(crate::log::enabled(crate::log::Level::Debug));
        let shared = Arc::new(Shared {
            tx: Mutex::new(link.handle()),
            tx_wanted: AtomicBool::new(false),
            nudged: Mutex::new(Vec::new()),
            rx: Mutex::new(link.handle()),
            busy_poll_us: AtomicU64::new(0),
            device_users: AtomicUsize::new(0),
            device: Mutex::new(device::DeviceWaiters::default()),
            device_fd: link.handle().map(|h| h.fd()),
            io_epoll,
            tx_size,
            inner: Mutex::new(Inner {
                stack,
                readiness: Readiness::default(),
                changed: Vec::new(),
            }),
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
                block_signals();
                let keep = s.clone();
                let run = std::panic::AssertUnwindSafe(|| io_loop(s, link));
                if std::panic::catch_unwind(run).is_err() {
                    // Never take the host program down: fail every socket
                    // call with EIO instead, and wake whoever waits.
                    rs_log!(Error, "I/O thread panicked; the stack is stopped");
                    keep.fail();
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

/// The I/O thread takes no signals: one sent to the process (Ctrl-C, an
/// alarm) must reach an application thread, where it interrupts a blocked
/// call, not this thread, which no handler of the program expects.
pub(crate) fn block_signals() {
    // SAFETY: a full set built by sigfillset, applied to this thread only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
    }
}

fn io_loop(shared: Arc<Shared>, mut link: Box<dyn Link>) {
    // Declared after `link`, so dropped first, also when a panic unwinds:
    // application threads stop writing to the device before it closes.
    struct ClearWriter<'a>(&'a Shared);
    impl Drop for ClearWriter<'_> {
        fn drop(&mut self) {
            // Its number may be another file's once it is closed.
            self.0.device.lock().gone = true;
            *self.0.rx.lock() = None;
            *self.0.tx.lock() = None;
        }
    }
    let _clear = ClearWriter(&shared);
    let size = shared.tx_size;
    let mut rx: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0; size]).collect();
    let mut tx: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0; size]).collect();
    let mut rx_len = [(0usize, Checksum::Full); BATCH];
    let mut sent: Vec<Transmit> = Vec::with_capacity(BATCH);
    let gather = link.handle();
    let mut busy = false;
    let mut next_timer: Option<Instant> = None;
    let mut events = Vec::new();
    let mut to_wake = Vec::new();
    let mut nudged = Vec::new();
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
            let timeout = next.map(|t| {
                // Round up so we never wake just before a deadline and spin.
                let ms = t.micros().saturating_sub(now.micros()).div_ceil(1000);
                Duration::from_millis(ms.min(60_000))
            });
            // While callers busy-poll or lead, the device is theirs: it is
            // not in this thread's set (see device::DeviceWaiters).
            let mut ready = [libc::epoll_event { events: 0, u64: 0 }; 2];
            let n = sys::epoll_wait(shared.io_epoll, &mut ready, timeout).unwrap_or(0);
            if ready[..n].iter().any(|e| e.u64 == shared.wake_fd as u64) {
                sys::eventfd_drain(shared.wake_fd);
            }
        }
        shared.wake_pending.store(false, Ordering::Release);
        let now = shared.now();
        // Packets go through the stack in the order they are read. While
        // callers lead or busy-poll they read, and this thread does not.
        let read = shared.device_users.load(Ordering::Acquire) == 0;
        let rx_turn = read.then(|| shared.rx.lock());
        let mut n_rx = 0;
        while read && n_rx < BATCH {
            match link.recv_checked(now, &mut rx[n_rx]) {
                Ok(Some(got)) => {
                    rx_len[n_rx] = got;
                    n_rx += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    rs_log!(Error, "link receive failed: {e}");
                    break;
                }
            }
        }
        let trace_packets = trace::packets_on();
        if trace_packets {
            for (buf, &(len, checksum)) in rx.iter().zip(rx_len.iter()).take(n_rx) {
                trace::log_packet("in ", &buf[..len], checksum);
            }
        }
        let queued;
        let tx_turn;
        {
            let mut inner = shared.inner.lock();
            if !busy {
                inner.stack.note_io_wakeup();
            }
            // Packets leave in the order they are taken (see Shared::tx).
            tx_turn = shared.tx.lock();
            let now = shared.now();
            for (buf, &(len, checksum)) in rx.iter().zip(rx_len.iter()).take(n_rx) {
                inner.stack.on_packet_checked(now, &buf[..len], checksum);
            }
            drop(rx_turn);
            std::mem::swap(&mut nudged, &mut *shared.nudged.lock());
            for id in nudged.drain(..) {
                inner.stack.nudge(now, id);
            }
            inner.stack.on_timer(now);
            while sent.len() < BATCH {
                match inner.stack.poll_transmit(now, &mut tx[sent.len()]) {
                    Some(t) => sent.push(t),
                    None => break,
                }
            }
            // Whatever a call armed before now is covered by this reading.
            inner.stack.needs_io_thread();
            next_timer = inner.stack.poll_timeout();
            queued = inner.dispatch(&mut to_wake);
            inner.stack.take_events(&mut events);
        }
        // The packets first, then the wake-ups (system calls all, made with
        // the stack's lock released): a thread woken while this one still
        // held the transmit lock would find the link busy and hand its own
        // packets back to this thread.
        let n_tx = sent.len();
        for (buf, t) in tx.iter_mut().zip(sent.drain(..)) {
            let r = output::send_packet(buf, &t, gather, |packet, gso| match gso {
                Some(mss) => link.send_gso(now, packet, mss),
                None => link.send(now, packet),
            });
            if let Err(e) = r {
                rs_log!(Warn, "link send failed: {e}");
            }
        }
        drop(tx_turn);
        // Packets a caller queued while this thread held `tx` go in
        // another round, at once.
        std::sync::atomic::fence(Ordering::SeqCst);
        let again = shared.tx_wanted.swap(false, Ordering::SeqCst);
        wake_all(&mut to_wake);
        if queued {
            shared.signal_readiness();
        }
        trace::log_events(&events);
        events.clear();
        busy = n_rx == BATCH || n_tx == BATCH || again;
    }
    // A caller sleeping on the device would not notice it is gone.
    *shared.rx.lock() = None;
    shared.inner.lock().readiness.wake_everyone();
    rs_log!(Info, "I/O thread stopped");
}
