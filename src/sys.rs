//! The system calls the library makes on its own behalf, made as raw
//! `syscall(2)`s rather than through libc's wrappers of the same names.
//!
//! Why: under the LD_PRELOAD shim, libc's `read`, `write`, `poll`, `close`
//! … are the shim's hooks. The I/O thread and the library's own
//! descriptors (TUN device, eventfds) must never go through them: a hook
//! that consults the stack from inside the stack deadlocks or recurses.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

fn check(r: libc::c_long) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// read(2).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the buffer is valid and writable for its length.
    check(unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) })
}

/// write(2).
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the buffer is valid and readable for its length.
    check(unsafe { libc::syscall(libc::SYS_write, fd, buf.as_ptr(), buf.len()) })
}

/// readv(2) into two buffers: a header and the rest.
pub fn read2(fd: RawFd, head: &mut [u8], body: &mut [u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: head.as_mut_ptr().cast(),
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_mut_ptr().cast(),
            iov_len: body.len(),
        },
    ];
    // SAFETY: both buffers are valid and writable for their lengths.
    check(unsafe { libc::syscall(libc::SYS_readv, fd, iov.as_ptr(), 2) })
}

/// writev(2) of two buffers: a header and the rest.
pub fn write2(fd: RawFd, head: &[u8], body: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: both buffers are valid and readable for their lengths.
    unsafe { writev(fd, &iov) }
}

/// writev(2) of any number of buffers.
///
/// # Safety
/// Every `iovec` must describe memory readable for its length until this
/// returns.
pub unsafe fn writev(fd: RawFd, iov: &[libc::iovec]) -> io::Result<usize> {
    check(libc::syscall(
        libc::SYS_writev,
        fd,
        iov.as_ptr(),
        iov.len() as libc::c_int,
    ))
}

/// ioctl(2) with an integer argument.
pub fn ioctl_int(fd: RawFd, request: libc::c_ulong, arg: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the request takes its argument by value.
    check(unsafe { libc::syscall(libc::SYS_ioctl, fd, request, arg) }).map(|_| ())
}

/// close(2).
pub fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this library owns.
    unsafe {
        libc::syscall(libc::SYS_close, fd);
    }
}

/// eventfd2(2), non-blocking and close-on-exec.
pub fn eventfd() -> io::Result<RawFd> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_eventfd2,
            0,
            libc::EFD_NONBLOCK | libc::EFD_CLOEXEC,
        )
    };
    check(r).map(|fd| fd as RawFd)
}

/// A new epoll set (close-on-exec). It is only ever polled as a whole
/// (it reads as readable when one of its members is), so a descriptor can
/// move between the sets of sleeping threads without waking them.
pub fn epoll_create() -> io::Result<RawFd> {
    // SAFETY: plain syscall with an integer argument.
    check(unsafe { libc::syscall(libc::SYS_epoll_create1, libc::EPOLL_CLOEXEC) })
        .map(|fd| fd as RawFd)
}

/// Adds `fd` to epoll set `ep` (readable, level-triggered), or removes it.
pub fn epoll_watch(ep: RawFd, fd: RawFd, on: bool) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    let op = if on {
        libc::EPOLL_CTL_ADD
    } else {
        libc::EPOLL_CTL_DEL
    };
    // SAFETY: the event is valid for the call (ignored for DEL).
    check(unsafe {
        libc::syscall(
            libc::SYS_epoll_ctl,
            ep,
            op,
            fd,
            &mut ev as *mut libc::epoll_event,
        )
    })
    .map(|_| ())
}

/// epoll_wait(2): the members of set `ep` that are ready, into `out`;
/// waits at most `timeout` (rounded up to whole milliseconds).
pub fn epoll_wait(
    ep: RawFd,
    out: &mut [libc::epoll_event],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let ms = timeout.map_or(-1, |t| {
        t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
    });
    // SAFETY: `out` is valid and writable for its length; no signal mask.
    check(unsafe {
        libc::syscall(
            libc::SYS_epoll_pwait,
            ep,
            out.as_mut_ptr(),
            out.len() as i32,
            ms,
            std::ptr::null::<libc::sigset_t>(),
            0usize,
        )
    })
}

