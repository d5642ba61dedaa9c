//! Safe Rust sockets on integer descriptors: blocking and non-blocking
//! calls, timeouts, readiness. The C ABI in `ffi/` is a thin layer on this.

pub mod fd_table;
pub mod netstat;
pub mod options;
mod poll;
mod shards;
pub mod stat;
mod transfer;

use std::net::SocketAddrV4;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::runtime::{Locked, Runtime, RuntimeConfig, Shared, Waiter};
use crate::stack::Stack;
use crate::sys::Wake;
use crate::tcp::State;
use crate::time::Instant;
pub use fd_table::{FdEntry, FdTable};
pub use options::{SockOpt, SockOptName};
pub use poll::PollFd;

/// Which halves shutdown() closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// SHUT_RD.
    Read,
    /// SHUT_WR.
    Write,
    /// SHUT_RDWR.
    Both,
}

/// A set of sockets on one runtime, addressed by descriptor numbers.
#[derive(Debug)]
pub struct Sockets {
    /// One runtime per shard (one, unless `RuntimeConfig::shards` asks for
    /// more and the device could be shared out): a stack with its own I/O
    /// thread, lock and queue of the TUN device.
    shards: Vec<ShardRuntime>,
    fds: FdTable,
    /// The shard of the next new socket (round-robin).
    next_home: std::sync::atomic::AtomicUsize,
}

/// One shard's runtime and its shared state.
#[derive(Debug)]
struct ShardRuntime {
    runtime: Mutex<Runtime>,
    shared: Arc<Shared>,
}

/// Per-call flags of send/recv.
#[derive(Clone, Copy, Debug, Default)]
pub struct MsgFlags {
    /// MSG_DONTWAIT: this call does not block.
    pub dont_wait: bool,
    /// MSG_PEEK: leave the data in place.
    pub peek: bool,
    /// MSG_WAITALL: wait for the whole buffer (recv).
    pub wait_all: bool,
}

impl Sockets {
    /// Sockets on a started runtime.
    pub fn new(runtime: Runtime) -> Sockets {
        Sockets::sharded(vec![runtime])
    }

    /// Sockets over the shards of one device (from
    /// `Runtime::start_shards`): a listener listens in every shard, a new
    /// socket lives in one (round-robin), and a connection in the shard its
    /// ports name. Panics if `runtimes` is empty.
    pub fn sharded(runtimes: Vec<Runtime>) -> Sockets {
        assert!(!runtimes.is_empty(), "sockets need a runtime");
        Sockets {
            shards: runtimes
                .into_iter()
                .map(|rt| ShardRuntime {
                    shared: rt.shared().clone(),
                    runtime: Mutex::new(rt),
                })
                .collect(),
            fds: FdTable::default(),
            next_home: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Starts the runtimes (one per shard) on the TUN device `cfg` describes.
    pub fn start(cfg: &RuntimeConfig) -> Result<Sockets> {
        Ok(Sockets::sharded(Runtime::start_shards(cfg)?))
    }

    /// The first shard's runtime state (the only one unless sharded).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shards[0].shared
    }

    /// Marks every shard failed (a bug caught as a panic): every call fails
    /// with EIO.
    pub fn fail(&self) {
        for s in &self.shards {
            s.shared.fail();
        }
    }

    /// True once a shard failed.
    pub fn is_dead(&self) -> bool {
        self.shards.iter().any(|s| s.shared.is_dead())
    }

    /// How many shards there are.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Stops the I/O threads.
    pub fn stop(&self) {
        for s in &self.shards {
            s.runtime.lock().stop();
        }
    }

    /// Runs `f` on the first shard's stack (the only one unless sharded;
    /// for inspection in tests and tools).
    pub fn with_stack<T>(&self, f: impl FnOnce(&mut Stack) -> T) -> T {
        f(&mut self.shards[0].shared.lock().stack)
    }

    /// Runs `f` on each shard's stack in turn, with its number.
    pub fn with_stacks<T>(&self, mut f: impl FnMut(usize, &mut Stack) -> T) -> Vec<T> {
        (0..self.shards.len())
            .map(|i| f(i, &mut self.shards[i].shared.lock().stack))
            .collect()
    }

    /// The runtime state of shard `i`.
    pub(crate) fn rt(&self, i: usize) -> &Shared {
        &self.shards[i].shared
    }

    /// Makes the calling thread, about to wait (in a poll of its own that
    /// includes `wake_fd`, its waiter's eventfd), the one that waits on
    /// the TUN device: on every shard's queue, since it may wait for
    /// sockets of any (see [`crate::runtime::Shared::lead_device`]).
    pub fn lead_devices(&self, wake_fd: RawFd) -> crate::runtime::DeviceLeaders<'_> {
        let mut leaders = crate::runtime::DeviceLeaders::default();
        for shard in &self.shards {
            // Such a waiter polls the queues itself: a takeover wakes it.
            if let Some(l) = shard.shared.lead_device(wake_fd, None) {
                leaders.push(l);
            }
        }
        leaders
    }

