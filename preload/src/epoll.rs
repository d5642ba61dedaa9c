//! epoll over rstcp sockets beside the program's kernel descriptors.
//!
//! The program's epoll descriptor stays a real kernel epoll instance with
//! its kernel descriptors in it. For the rstcp sockets in it the shim keeps
//! an interest list, and registers a lasting watch for each with the stack:
//! a change that matters leaves the socket's number in the set's waiter and
//! makes the set's eventfd readable. That eventfd sits inside the real
//! epoll instance, so a thread in epoll_wait — or a poll or an outer epoll
//! that holds this epoll descriptor — wakes. epoll_wait then looks only at
//! the sockets noted, never at the whole interest list.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rstcp::runtime::{DeviceLeaders, Waiter};
use rstcp::sys;

use crate::fds::{self, DUAL, OURS, PENDING};
use crate::real;
use crate::route::{self, errno, fail};

/// The data of the set's own eventfd inside the real epoll instance.
const MARKER: u64 = 0x7273_7463_705f_6566; // "rstcp_ef"

const EPOLLET: u32 = libc::EPOLLET as u32;
const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;
/// Events reported whether asked for or not.
const ALWAYS: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
/// The readiness bits epoll shares with poll (same values).
const LEVEL_BITS: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLPRI | libc::EPOLLRDHUP) as u32 | ALWAYS;

#[derive(Debug)]
struct Interest {
    events: u32,
    data: u64,
    /// False after an EPOLLONESHOT event, until EPOLL_CTL_MOD.
    armed: bool,
    /// In the ready queue.
    queued: bool,
}

#[derive(Debug)]
struct Set {
    waiter: Arc<Waiter>,
    efd: c_int,
    interest: HashMap<c_int, Interest>,
    ready: VecDeque<c_int>,
    /// Alternates which side fills a short event array first, so that
    /// neither ours nor the kernel's descriptors starve the other.
    kernel_first: bool,
}

static SETS: Mutex<Option<HashMap<c_int, Arc<Mutex<Set>>>>> = Mutex::new(None);
/// How many sets exist (close skips the map while there are none).
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn lookup(epfd: c_int) -> Option<Arc<Mutex<Set>>> {
    // In a child of the stack's process the sets are the parent's (their
    // locks may have been copied held): its epoll is the kernel's alone.
    if COUNT.load(Ordering::Acquire) == 0 || rstcp::api::in_forked_child() {
        return None;
    }
    SETS.lock().as_ref()?.get(&epfd).cloned()
}

/// The set of `epfd`, made (with its eventfd inside the real instance) on
/// first use.
fn set_of(epfd: c_int) -> Result<Arc<Mutex<Set>>, i32> {
    let mut sets = SETS.lock();
    let map = sets.get_or_insert_with(HashMap::new);
    if let Some(s) = map.get(&epfd) {
        return Ok(s.clone());
    }
    let waiter = Arc::new(Waiter::default());
    let efd = waiter
        .eventfd()
        .map_err(|e| e.raw_os_error().unwrap_or(libc::ENOMEM))?;
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: MARKER,
    };
    if unsafe { real::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, efd, &mut ev) } < 0 {
        return Err(errno());
    }
    let set = Arc::new(Mutex::new(Set {
        waiter,
        efd,
        interest: HashMap::new(),
        ready: VecDeque::new(),
        kernel_first: false,
    }));
    map.insert(epfd, set.clone());
    COUNT.fetch_add(1, Ordering::AcqRel);
    Ok(set)
}

/// Queues `fd` if it is ready now for what its interest asks.
fn check_now(set: &mut Set, fd: c_int) {
    let Some(st) = route::running() else { return };
    let Some(i) = set.interest.get_mut(&fd) else {
        return;
    };
    let mask = st.sockets.readiness(fd).unwrap_or(0) as u16 as u32;
    if i.armed && !i.queued && mask & (i.events | ALWAYS) & LEVEL_BITS != 0 {
        i.queued = true;
        set.ready.push_back(fd);
        sys::eventfd_signal(set.efd);
    }
}

