//! Safe Rust sockets on integer descriptors: blocking and non-blocking
//! calls, timeouts, readiness. The C ABI in `ffi/` is a thin layer on this.

pub mod fd_table;
pub mod options;
mod poll;

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::runtime::{Inner, Runtime, RuntimeConfig, Shared};
use crate::stack::Stack;
use crate::tcp::State;
use crate::time::Instant;
pub use fd_table::{FdEntry, FdTable};
pub use options::SockOpt;
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
    runtime: Mutex<Runtime>,
    shared: Arc<Shared>,
    fds: FdTable,
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
        let shared = runtime.shared().clone();
        Sockets {
            runtime: Mutex::new(runtime),
            shared,
            fds: FdTable::default(),
        }
    }

    /// Starts a runtime on the TUN device `cfg` describes.
    pub fn start(cfg: &RuntimeConfig) -> Result<Sockets> {
        Ok(Sockets::new(Runtime::start(cfg)?))
    }

    /// The shared runtime state (for readiness signalling).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops the I/O thread.
    pub fn stop(&self) {
        self.runtime.lock().stop();
    }

    /// Runs `f` on the stack (for inspection in tests and tools).
    pub fn with_stack<T>(&self, f: impl FnOnce(&mut Stack) -> T) -> T {
        f(&mut self.shared.lock().stack)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.lock()
    }

    fn finish(&self, mut inner: MutexGuard<'_, Inner>) {
        let wake = inner.stack.needs_io_thread();
        drop(inner);
        if wake {
            self.shared.wake();
        }
    }

    /// Runs `op` until it stops saying EAGAIN, blocking on the socket's
    /// condition variable unless non-blocking. A timeout gives EAGAIN.
    fn blocking<T>(
        &self,
        entry: &FdEntry,
        nonblocking: bool,
        timeout: Option<Duration>,
        mut op: impl FnMut(&mut Stack, Instant) -> Result<T>,
    ) -> Result<T> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let mut inner = self.lock();
        loop {
            if self.shared.is_dead() {
                return Err(Error::Io);
            }
            let now = self.shared.now();
            match op(&mut inner.stack, now) {
                Err(Error::WouldBlock) if !nonblocking => {}
                r => {
                    self.finish(inner);
                    return r;
                }
            }
            if inner.stack.needs_io_thread() {
                self.shared.wake();
            }
            let cond = entry.cond.clone();
            match deadline {
                Some(d) => {
                    if cond.wait_until(&mut inner, d).timed_out() {
                        let r = op(&mut inner.stack, self.shared.now());
                        self.finish(inner);
                        return r;
                    }
                }
                None => cond.wait(&mut inner),
            }
        }
    }

    fn register(&self, fd: Option<i32>, inner: &mut Inner, entry: FdEntry) -> Result<i32> {
        let entry = Arc::new(entry);
        let id = entry.id;
        let cond = entry.cond.clone();
        let fd = self.fds.insert(fd, entry)?;
        inner.conds.insert(id, cond);
        Ok(fd)
    }

    /// socket(AF_INET, SOCK_STREAM): a new descriptor (the lowest free, or `fd`).
    pub fn socket(&self, nonblocking: bool, fd: Option<i32>) -> Result<i32> {
        let mut inner = self.lock();
        let id = inner.stack.socket_tcp();
        match self.register(fd, &mut inner, FdEntry::new(id, nonblocking)) {
            Ok(fd) => Ok(fd),
            Err(e) => {
                let now = self.shared.now();
                let _ = inner.stack.close(now, id);
                Err(e)
            }
        }
    }

    /// bind().
    pub fn bind(&self, fd: i32, addr: SocketAddrV4) -> Result<()> {
        let e = self.fds.get(fd)?;
        self.lock().stack.bind(e.id, addr)
    }

    /// listen().
    pub fn listen(&self, fd: i32, backlog: i32) -> Result<()> {
        let e = self.fds.get(fd)?;
        self.lock().stack.listen(e.id, backlog)
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
        let child = self.blocking(&e, e.is_nonblocking(), timeout, |stack, _| {
            stack.accept(e.id)
        })?;
        let mut inner = self.lock();
        let peer = inner
            .stack
            .tcb(child)
            .map(|t| t.remote())
            .ok_or(Error::ConnectionReset)?;
        match self.register(new_fd, &mut inner, FdEntry::new(child, nonblocking)) {
            Ok(nfd) => Ok((nfd, peer)),
            Err(err) => {
                let now = self.shared.now();
                let _ = inner.stack.abort(now, child);
                self.finish(inner);
                Err(err)
            }
        }
    }

    /// connect(): blocks until established unless non-blocking (EINPROGRESS).
    pub fn connect(&self, fd: i32, addr: SocketAddrV4) -> Result<()> {
        let e = self.fds.get(fd)?;
        let mut inner = self.lock();
        let now = self.shared.now();
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
                    return Err(inner
                        .stack
                        .take_error(e.id)?
                        .unwrap_or(Error::ConnectionRefused));
                }
                _ => {
                    e.connecting.store(false, Ordering::Release);
                    return Ok(());
                }
            }
        } else {
            inner.stack.connect(now, e.id, addr)?;
            e.connecting.store(true, Ordering::Release);
            self.finish(inner);
            if e.is_nonblocking() {
                return Err(Error::InProgress);
            }
            inner = self.lock();
        }
        drop(inner);
        let timeout = FdEntry::timeout(&e.send_timeout);
        let r = self.blocking(&e, false, timeout, |stack, _| match stack.state(e.id)? {
            State::SynSent | State::SynReceived => Err(Error::WouldBlock),
            State::Closed => Err(stack.take_error(e.id)?.unwrap_or(Error::ConnectionRefused)),
            _ => Ok(()),
        });
        match r {
            Err(Error::WouldBlock) => Err(Error::InProgress),
            r => {
                e.connecting.store(false, Ordering::Release);
                r
            }
        }
    }

    /// send(): blocking sends queue everything (or fail / time out with a
    /// partial count); non-blocking ones what fits, or EAGAIN.
    pub fn send(&self, fd: i32, data: &[u8], flags: MsgFlags) -> Result<usize> {
        let e = self.fds.get(fd)?;
        let nonblocking = flags.dont_wait || e.is_nonblocking();
        let timeout = FdEntry::timeout(&e.send_timeout);
        let mut sent = 0;
        let r = self.blocking(&e, nonblocking, timeout, |stack, now| {
            match stack.send(now, e.id, &data[sent..]) {
                Ok(n) => {
                    sent += n;
                    if sent < data.len() && !nonblocking {
                        Err(Error::WouldBlock)
                    } else {
                        Ok(sent)
                    }
                }
                Err(Error::WouldBlock) if sent > 0 && nonblocking => Ok(sent),
                Err(err) => Err(err),
            }
        });
        match r {
            Err(_) if sent > 0 => Ok(sent),
            r => r,
        }
    }

    /// recv(): at least one byte, 0 at end of stream.
    pub fn recv(&self, fd: i32, buf: &mut [u8], flags: MsgFlags) -> Result<usize> {
        let e = self.fds.get(fd)?;
        let nonblocking = flags.dont_wait || e.is_nonblocking();
        let timeout = FdEntry::timeout(&e.recv_timeout);
        let mut got = 0;
        let r = self.blocking(&e, nonblocking, timeout, |stack, now| {
            match stack.recv(now, e.id, &mut buf[got..], flags.peek) {
                Ok(0) => Ok(got),
                Ok(n) if flags.wait_all && !flags.peek && got + n < buf.len() && !nonblocking => {
                    got += n;
                    Err(Error::WouldBlock)
                }
                Ok(n) => Ok(got + n),
                Err(Error::WouldBlock) if got > 0 && nonblocking => Ok(got),
                Err(err) => Err(err),
            }
        });
        match r {
            Err(_) if got > 0 => Ok(got),
            r => r,
        }
    }

    /// shutdown(): also wakes threads blocked on the socket.
    pub fn shutdown(&self, fd: i32, how: Shutdown) -> Result<()> {
        let e = self.fds.get(fd)?;
        let mut inner = self.lock();
        let now = self.shared.now();
        let (read, write) = match how {
            Shutdown::Read => (true, false),
            Shutdown::Write => (false, true),
            Shutdown::Both => (true, true),
        };
        let r = inner.stack.shutdown(now, e.id, read, write);
        e.cond.notify_all();
        self.shared.any_change.notify_all();
        self.shared.signal_readiness();
        self.finish(inner);
        r
    }

    /// close(): the descriptor is gone at once; a connection closes in the
    /// background. Threads blocked on it wake with EBADF.
    pub fn close(&self, fd: i32) -> Result<()> {
        let e = self.fds.remove(fd)?;
        let mut inner = self.lock();
        let now = self.shared.now();
        inner.conds.remove(&e.id);
        let linger = inner.stack.options(e.id).ok().and_then(|o| o.linger);
        let ends = inner.stack.tcb(e.id).map(|t| (t.local(), t.remote()));
        let r = match linger {
            // SO_LINGER with a zero timeout: reset at once, drop what is queued.
            Some(d) if d.is_zero() => inner.stack.abort(now, e.id),
            _ => inner.stack.close(now, e.id),
        };
        e.cond.notify_all();
        self.shared.any_change.notify_all();
        self.shared.signal_readiness();
        if let (Some(d), Some(ends)) = (linger, ends) {
            if !d.is_zero() {
                inner = self.linger(inner, ends, d);
            }
        }
        self.finish(inner);
        r
    }

    /// SO_LINGER: close waits until the connection has delivered its data
    /// and FIN, or the time is up (then it goes on in the background).
    fn linger<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        ends: (SocketAddrV4, SocketAddrV4),
        limit: Duration,
    ) -> MutexGuard<'a, Inner> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if inner.stack.needs_io_thread() {
                self.shared.wake();
            }
            let delivering = inner
                .stack
                .connections()
                .any(|(_, t)| (t.local(), t.remote()) == ends && t.is_delivering());
            if !delivering || std::time::Instant::now() >= deadline || self.shared.is_dead() {
                return inner;
            }
            self.shared.any_change.wait_until(&mut inner, deadline);
        }
    }

    /// getsockname().
    pub fn local_addr(&self, fd: i32) -> Result<SocketAddrV4> {
        let e = self.fds.get(fd)?;
        self.lock().stack.local_addr(e.id)
    }

    /// getpeername().
    pub fn peer_addr(&self, fd: i32) -> Result<SocketAddrV4> {
        let e = self.fds.get(fd)?;
        self.lock().stack.peer_addr(e.id)
    }

    /// The connection state (for tests and tools).
    pub fn state(&self, fd: i32) -> Result<State> {
        let e = self.fds.get(fd)?;
        self.lock().stack.state(e.id)
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
        let mut inner = self.lock();
        let done = loop {
            let busy = inner.stack.has_pending_output()
                || inner.stack.connections().any(|(_, t)| t.is_delivering());
            if !busy {
                break true;
            }
            if std::time::Instant::now() >= deadline {
                break false;
            }
            let step = std::time::Instant::now() + Duration::from_millis(50);
            self.shared
                .any_change
                .wait_until(&mut inner, step.min(deadline));
        };
        drop(inner);
        self.stop();
        done
    }
}