    /// Runs `op` until it stops saying EAGAIN, sleeping until one of
    /// `events` is set on the socket unless non-blocking. A timeout gives
    /// EAGAIN. A signal handler gives EINTR, except that without a timeout
    /// an SA_RESTART handler lets the wait go on: the kernel restarts an
    /// untimed futex wait itself, just as it restarts the kernel's own
    /// blocking socket calls (and, like them, never a timed one).
    fn blocking<T>(
        &self,
        entry: &FdEntry,
        nonblocking: bool,
        timeout: Option<Duration>,
        events: i16,
        mut op: impl FnMut(&mut Stack, Instant) -> Result<T>,
    ) -> Result<T> {
        let shared = self.rt(entry.shard);
        let started = std::time::Instant::now();
        let deadline = timeout.and_then(|t| started.checked_add(t));
        // Busy-poll: spin first, taking packets from the device in this
        // thread, so an answer that comes within a few microseconds costs
        // no sleep and no wake-up of this thread or the I/O thread.
        let busy = if nonblocking {
            Duration::ZERO
        } else {
            self.busy_poll_of(entry)
        };
        let mut spinning = (!busy.is_zero())
            .then(|| started + busy)
            .map(|b| deadline.map_or(b, |d| d.min(b)))
            .and_then(|until| Some((until, shared.busy_poller()?)));
        let waiter = Waiter::current();
        let mut leading = None;
        // Lead at most once per call: a thread taken over from does not
        // take the device back.
        let mut led = false;
        loop {
            let mut inner = shared.lock();
            if shared.is_dead() {
                return Err(Error::Io);
            }
            let now = shared.now();
            match op(&mut inner.stack, now) {
                Err(Error::WouldBlock) if !nonblocking => {}
                r => return r,
            }
            if spinning
                .as_ref()
                .is_some_and(|(t, _)| std::time::Instant::now() < *t)
            {
                drop(inner);
                if !shared.poll_link_here() {
                    std::hint::spin_loop();
                }
                continue;
            }
            // Done spinning: the device goes back to the I/O thread before
            // this thread sleeps.
            let done = spinning.take();
            let ticket = waiter.ticket();
            inner.readiness.watch(entry.id, &waiter, events, None);
            drop(inner);
            // Sleep on the device itself (this thread's epoll set takes
            // it): an answer then wakes this thread alone, not the I/O
            // thread and then this one. (Taken before the spin ends, so the
            // device does not go back to the I/O thread in between.)
            if leading.is_none() && !led {
                leading = waiter.eventfd().ok().and_then(|fd| {
                    let set = waiter.epoll().ok();
                    Some((shared.lead_device(fd, set)?, fd))
                });
                led = leading.is_some();
            }
            if leading.as_ref().is_some_and(|(l, _)| !l.leads()) {
                // Another thread took over: sleep as others do.
                leading = None;
            }
            drop(done);
            let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
            let woke = match (left, &leading) {
                (Some(l), _) if l.is_zero() => Wake::TimedOut,
                (_, Some((lead, fd))) if waiter.ticket() == ticket => {
                    match lead.wait(*fd, left) {
                        // poll(2) says EINTR for any handler; a futex wait
                        // without a timeout would have gone on after an
                        // SA_RESTART one (and so does this, unless some
                        // handler lacks it).
                        Some(Wake::Interrupted)
                            if left.is_none() && !crate::sys::handler_without_restart() =>
                        {
                            Wake::Woken
                        }
                        Some(w) => w,
                        None => waiter.sleep(ticket, left),
                    }
                }
                (_, Some(_)) => Wake::Woken,
                _ => waiter.sleep(ticket, left),
            };
            let mut inner = shared.lock();
            inner.readiness.unwatch(entry.id, &waiter, None);
            if woke == Wake::Woken {
                continue;
            }
            // Timed out or interrupted: what has arrived meanwhile still counts.
            if shared.is_dead() {
                return Err(Error::Io);
            }
            let now = shared.now();
            return match op(&mut inner.stack, now) {
                Err(Error::WouldBlock) if woke == Wake::Interrupted => Err(Error::Interrupted),
                r => r,
            };
        }
    }