/// EPOLL_CTL_* for one of our sockets.
fn ours_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> Result<(), i32> {
    let st = route::running().ok_or(libc::EIO)?;
    if epfd == fd {
        return Err(libc::EINVAL);
    }
    if unsafe { real::fcntl(epfd, libc::F_GETFD, 0) } < 0 {
        return Err(libc::EBADF);
    }
    let set = set_of(epfd)?;
    let mut s = set.lock();
    let want = |ev: *mut libc::epoll_event| {
        if ev.is_null() {
            Err(libc::EFAULT)
        } else {
            Ok(unsafe { ((*ev).events, (*ev).u64) })
        }
    };
    match op {
        libc::EPOLL_CTL_ADD => {
            let (events, data) = want(ev)?;
            if s.interest.contains_key(&fd) {
                return Err(libc::EEXIST);
            }
            st.sockets
                .watch(
                    fd,
                    &s.waiter,
                    (events & LEVEL_BITS) as u16 as i16,
                    fd as u64,
                )
                .map_err(|e| e.errno())?;
            s.interest.insert(
                fd,
                Interest {
                    events,
                    data,
                    armed: true,
                    queued: false,
                },
            );
            check_now(&mut s, fd);
        }
        libc::EPOLL_CTL_MOD => {
            let (events, data) = want(ev)?;
            let waiter = s.waiter.clone();
            let i = s.interest.get_mut(&fd).ok_or(libc::ENOENT)?;
            i.events = events;
            i.data = data;
            i.armed = true;
            st.sockets.unwatch(fd, &waiter, fd as u64);
            st.sockets
                .watch(fd, &waiter, (events & LEVEL_BITS) as u16 as i16, fd as u64)
                .map_err(|e| e.errno())?;
            check_now(&mut s, fd);
        }
        libc::EPOLL_CTL_DEL => {
            s.interest.remove(&fd).ok_or(libc::ENOENT)?;
            st.sockets.unwatch(fd, &s.waiter, fd as u64);
        }
        _ => return Err(libc::EINVAL),
    }
    Ok(())
}

/// Moves what became ready into `out`; how many entries it filled.
fn collect(set: &Arc<Mutex<Set>>, out: &mut [libc::epoll_event]) -> usize {
    let Some(st) = route::running() else { return 0 };
    let mut s = set.lock();
    sys::eventfd_drain(s.efd);
    let mut notes = Vec::new();
    s.waiter.take_notes(&mut notes);
    for fd in notes {
        let fd = fd as c_int;
        if let Some(i) = s.interest.get_mut(&fd) {
            if !i.queued {
                i.queued = true;
                s.ready.push_back(fd);
            }
        }
    }
    let mut n = 0;
    for _ in 0..s.ready.len() {
        let Some(fd) = s.ready.pop_front() else { break };
        let mask = st.sockets.readiness(fd).map(|m| m as u16 as u32);
        let Some(i) = s.interest.get_mut(&fd) else {
            continue;
        };
        i.queued = false;
        let Ok(mask) = mask else { continue };
        let ev = mask & (i.events | ALWAYS) & LEVEL_BITS;
        if !i.armed || ev == 0 {
            continue;
        }
        if n == out.len() {
            i.queued = true;
            s.ready.push_back(fd);
            continue;
        }
        out[n] = libc::epoll_event {
            events: ev,
            u64: i.data,
        };
        n += 1;
        if i.events & EPOLLONESHOT != 0 {
            i.armed = false;
        } else if i.events & EPOLLET == 0 {
            // Level-triggered: reported again while it stays ready.
            i.queued = true;
            s.ready.push_back(fd);
        }
    }
    if !s.ready.is_empty() {
        // Keep the epoll descriptor readable for whoever polls it.
        sys::eventfd_signal(s.efd);
    }
    n
}

/// Drops the set's own eventfd entries from kernel results; (count, seen).
fn strip_marker(out: &mut [libc::epoll_event]) -> (usize, bool) {
    let mut kept = 0;
    let mut seen = false;
    for i in 0..out.len() {
        let e = out[i];
        if e.u64 == MARKER {
            seen = true;
        } else {
            out[kept] = e;
            kept += 1;
        }
    }
    (kept, seen)
}

