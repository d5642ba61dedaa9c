//! Waiting on a mix of rstcp sockets and kernel descriptors.
//!
//! The rstcp half registers the thread's waiter with the stack (it wakes
//! only for events this wait asked for); the kernel half, plus the waiter's
//! eventfd, goes to a real ppoll. Signals interrupt the wait (EINTR), as
//! they do the kernel's poll.

use std::cell::RefCell;
use std::ffi::c_int;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rstcp::api::PollFd;
use rstcp::runtime::{DeviceLeaders, Waiter};
use rstcp::sys;

use crate::fds::{self, DUAL, OURS};
use crate::real;
use crate::route::{errno, Stack};

/// True if any entry is a placed socket (else the kernel can do it all).
pub fn any_placed(set: &[libc::pollfd]) -> bool {
    set.iter().any(|p| matches!(fds::kind(p.fd), OURS | DUAL))
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// The split of one poll set, kept per thread so a wait allocates nothing
/// once the vectors have grown.
#[derive(Default)]
struct Split {
    /// The entries the stack answers, and where each is in the set.
    ours: Vec<PollFd>,
    index: Vec<usize>,
    /// The entries the kernel answers (then the waiter's eventfd, and the
    /// device while this thread leads), and where each is in the set.
    kernel: Vec<libc::pollfd>,
    kindex: Vec<usize>,
}

thread_local! {
    static SPLIT: RefCell<Split> = RefCell::new(Split::default());
}

/// poll(2) over `set`, where entries may be ours, dual or the kernel's:
/// the number of ready entries, or an errno. `timeout` None waits forever;
/// `sigmask` is ppoll's.
pub fn mixed_poll(
    st: &Stack,
    waiter: &Arc<Waiter>,
    set: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: Option<*const libc::sigset_t>,
) -> Result<usize, i32> {
    // A handler that polls while this thread polls gets vectors of its own.
    let mut run = |split: &mut Split| mixed_poll_with(split, st, waiter, set, timeout, sigmask);
    let done = SPLIT.try_with(|s| s.try_borrow_mut().ok().map(|mut split| run(&mut split)));
    match done {
        Ok(Some(r)) => r,
        _ => run(&mut Split::default()),
    }
}

fn mixed_poll_with(
    split: &mut Split,
    st: &Stack,
    waiter: &Arc<Waiter>,
    set: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: Option<*const libc::sigset_t>,
) -> Result<usize, i32> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let efd = waiter
        .eventfd()
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
    let Split {
        ours,
        index,
        kernel,
        kindex,
    } = split;
    ours.clear();
    index.clear();
    kernel.clear();
    kindex.clear();
    // Which entries the stack answers; dual ones are asked of both.
    for (i, p) in set.iter().enumerate() {
        let kind = fds::kind(p.fd);
        if p.fd >= 0 && (kind == OURS || kind == DUAL) {
            ours.push(PollFd {
                fd: p.fd,
                events: p.events,
                revents: 0,
            });
            index.push(i);
        }
        if kind != OURS {
            kernel.push(*p);
            kindex.push(i);
        }
    }
    kernel.push(libc::pollfd {
        fd: efd,
        events: libc::POLLIN,
        revents: 0,
    });
    // Wait on the TUN device too, if no other thread does: a packet for
    // one of ours then wakes this thread alone, which takes it in.
    let extra = kernel.len();
    let mut lead = if ours.is_empty() {
        DeviceLeaders::default()
    } else {
        st.sockets.lead_devices(efd)
    };
    loop {
        kernel.truncate(extra);
        // The queues taken over (or stopped) are let go.
        lead.keep_leading();
        for l in lead.iter() {
            kernel.push(libc::pollfd {
                // One taken over since is skipped by poll(2) (-1).
                fd: l.device_fd().unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let last = left.is_some_and(|l| l.is_zero());
        sys::eventfd_drain(efd);
        let ready = st
            .sockets
            .poll_prepare(ours, (!last).then_some(waiter))
            .map_err(|e| e.errno())?;
        // With something of ours ready, only look at the kernel's side.
        let wait = if ready > 0 || last {
            Some(Duration::ZERO)
        } else {
            left
        };
        let ts = wait.map(timespec);
        let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
        let mask = sigmask.unwrap_or(std::ptr::null());
        // SAFETY: a valid pollfd array; timespec and mask valid or NULL.
        let r = unsafe { real::ppoll(kernel.as_mut_ptr(), kernel.len() as _, tsp, mask) };
        let err = errno();
        if r > 0 {
            for (l, d) in lead.iter().zip(&kernel[extra..]) {
                if d.revents != 0 {
                    l.take_in();
                }
            }
        }
        if ready == 0 && !last {
            st.sockets.poll_release(ours, waiter);
        }
        if r < 0 && !(err == libc::EINTR && ready > 0) {
            return Err(err);
        }
        if r < 0 {
            // Interrupted while ours were ready: report ours, as the kernel
            // reports what was ready rather than EINTR.
            for k in kernel.iter_mut() {
                k.revents = 0;
            }
        }
        let mut count = 0;
        for p in set.iter_mut() {
            p.revents = 0;
        }
        for (k, &i) in kernel.iter().zip(kindex.iter()) {
            set[i].revents |= k.revents;
        }
        // Ours may have become ready while we slept: look again, no waiting.
        if ready == 0 {
            st.sockets.poll_prepare(ours, None).map_err(|e| e.errno())?;
        }
        for (o, &i) in ours.iter().zip(index.iter()) {
            // A dual listener's two halves: POLLNVAL from the stack's half
            // (closed meanwhile) would hide the kernel half's answer.
            let nval = if fds::kind(set[i].fd) == DUAL {
                libc::POLLNVAL
            } else {
                0
            };
            set[i].revents |= o.revents & !nval;
        }
        for p in set.iter() {
            if p.revents != 0 {
                count += 1;
            }
        }
        if count > 0 || last {
            return Ok(count);
        }
        if left.is_some_and(|l| l.is_zero()) {
            return Ok(0);
        }
    }
}

fn stack_for(set: &[libc::pollfd]) -> Option<&'static Stack> {
    if any_placed(set) {
        crate::route::running()
    } else {
        None
    }
}

fn run(
    st: &Stack,
    set: &mut [libc::pollfd],
    timeout: Option<Duration>,
    sigmask: Option<*const libc::sigset_t>,
) -> c_int {
    match mixed_poll(st, &Waiter::current(), set, timeout, sigmask) {
        Ok(n) => n as c_int,
        Err(e) => crate::route::fail(e),
    }
}

unsafe fn slice<'a>(fds: *mut libc::pollfd, n: libc::nfds_t) -> Option<&'a mut [libc::pollfd]> {
    if fds.is_null() || n == 0 {
        None
    } else {
        Some(unsafe { std::slice::from_raw_parts_mut(fds, n as usize) })
    }
}

fn ms(timeout: c_int) -> Option<Duration> {
    (timeout >= 0).then(|| Duration::from_millis(timeout as u64))
}

#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int) -> c_int {
    crate::guard("poll", || {
        if let Some(set) = unsafe { slice(fds, n) } {
            if let Some(st) = stack_for(set) {
                return run(st, set, ms(timeout), None);
            }
        }
        unsafe { real::poll(fds, n, timeout) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut libc::pollfd,
    n: libc::nfds_t,
    timeout: c_int,
    size: usize,
) -> c_int {
    crate::guard("__poll_chk", || {
        if (n as usize).saturating_mul(std::mem::size_of::<libc::pollfd>()) > size {
            std::process::abort();
        }
        unsafe { poll(fds, n, timeout) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut libc::pollfd,
    n: libc::nfds_t,
    t: *const libc::timespec,
    mask: *const libc::sigset_t,
    size: usize,
) -> c_int {
    crate::guard("__ppoll_chk", || {
        if (n as usize).saturating_mul(std::mem::size_of::<libc::pollfd>()) > size {
            std::process::abort();
        }
        unsafe { ppoll(fds, n, t, mask) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut libc::pollfd,
    n: libc::nfds_t,
    t: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    crate::guard("ppoll", || {
        if let Some(set) = unsafe { slice(fds, n) } {
            if let Some(st) = stack_for(set) {
                let timeout = (!t.is_null()).then(|| unsafe {
                    Duration::new(
                        (*t).tv_sec.max(0) as u64,
                        (*t).tv_nsec.clamp(0, 999_999_999) as u32,
                    )
                });
                return run(st, set, timeout, (!mask.is_null()).then_some(mask));
            }
        }
        unsafe { real::ppoll(fds, n, t, mask) }
    })
}

/// select's sets as a poll set (only descriptors named in some set).
unsafe fn to_pollfds(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
) -> Vec<libc::pollfd> {
    let mut out = Vec::new();
    for fd in 0..n.clamp(0, libc::FD_SETSIZE as c_int) {
        let mut events = 0;
        unsafe {
            if !r.is_null() && libc::FD_ISSET(fd, r) {
                events |= libc::POLLIN;
            }
            if !w.is_null() && libc::FD_ISSET(fd, w) {
                events |= libc::POLLOUT;
            }
            if !e.is_null() && libc::FD_ISSET(fd, e) {
                events |= libc::POLLPRI;
            }
        }
        if events != 0 {
            out.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        }
    }
    out
}

/// Writes poll results back into select's sets; the count of bits set.
unsafe fn from_pollfds(
    set: &[libc::pollfd],
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
) -> c_int {
    let mut count = 0;
    unsafe {
        for s in [r, w, e] {
            if !s.is_null() {
                libc::FD_ZERO(s);
            }
        }
        for p in set {
            // As the kernel's select: errors and hang-ups make a descriptor
            // readable and writable, so the next call reports them.
            let bad = p.revents & (libc::POLLERR | libc::POLLHUP) != 0;
            let rd = libc::POLLIN | libc::POLLRDHUP;
            if !r.is_null() && p.events & libc::POLLIN != 0 && (p.revents & rd != 0 || bad) {
                libc::FD_SET(p.fd, r);
                count += 1;
            }
            if !w.is_null()
                && p.events & libc::POLLOUT != 0
                && (p.revents & libc::POLLOUT != 0 || bad)
            {
                libc::FD_SET(p.fd, w);
                count += 1;
            }
            if !e.is_null() && p.events & libc::POLLPRI != 0 && p.revents & libc::POLLPRI != 0 {
                libc::FD_SET(p.fd, e);
                count += 1;
            }
        }
    }
    count
}

unsafe fn select_mixed(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    timeout: Option<Duration>,
    mask: Option<*const libc::sigset_t>,
) -> Option<c_int> {
    let mut set = unsafe { to_pollfds(n, r, w, e) };
    let st = stack_for(&set)?;
    let rc = run(st, &mut set, timeout, mask);
    if rc < 0 {
        return Some(rc);
    }
    if set.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        // select(2) fails on a descriptor that is not open.
        return Some(crate::route::fail(libc::EBADF));
    }
    Some(unsafe { from_pollfds(&set, r, w, e) })
}

#[no_mangle]
pub unsafe extern "C" fn select(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    t: *mut libc::timeval,
) -> c_int {
    crate::guard("select", || {
        let timeout = (!t.is_null()).then(|| unsafe {
            Duration::from_secs((*t).tv_sec.max(0) as u64)
                + Duration::from_micros((*t).tv_usec.clamp(0, 999_999) as u64)
        });
        let start = Instant::now();
        match unsafe { select_mixed(n, r, w, e, timeout, None) } {
            Some(rc) => {
                if let Some(total) = timeout {
                    // Linux's select leaves the time not slept in the timeval.
                    let left = total.saturating_sub(start.elapsed());
                    unsafe {
                        (*t).tv_sec = left.as_secs() as libc::time_t;
                        (*t).tv_usec = left.subsec_micros() as libc::suseconds_t;
                    }
                }
                rc
            }
            None => unsafe { real::select(n, r, w, e, t) },
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn pselect(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    t: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    crate::guard("pselect", || {
        let timeout = (!t.is_null()).then(|| unsafe {
            Duration::new(
                (*t).tv_sec.max(0) as u64,
                (*t).tv_nsec.clamp(0, 999_999_999) as u32,
            )
        });
        let m = (!mask.is_null()).then_some(mask);
        match unsafe { select_mixed(n, r, w, e, timeout, m) } {
            Some(rc) => rc,
            None => unsafe { real::pselect(n, r, w, e, t, mask) },
        }
    })
}