    fn register(&self, fd: Option<i32>, inner: &mut Locked<'_>, entry: FdEntry) -> Result<i32> {
        let entry = Arc::new(entry);
        let id = entry.id;
        let fd = self.fds.insert(fd, entry)?;
        let mask = inner.stack.readiness(id).unwrap_or(0);
        inner.readiness.add(id, fd, mask);
        Ok(fd)
    }

    /// socket(AF_INET, SOCK_STREAM): a new descriptor (the lowest free, or `fd`).
    pub fn socket(&self, nonblocking: bool, fd: Option<i32>) -> Result<i32> {
        let home = self.next_home.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        let mut inner = self.rt(home).lock();
        let id = inner.stack.socket_tcp();
        let entry = FdEntry::new(id, nonblocking).on_shard(home);
        match self.register(fd, &mut inner, entry) {
            Ok(fd) => Ok(fd),
            Err(e) => {
                let now = self.rt(home).now();
                let _ = inner.stack.close(now, id);
                Err(e)
            }
        }
    }

    /// bind().
    pub fn bind(&self, fd: i32, addr: SocketAddrV4) -> Result<()> {
        let e = self.fds.get(fd)?;
        self.rt(e.shard).lock().stack.bind(e.id, addr)
    }

    /// listen(). With several shards the socket listens in its own, and a
    /// copy with the same options and address in each of the others: the
    /// kernel steers each new connection to one shard by its ports.
    pub fn listen(&self, fd: i32, backlog: i32) -> Result<()> {
        let e = self.fds.get(fd)?;
        self.rt(e.shard).lock().stack.listen(e.id, backlog)?;
        if self.shards.len() == 1 || e.mirrors.get().is_some() {
            return Ok(()); // (listen again: the backlog of the first)
        }
        self.mirror_listener(&e, fd, backlog)
    }

    /// accept4(): the new descriptor (the lowest free, or `new_fd`) and the peer.
    pub fn accept(
        &self,
        fd: i32,
        nonblocking: bool,
        new_fd: Option<i32>,
    ) -> Result<(i32, SocketAddrV4)> {
        let e = self.fds.get(fd)?;
        let timeout = FdEntry::timeout(&e.recv_timeout);
        let (shard, child) = if e.mirrors.get().is_some() {
            self.accept_any(&e, timeout)?
        } else {
            let child =
                self.blocking(&e, e.is_nonblocking(), timeout, libc::POLLIN, |stack, _| {
                    stack.accept(e.id)
                })?;
            (e.shard, child)
        };
        let mut inner = self.rt(shard).lock();
        let peer = inner
            .stack
            .tcb(child)
            .map(|t| t.remote())
            .ok_or(Error::ConnectionReset)?;
        let entry = FdEntry::new(child, nonblocking).on_shard(shard);
        // The first read need not go through the stack to meet the rings.
        entry.take_rings(&inner.stack);
        match self.register(new_fd, &mut inner, entry) {
            Ok(nfd) => Ok((nfd, peer)),
            Err(err) => {
                let now = self.rt(shard).now();
                let _ = inner.stack.abort(now, child);
                Err(err)
            }
        }
    }