fn wait(
    epfd: c_int,
    set: Arc<Mutex<Set>>,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: Option<Duration>,
    mask: *const libc::sigset_t,
) -> c_int {
    if events.is_null() || max <= 0 {
        return fail(if events.is_null() {
            libc::EFAULT
        } else {
            libc::EINVAL
        });
    }
    let out = unsafe { std::slice::from_raw_parts_mut(events, max as usize) };
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let kernel_first = {
        let mut s = set.lock();
        s.kernel_first = !s.kernel_first;
        s.kernel_first
    };
    if kernel_first {
        // The kernel's ready descriptors first, then ours, no waiting.
        let r = unsafe { real::epoll_pwait(epfd, out.as_mut_ptr(), max, 0, mask) };
        if r < 0 {
            return -1;
        }
        let (k, _) = strip_marker(&mut out[..r as usize]);
        let n = collect(&set, &mut out[k..]);
        if k + n > 0 {
            return (k + n) as c_int;
        }
    }
    // Wait on the TUN device too, if no other thread does: a packet for
    // one of ours then wakes this thread alone, which takes it in (the
    // set's eventfd is how a thread taking over wakes this one).
    let efd = set.lock().efd;
    let stack = route::running();
    let mut lead = stack.map_or_else(DeviceLeaders::default, |st| st.sockets.lead_devices(efd));
    // The set itself, then one queue per shard (at most 64).
    let mut fds = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; 65];
    loop {
        let n = collect(&set, out);
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ms = match (n, left) {
            (0, None) => -1,
            (0, Some(l)) => l.as_micros().div_ceil(1000).min(i32::MAX as u128) as c_int,
            _ => 0,
        };
        // The queues taken over (or stopped) are let go.
        lead.keep_leading();
        let mut polled = 1;
        fds[0].fd = epfd;
        for l in lead.iter().take(fds.len() - 1) {
            fds[polled].fd = l.device_fd().unwrap_or(-1);
            polled += 1;
        }
        let leading = polled > 1;
        if leading && ms != 0 {
            for f in &mut fds[..polled] {
                f.revents = 0;
            }
            let ts = left.map(|l| libc::timespec {
                tv_sec: l.as_secs().min(i64::MAX as u64) as libc::time_t,
                tv_nsec: l.subsec_nanos() as libc::c_long,
            });
            let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
            // SAFETY: `polled` valid pollfds; timespec and mask valid or NULL.
            let r = unsafe { real::ppoll(fds.as_mut_ptr(), polled as _, tsp, mask) };
            if r < 0 {
                return -1;
            }
            if r == 0 {
                return 0; // the time is up
            }
            for (l, f) in lead.iter().zip(&fds[1..polled]) {
                if f.revents != 0 {
                    l.take_in();
                }
            }
            if fds[0].revents == 0 {
                continue; // only packets: see what they made ready
            }
        }
        let ms = if leading { 0 } else { ms };
        let rest = &mut out[n..];
        let r = if rest.is_empty() {
            0
        } else {
            unsafe { real::epoll_pwait(epfd, rest.as_mut_ptr(), rest.len() as c_int, ms, mask) }
        };
        if r < 0 {
            return if n > 0 { n as c_int } else { -1 };
        }
        let (k, seen) = strip_marker(&mut rest[..r as usize]);
        if n + k > 0 {
            return (n + k) as c_int;
        }
        if !seen {
            return 0; // the time is up
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn epoll_create(size: c_int) -> c_int {
    crate::guard("epoll_create", || {
        let fd = unsafe { real::epoll_create(size) };
        route::clear_stale(fd);
        // A set left by an epoll descriptor closed behind the shim's back.
        forget_set(fd);
        fd
    })
}

#[no_mangle]
pub unsafe extern "C" fn epoll_create1(flags: c_int) -> c_int {
    crate::guard("epoll_create1", || {
        let fd = unsafe { real::epoll_create1(flags) };
        route::clear_stale(fd);
        // A set left by an epoll descriptor closed behind the shim's back.
        forget_set(fd);
        fd
    })
}

#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    ev: *mut libc::epoll_event,
) -> c_int {
    crate::guard("epoll_ctl", || match fds::kind(fd) {
        OURS => match ours_ctl(epfd, op, fd, ev) {
            Ok(()) => 0,
            Err(e) => fail(e),
        },
        DUAL => {
            let r = unsafe { real::epoll_ctl(epfd, op, fd, ev) };
            if r == 0 {
                let _ = ours_ctl(epfd, op, fd, ev);
                remember(epfd, op, fd, ev);
            }
            r
        }
        PENDING => {
            let r = unsafe { real::epoll_ctl(epfd, op, fd, ev) };
            if r == 0 {
                remember(epfd, op, fd, ev);
            }
            r
        }
        _ => unsafe { real::epoll_ctl(epfd, op, fd, ev) },
    })
}

/// Notes which epoll sets a kernel socket of ours joined, so that the
/// registration can follow it when it changes kind (epoll_ctl before
/// connect), or be dropped (a dual listener that connects).
fn remember(epfd: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) {
    let (events, data) = if ev.is_null() {
        (0, 0)
    } else {
        unsafe { ((*ev).events, (*ev).u64) }
    };
    fds::with_detail(fd, |d| {
        d.epolls.retain(|&(e, _, _)| e != epfd);
        if op != libc::EPOLL_CTL_DEL {
            d.epolls.push((epfd, events, data));
        }
    });
}

#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    crate::guard("epoll_wait", || unsafe {
        epoll_pwait(epfd, events, max, timeout, std::ptr::null())
    })
}