/// Adds one to an eventfd (it becomes readable).
pub fn eventfd_signal(fd: RawFd) {
    let _ = write(fd, &1u64.to_ne_bytes());
}

/// Reads an eventfd back to zero.
pub fn eventfd_drain(fd: RawFd) {
    let mut v = [0u8; 8];
    let _ = read(fd, &mut v);
}

/// fcntl(F_DUPFD_CLOEXEC): a descriptor of the library's own for the same file.
pub fn dup_cloexec(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, 3) };
    check(r).map(|fd| fd as RawFd)
}

/// fcntl(2) with an integer argument.
pub fn fcntl(fd: RawFd, cmd: i32, arg: i64) -> io::Result<usize> {
    // SAFETY: plain syscall with integer arguments.
    check(unsafe { libc::syscall(libc::SYS_fcntl, fd, cmd, arg) })
}

/// ppoll(2) with a relative timeout (None = forever) and no signal mask
/// change, so that a signal handler interrupts it (EINTR).
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ts = timeout.map(timespec);
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the pollfd slice and the timespec are valid for the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_ppoll,
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            tsp,
            std::ptr::null::<libc::sigset_t>(),
            0usize,
        )
    })
}

/// The calling process's id, asked of the kernel (never a cached value).
pub fn getpid() -> i32 {
    // SAFETY: plain syscall without arguments.
    unsafe { libc::syscall(libc::SYS_getpid) as i32 }
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// The kernel's `struct sigaction` (rt_sigaction's layout on x86-64 and
/// arm64).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// True if every signal handler the program installed has SA_RESTART. A
/// wait the kernel would restart after such a handler, but that had to end
/// with EINTR (a ppoll over several descriptors), may then go on instead.
pub fn all_handlers_restart() -> bool {
    for sig in 1..=64 {
        // glibc's own (thread cancellation, set*id) are not the program's.
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == 32 || sig == 33 {
            continue;
        }
        let mut old = KernelSigaction {
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: reads the action into `old`; the set size is the kernel's.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<KernelSigaction>(),
                &mut old as *mut KernelSigaction,
                8usize,
            )
        };
        let installed = old.handler != libc::SIG_DFL && old.handler != libc::SIG_IGN;
        if r == 0 && installed && old.flags & libc::SA_RESTART as u64 == 0 {
            return false;
        }
    }
    true
}

/// How a futex wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Woken, or the word had already changed: look again.
    Woken,
    /// The timeout passed.
    TimedOut,
    /// A signal handler ran (EINTR).
    Interrupted,
}

/// Sleeps while `word` still holds `seen`, at most `timeout` (None =
/// forever). Unlike a condition variable, a signal handler ends the wait.
pub fn futex_wait(word: &AtomicU32, seen: u32, timeout: Option<Duration>) -> Wake {
    let ts = timeout.map(timespec);
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            seen,
            tsp,
        )
    };
    if r == 0 {
        return Wake::Woken;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => Wake::TimedOut,
        Some(libc::EINTR) => Wake::Interrupted,
        _ => Wake::Woken,
    }
}

/// True if some signal has a handler installed without SA_RESTART: a
/// system call a handler interrupts may then have to say EINTR. Asked
/// after a wait that cannot tell (poll(2) says EINTR for every handler,
/// where an untimed futex wait or read(2) is restarted after an
/// SA_RESTART one).
pub fn handler_without_restart() -> bool {
    (1..=64).any(|sig| {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            return false;
        }
        // SAFETY: a query (no new action) into a zeroed struct we own.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
        r == 0
            && old.sa_sigaction != libc::SIG_DFL
            && old.sa_sigaction != libc::SIG_IGN
            && old.sa_flags & libc::SA_RESTART == 0
    })
}

/// Wakes every thread sleeping on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// A file the library owns, written and closed with raw system calls (the
/// pcap capture, written from the I/O thread).
#[derive(Debug)]
pub struct RawFile(RawFd);

impl RawFile {
    /// Takes ownership of an open descriptor.
    pub fn new(file: std::fs::File) -> RawFile {
        RawFile(std::os::fd::IntoRawFd::into_raw_fd(file))
    }
}

impl io::Write for RawFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write(self.0, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RawFile {
    fn drop(&mut self) {
        close(self.0);
    }
}