    /// connect(): blocks until established unless non-blocking (EINPROGRESS).
    pub fn connect(&self, fd: i32, addr: SocketAddrV4) -> Result<()> {
        let mut e = self.fds.get(fd)?;
        if self.shards.len() > 1 && !e.connecting.load(Ordering::Acquire) {
            e = self.place_for(fd, e, addr)?;
        }
        let mut inner = self.rt(e.shard).lock();
        let now = self.rt(e.shard).now();
        let state = inner.stack.state(e.id)?;
        if e.connecting.load(Ordering::Acquire) {
            // A second connect reports how the first one went (as Linux does).
            match state {
                State::SynSent | State::SynReceived if e.is_nonblocking() => {
                    return Err(Error::Already)
                }
                State::SynSent | State::SynReceived => {}
                State::Closed => {
                    e.connecting.store(false, Ordering::Release);
                    // Linux: once SO_ERROR has reported it, ECONNABORTED.
                    return Err(inner
                        .stack
                        .take_error(e.id)?
                        .unwrap_or(Error::ConnectionAborted));
                }
                _ => {
                    e.connecting.store(false, Ordering::Release);
                    return Ok(());
                }
            }
        } else {
            inner.stack.connect(now, e.id, addr)?;
            e.take_rings(&inner.stack);
            e.connecting.store(true, Ordering::Release);
            drop(inner);
            if e.is_nonblocking() {
                return Err(Error::InProgress);
            }
            inner = self.rt(e.shard).lock();
        }
        drop(inner);
        let timeout = FdEntry::timeout(&e.send_timeout);
        let r = self.blocking(&e, false, timeout, libc::POLLOUT, |stack, _| {
            match stack.state(e.id)? {
                State::SynSent | State::SynReceived => Err(Error::WouldBlock),
                State::Closed => Err(stack.take_error(e.id)?.unwrap_or(Error::ConnectionRefused)),
                _ => Ok(()),
            }
        });
        match r {
            Err(Error::WouldBlock) => Err(Error::InProgress),
            r => {
                e.connecting.store(false, Ordering::Release);
                r
            }
        }
    }

    /// shutdown(): also wakes threads blocked on the socket.
    pub fn shutdown(&self, fd: i32, how: Shutdown) -> Result<()> {
        let e = self.fds.get(fd)?;
        let (read, write) = match how {
            Shutdown::Read => (true, false),
            Shutdown::Write => (false, true),
            Shutdown::Both => (true, true),
        };
        // A listener's copies in other shards stop listening with it.
        for (shard, id) in e.mirrors.get().into_iter().flatten().copied() {
            let shared = self.rt(shard);
            let mut inner = shared.lock();
            let _ = inner.stack.shutdown(shared.now(), id, read, write);
            inner.readiness.wake_all(id);
        }
        let shared = self.rt(e.shard);
        let mut inner = shared.lock();
        let r = inner.stack.shutdown(shared.now(), e.id, read, write);
        inner.readiness.wake_all(e.id);
        r
    }

    /// close(): the descriptor is gone at once; a connection closes in the
    /// background. Threads blocked on it wake with EBADF.
    pub fn close(&self, fd: i32) -> Result<()> {
        let e = self.fds.remove(fd)?;
        if e.refs.fetch_sub(1, Ordering::AcqRel) > 1 {
            // Another descriptor (a dup) still refers to the socket.
            return Ok(());
        }
        // A listener's copies in the other shards go with it.
        for (i, id) in e.mirrors.get().into_iter().flatten().copied() {
            let shared = self.rt(i);
            let mut inner = shared.lock();
            inner.readiness.remove(id);
            let _ = inner.stack.close(shared.now(), id);
            shared.signal_readiness();
        }
        let shared = self.rt(e.shard);
        let mut inner = shared.lock();
        let now = shared.now();
        inner.readiness.remove(e.id);
        let linger = inner.stack.options(e.id).ok().and_then(|o| o.linger);
        let ends = inner.stack.tcb(e.id).map(|t| (t.local(), t.remote()));
        let r = match linger {
            // SO_LINGER with a zero timeout: reset at once, drop what is queued.
            Some(d) if d.is_zero() => inner.stack.abort(now, e.id),
            _ => inner.stack.close(now, e.id),
        };
        shared.signal_readiness();
        drop(inner);
        if let (Some(d), Some(ends)) = (linger, ends) {
            if !d.is_zero() {
                self.linger(e.shard, ends, d);
            }
        }
        r
    }