#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const libc::sigset_t,
) -> c_int {
    crate::guard("epoll_pwait", || match lookup(epfd) {
        Some(set) => {
            let t = (timeout >= 0).then(|| Duration::from_millis(timeout as u64));
            wait(epfd, set, events, max, t, mask)
        }
        None => unsafe { real::epoll_pwait(epfd, events, max, timeout, mask) },
    })
}

#[no_mangle]
pub unsafe extern "C" fn epoll_pwait2(
    epfd: c_int,
    events: *mut libc::epoll_event,
    max: c_int,
    t: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    crate::guard("epoll_pwait2", || match lookup(epfd) {
        Some(set) => {
            let timeout = (!t.is_null()).then(|| unsafe {
                Duration::new(
                    (*t).tv_sec.max(0) as u64,
                    (*t).tv_nsec.clamp(0, 999_999_999) as u32,
                )
            });
            wait(epfd, set, events, max, timeout, mask)
        }
        None => unsafe { real::epoll_pwait2(epfd, events, max, t, mask) },
    })
}

/// A pending socket that became ours (or dual) takes its epoll
/// registrations along.
pub fn adopt(fd: c_int, epolls: &[(c_int, u32, u64)]) {
    let dual = fds::kind(fd) == DUAL;
    for &(epfd, events, data) in epolls {
        if !dual {
            // The placeholder must never report readiness of its own.
            unsafe { real::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        }
        let mut ev = libc::epoll_event { events, u64: data };
        let _ = ours_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev);
    }
}

/// Our socket `fd` closes: it leaves every set (as a closed descriptor
/// leaves the kernel's epoll sets).
pub fn forget(fd: c_int) {
    if COUNT.load(Ordering::Acquire) == 0 || route::in_child() {
        return;
    }
    let sets: Vec<_> = SETS
        .lock()
        .as_ref()
        .map_or(Vec::new(), |m| m.values().cloned().collect());
    for set in sets {
        let mut s = set.lock();
        if s.interest.remove(&fd).is_some() {
            if let Some(st) = route::running() {
                st.sockets.unwatch(fd, &s.waiter, fd as u64);
            }
        }
    }
}

/// Every set whose epoll descriptor is in `first..=last` goes (close_range).
pub fn forget_sets_in(first: c_int, last: c_int) {
    if COUNT.load(Ordering::Acquire) == 0 || route::in_child() {
        return;
    }
    let doomed: Vec<c_int> = SETS.lock().as_ref().map_or(Vec::new(), |m| {
        m.keys()
            .copied()
            .filter(|&e| e >= first && e <= last)
            .collect()
    });
    for epfd in doomed {
        forget_set(epfd);
    }
}

/// The epoll descriptor `epfd` closes: its set goes too.
pub fn forget_set(epfd: c_int) {
    if COUNT.load(Ordering::Acquire) == 0 || route::in_child() {
        return;
    }
    let Some(set) = SETS.lock().as_mut().and_then(|m| m.remove(&epfd)) else {
        return;
    };
    COUNT.fetch_sub(1, Ordering::AcqRel);
    let s = set.lock();
    if let Some(st) = route::running() {
        for &fd in s.interest.keys() {
            st.sockets.unwatch(fd, &s.waiter, fd as u64);
        }
    }
}

/// Locks the map across fork() (see `lib.rs`).
pub(crate) fn hold_for_fork() {
    std::mem::forget(SETS.lock());
}

/// Unlocks what [`hold_for_fork`] locked, in the parent and in the child.
pub(crate) fn release_after_fork() {
    // SAFETY: locked by hold_for_fork in this very thread, just before fork.
    unsafe { SETS.force_unlock() };
}