static GLOBAL: OnceLock<std::result::Result<Sockets, Error>> = OnceLock::new();
static EXPLICIT: Mutex<Option<RuntimeConfig>> = Mutex::new(None);

/// Sets the configuration of the process-wide sockets before first use;
/// EALREADY once they are running.
pub fn init(cfg: RuntimeConfig) -> Result<()> {
    let mut explicit = EXPLICIT.lock();
    if GLOBAL.get().is_some() {
        return Err(Error::Already);
    }
    *explicit = Some(cfg);
    drop(explicit);
    global().map(|_| ())
}

static EXIT_LINGER: Mutex<Duration> = Mutex::new(Duration::from_secs(10));

/// The process-wide sockets the C ABI uses, started on first use from
/// `rs_init`'s configuration or the environment.
pub fn global() -> Result<&'static Sockets> {
    let r = GLOBAL.get_or_init(|| {
        let cfg = match EXPLICIT.lock().clone() {
            Some(cfg) => cfg,
            None => RuntimeConfig::from_env()?,
        };
        let s = Sockets::start(&cfg)?;
        *EXIT_LINGER.lock() = cfg.exit_linger;
        // SAFETY: registering a plain extern "C" function with no arguments.
        unsafe {
            libc::atexit(finish_at_exit);
        }
        Ok(s)
    });
    r.as_ref().map_err(|e| *e)
}

/// Runs at process exit: delivers what closing connections still owe.
extern "C" fn finish_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(Ok(s)) = GLOBAL.get() {
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