    /// SO_LINGER: close waits until the connection has delivered its data
    /// and FIN, or the time is up (then it goes on in the background).
    fn linger(&self, shard: usize, ends: (SocketAddrV4, SocketAddrV4), limit: Duration) {
        self.wait_for_any_change(shard, limit, |inner| {
            inner
                .stack
                .connections()
                .any(|(_, t)| (t.local(), t.remote()) == ends && t.is_delivering())
        });
    }

    /// Sleeps until `busy` is false, the time is up or the stack fails,
    /// looking again at every change of any socket. Signals do not end it
    /// (close and exit are not interruptible). Returns true if `busy` ended.
    fn wait_for_any_change(
        &self,
        shard: usize,
        limit: Duration,
        mut busy: impl FnMut(&mut Locked<'_>) -> bool,
    ) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let waiter = Waiter::current();
        let shared = self.rt(shard);
        loop {
            let mut inner = shared.lock();
            if !busy(&mut inner) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || shared.is_dead() {
                return false;
            }
            let ticket = waiter.ticket();
            inner.readiness.watch_all(&waiter);
            drop(inner);
            // A socket freed in the background changes no readiness: look
            // again now and then.
            waiter.sleep(ticket, Some(left.min(Duration::from_millis(50))));
            shared.lock().readiness.unwatch_all(&waiter);
        }
    }

    /// dup2(): `new_fd` refers to the same socket as `fd`; the socket
    /// closes when the last of its descriptors does. EBADF if `new_fd` is
    /// taken (the caller closes it first, as dup2 does).
    pub fn dup(&self, fd: i32, new_fd: i32) -> Result<()> {
        let e = self.fds.get(fd)?;
        e.refs.fetch_add(1, Ordering::AcqRel);
        if let Err(err) = self.fds.insert(Some(new_fd), e.clone()) {
            e.refs.fetch_sub(1, Ordering::AcqRel);
            return Err(err);
        }
        Ok(())
    }

    /// Bytes ready to be read (FIONREAD).
    pub fn pending_bytes(&self, fd: i32) -> Result<usize> {
        let e = self.fds.get(fd)?;
        let inner = self.rt(e.shard).lock();
        Ok(inner.stack.tcb(e.id).map_or(0, |t| t.recv_queue()))
    }

    /// EBADF unless `fd` is open: the first check of every call, as the
    /// kernel looks the descriptor up before anything else.
    pub fn check_fd(&self, fd: i32) -> Result<()> {
        self.fds.get(fd).map(|_| ())
    }

    /// F_GETFD's FD_CLOEXEC.
    pub fn cloexec(&self, fd: i32) -> Result<bool> {
        Ok(self.fds.get(fd)?.cloexec.load(Ordering::Acquire))
    }

    /// F_SETFD's FD_CLOEXEC (and SOCK_CLOEXEC).
    pub fn set_cloexec(&self, fd: i32, on: bool) -> Result<()> {
        self.fds.get(fd)?.cloexec.store(on, Ordering::Release);
        Ok(())
    }

    /// EISCONN for a socket that is connected (or listening) whatever
    /// address a connect names: Linux checks the state before the address.
    pub fn connect_precheck(&self, fd: i32) -> Result<()> {
        let e = self.fds.get(fd)?;
        if e.connecting.load(Ordering::Acquire) {
            // A connect under way: the next connect reports its outcome.
            return Ok(());
        }
        let state = self.rt(e.shard).lock().stack.state(e.id)?;
        match state {
            State::Closed | State::SynSent | State::SynReceived => Ok(()),
            _ => Err(Error::IsConnected),
        }
    }

    /// connect() with AF_UNSPEC: drops the association, as Linux's
    /// disconnect does: a connection is reset; an unconnected socket is
    /// left as it is.
    pub fn disconnect(&self, fd: i32) -> Result<()> {
        let e = self.fds.get(fd)?;
        let mut inner = self.rt(e.shard).lock();
        let now = self.rt(e.shard).now();
        if let Some(t) = inner.stack.tcb(e.id) {
            if t.state() != State::Closed {
                inner.stack.reset_connection(now, e.id)?;
            }
        }
        e.connecting.store(false, Ordering::Release);
        Ok(())
    }

    /// True if `fd` is one of this table's descriptors.
    pub fn is_open(&self, fd: i32) -> bool {
        self.fds.get(fd).is_ok()
    }

    /// getsockname().
    pub fn local_addr(&self, fd: i32) -> Result<SocketAddrV4> {
        let e = self.fds.get(fd)?;
        self.rt(e.shard).lock().stack.local_addr(e.id)
    }

    /// getpeername().
    pub fn peer_addr(&self, fd: i32) -> Result<SocketAddrV4> {
        let e = self.fds.get(fd)?;
        self.rt(e.shard).lock().stack.peer_addr(e.id)
    }

    /// The stack's id of the socket behind `fd` (for tests and tools).
    pub fn socket_id(&self, fd: i32) -> Result<crate::stack::SocketId> {
        Ok(self.fds.get(fd)?.id)
    }

    /// The connection state (for tests and tools).
    pub fn state(&self, fd: i32) -> Result<State> {
        let e = self.fds.get(fd)?;
        self.rt(e.shard).lock().stack.state(e.id)
    }

    /// fcntl(F_SETFL, O_NONBLOCK).
    pub fn set_nonblocking(&self, fd: i32, on: bool) -> Result<()> {
        self.fds.get(fd)?.nonblocking.store(on, Ordering::Release);
        Ok(())
    }

    /// fcntl(F_GETFL) & O_NONBLOCK.
    pub fn nonblocking(&self, fd: i32) -> Result<bool> {
        Ok(self.fds.get(fd)?.is_nonblocking())
    }

    /// Number of open descriptors.
    pub fn open_count(&self) -> usize {
        self.fds.len()
    }

    /// What the kernel does for an exiting process, done before it exits:
    /// closes every open descriptor (FIN, or RST where unread data is
    /// left), waits up to `linger` for closing connections to deliver
    /// their data and FIN, then stops the I/O thread (which flushes a pcap
    /// capture). Returns true if everything was delivered in time.
    pub fn shut_down(&self, linger: Duration) -> bool {
        for fd in self.fds.open_fds() {
            let _ = self.close(fd);
        }
        let deadline = std::time::Instant::now() + linger;
        let mut done = true;
        for shard in 0..self.shards.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            done &= self.wait_for_any_change(shard, left, |inner| {
                inner.stack.has_pending_output()
                    || inner.stack.connections().any(|(_, t)| t.is_delivering())
            });
        }
        self.stop();
        done
    }
}

static GLOBAL: OnceLock<Sockets> = OnceLock::new();

/// How far starting the process-wide sockets got: the configuration
/// `rs_init` gave, and the error of the last attempt. A failed start is
/// not retried by every call (each would try the device again and explain
/// again); it is by the next `init`.
struct Start {
    explicit: Option<RuntimeConfig>,
    failed: Option<Error>,
}

static START: Mutex<Start> = Mutex::new(Start {
    explicit: None,
    failed: None,
});

/// Sets the configuration of the process-wide sockets before first use
/// and starts them; EALREADY once they are running. After a failed start
/// (a bad variable, a busy device) it tries again with `cfg`.
pub fn init(cfg: RuntimeConfig) -> Result<()> {
    let mut start = START.lock();
    if GLOBAL.get().is_some() {
        return Err(Error::Already);
    }
    start.explicit = Some(cfg);
    start.failed = None;
    drop(start);
    global().map(|_| ())
}

static EXIT_LINGER: Mutex<Duration> = Mutex::new(Duration::from_secs(10));

/// Set in a child of fork(): the stack and its I/O thread stayed with the
/// parent.
static FORKED: AtomicBool = AtomicBool::new(false);

extern "C" fn after_fork_in_child() {
    FORKED.store(true, Ordering::Release);
}

/// The process that started the stack (0 before it starts).
static OWNER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// True in a child of fork() of the process that runs the stack (an atfork
/// handler set it; one load, so every call can afford it). Its calls fail
/// with EIO (closing a descriptor succeeds and does nothing): it must never
/// send a FIN or RST for its parent's connections. A vfork()-style child
/// runs no atfork handler: the few calls such a child makes (close, dup2,
/// close_range) ask [`shares_owner_memory`] instead.
pub fn in_forked_child() -> bool {
    FORKED.load(Ordering::Acquire)
}

/// True in a vfork()-style child: it runs in the stack owner's memory, so
/// it must not change anything there, not even a table entry. Asks the
/// kernel for the pid: for the rare calls that need it, not every call.
pub fn shares_owner_memory() -> bool {
    let owner = OWNER.load(Ordering::Acquire);
    owner != 0 && !FORKED.load(Ordering::Acquire) && crate::sys::getpid() != owner
}

/// Marks this process as a forked child (for an atfork handler of a
/// library that wraps this one and may run before the stack starts).
pub fn mark_forked_child() {
    FORKED.store(true, Ordering::Release);
}

/// Marks the process-wide stack failed (a panic was caught in a caller):
/// every blocked and later call fails with EIO.
pub fn fail_global() {
    if let Some(s) = GLOBAL.get() {
        s.fail();
    }
}

/// The process-wide sockets the C ABI uses, started on first use from
/// `rs_init`'s configuration or the environment.
pub fn global() -> Result<&'static Sockets> {
    if in_forked_child() {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::AcqRel) {
            crate::rs_log!(
                Warn,
                "rstcp sockets are not usable in a forked child (pid {}); they belong to the parent",
                crate::sys::getpid()
            );
        }
        return Err(Error::Io);
    }
    if let Some(s) = GLOBAL.get() {
        return running(s);
    }
    let mut start = START.lock();
    if let Some(s) = GLOBAL.get() {
        return running(s);
    }
    if let Some(e) = start.failed {
        return Err(e);
    }
    let started = match start.explicit.clone() {
        Some(cfg) => Ok(cfg),
        None => RuntimeConfig::from_env(),
    }
    .and_then(|cfg| Ok((Sockets::start(&cfg)?, cfg)));
    let (s, cfg) = match started {
        Ok(v) => v,
        Err(e) => {
            start.failed = Some(e);
            return Err(e);
        }
    };
    OWNER.store(crate::sys::getpid(), Ordering::Release);
    *EXIT_LINGER.lock() = cfg.exit_linger;
    // SAFETY: registering plain extern "C" functions with no arguments;
    // this runs once, for the one successful start.
    unsafe {
        libc::atexit(finish_at_exit);
        libc::pthread_atfork(None, None, Some(after_fork_in_child));
    }
    let s = GLOBAL.get_or_init(|| s);
    drop(start);
    running(s)
}

/// The global sockets, unless their stack failed.
fn running(s: &'static Sockets) -> Result<&'static Sockets> {
    if s.is_dead() {
        return Err(Error::Io);
    }
    STAT.get_or_init(|| stat::start_global(s));
    Ok(s)
}

/// The process-wide stat endpoint (rstcp-stat), once the sockets run.
static STAT: OnceLock<Option<stat::StatEndpoint>> = OnceLock::new();

/// Runs at process exit: delivers what closing connections still owe.
extern "C" fn finish_at_exit() {
    if in_forked_child() {
        // The parent's stack, lock and thread were copied, not inherited.
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        if let Some(Some(e)) = STAT.get() {
            e.remove();
        }
        if let Some(s) = GLOBAL.get() {
            let linger = *EXIT_LINGER.lock();
            if !s.shut_down(linger) {
                crate::rs_log!(
                    Warn,
                    "exit: connections still closing after {linger:?}; abandoned"
                );
            }
        }
    });
}
