//! Calls on descriptor numbers themselves: fcntl, ioctl, dup*, close_range,
//! and the calls that hand out new numbers (which can never be ours).

use std::ffi::{c_char, c_int, c_uint, c_ulong};

use rstcp::rs_log;

use crate::fds::{self, DUAL, OURS};
use crate::real;
use crate::route::{self, fail};

/// The rstcp half of a new descriptor `new` that duplicates `fd`.
fn dup_placed(fd: c_int, new: c_int) {
    if new < 0 || rstcp::api::shares_owner_memory() {
        // A vfork()-style child's dup2 (a socket as a program's stdin)
        // must not touch its parent's tables.
        return;
    }
    route::clear_stale(new);
    let kind = fds::kind(fd);
    if kind != OURS && kind != DUAL {
        return;
    }
    let Some(st) = route::running() else { return };
    match st.sockets.dup(fd, new) {
        Ok(()) => {
            let view = fds::with_detail(fd, |d| d.nonblocking);
            if kind == DUAL {
                fds::with_detail(new, |d| d.nonblocking = view);
            }
            fds::set_kind(new, kind);
        }
        Err(e) => rs_log!(Warn, "preload: dup of fd {fd} to {new}: {e}"),
    }
}

#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    crate::guard("fcntl", || {
        let kind = fds::kind(fd);
        match cmd {
            libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
                let new = unsafe { real::fcntl(fd, cmd, arg) };
                dup_placed(fd, new);
                new
            }
            libc::F_SETFL if kind == OURS => {
                // The placeholder keeps the flags, so F_GETFL answers naturally.
                let r = unsafe { real::fcntl(fd, cmd, arg) };
                if r == 0 {
                    if let Some(st) = route::running() {
                        let _ = st
                            .sockets
                            .set_nonblocking(fd, arg as c_int & libc::O_NONBLOCK != 0);
                    }
                }
                r
            }
            libc::F_SETFL if kind == DUAL => {
                fds::with_detail(fd, |d| d.nonblocking = arg as c_int & libc::O_NONBLOCK != 0);
                unsafe { real::fcntl(fd, cmd, arg | libc::O_NONBLOCK as c_ulong) }
            }
            libc::F_GETFL if kind == DUAL => {
                let r = unsafe { real::fcntl(fd, cmd, arg) };
                let view = fds::with_detail(fd, |d| d.nonblocking);
                if r < 0 {
                    r
                } else if view {
                    r | libc::O_NONBLOCK
                } else {
                    r & !libc::O_NONBLOCK
                }
            }
            _ => unsafe { real::fcntl(fd, cmd, arg) },
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    crate::guard("fcntl64", || unsafe { fcntl(fd, cmd, arg) })
}

#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> c_int {
    crate::guard("ioctl", || {
        let kind = fds::kind(fd);
        if kind == OURS || kind == DUAL {
            match req {
                libc::FIONBIO => {
                    if arg == 0 {
                        return fail(libc::EFAULT);
                    }
                    let on = unsafe { *(arg as *const c_int) } != 0;
                    if kind == DUAL {
                        fds::with_detail(fd, |d| d.nonblocking = on);
                        return 0;
                    }
                    if let Some(st) = route::running() {
                        let _ = st.sockets.set_nonblocking(fd, on);
                    }
                }
                libc::FIONREAD if kind == OURS => {
                    if arg == 0 {
                        return fail(libc::EFAULT);
                    }
                    let Some(st) = route::running() else {
                        return fail(libc::EIO);
                    };
                    return match st.sockets.pending_bytes(fd) {
                        Ok(n) => {
                            unsafe { *(arg as *mut c_int) = n.min(c_int::MAX as usize) as c_int };
                            0
                        }
                        Err(e) => fail(e.errno()),
                    };
                }
                _ => {}
            }
        }
        unsafe { real::ioctl(fd, req, arg) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    crate::guard("dup", || {
        let new = unsafe { real::dup(fd) };
        dup_placed(fd, new);
        new
    })
}

#[no_mangle]
pub unsafe extern "C" fn dup2(fd: c_int, new: c_int) -> c_int {
    crate::guard("dup2", || unsafe { dup3_like(fd, new, None) })
}

#[no_mangle]
pub unsafe extern "C" fn dup3(fd: c_int, new: c_int, flags: c_int) -> c_int {
    crate::guard("dup3", || unsafe { dup3_like(fd, new, Some(flags)) })
}

unsafe fn dup3_like(fd: c_int, new: c_int, flags: Option<c_int>) -> c_int {
    if fd == new {
        return match flags {
            Some(_) => fail(libc::EINVAL),
            None => unsafe { real::dup2(fd, new) },
        };
    }
    let r = match flags {
        Some(f) => unsafe { real::dup3(fd, new, f) },
        None => unsafe { real::dup2(fd, new) },
    };
    if r >= 0 {
        // The kernel closed what `new` was: the shim forgets it now (an
        // rstcp socket there closes, an epoll set there goes).
        crate::epoll::forget_set(r);
        dup_placed(fd, r);
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    crate::guard("close_range", || {
        if flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 {
            let last = last.min(i32::MAX as c_uint) as c_int;
            let first = first.min(i32::MAX as c_uint) as c_int;
            for fd in fds::placed_in(first, last) {
                route::forget_placed(fd);
            }
            crate::epoll::forget_sets_in(first, last);
        }
        unsafe { real::close_range(first, last, flags) }
    })
}

fn fresh(fd: c_int) -> c_int {
    route::clear_stale(fd);
    fd
}

fn fresh_pair(r: c_int, fds: *mut c_int) -> c_int {
    if r == 0 && !fds.is_null() {
        unsafe {
            route::clear_stale(*fds);
            route::clear_stale(*fds.add(1));
        }
    }
    r
}

#[no_mangle]
pub unsafe extern "C" fn pipe(fds: *mut c_int) -> c_int {
    crate::guard("pipe", || fresh_pair(unsafe { real::pipe(fds) }, fds))
}

#[no_mangle]
pub unsafe extern "C" fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
    crate::guard("pipe2", || {
        fresh_pair(unsafe { real::pipe2(fds, flags) }, fds)
    })
}

#[no_mangle]
pub unsafe extern "C" fn socketpair(
    domain: c_int,
    ty: c_int,
    protocol: c_int,
    sv: *mut c_int,
) -> c_int {
    crate::guard("socketpair", || {
        fresh_pair(unsafe { real::socketpair(domain, ty, protocol, sv) }, sv)
    })
}

#[no_mangle]
pub unsafe extern "C" fn eventfd(init: c_uint, flags: c_int) -> c_int {
    crate::guard("eventfd", || fresh(unsafe { real::eventfd(init, flags) }))
}

#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    crate::guard("open", || fresh(unsafe { real::open(path, flags, mode) }))
}

#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    crate::guard("open64", || {
        fresh(unsafe { real::open64(path, flags, mode) })
    })
}

#[no_mangle]
pub unsafe extern "C" fn openat(
    dir: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    crate::guard("openat", || {
        fresh(unsafe { real::openat(dir, path, flags, mode) })
    })
}

#[no_mangle]
pub unsafe extern "C" fn openat64(
    dir: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    crate::guard("openat64", || {
        fresh(unsafe { real::openat64(dir, path, flags, mode) })
    })
}

#[no_mangle]
pub unsafe extern "C" fn signalfd(fd: c_int, mask: *const libc::sigset_t, flags: c_int) -> c_int {
    crate::guard("signalfd", || {
        fresh(unsafe { real::signalfd(fd, mask, flags) })
    })
}

#[no_mangle]
pub unsafe extern "C" fn timerfd_create(clock: c_int, flags: c_int) -> c_int {
    crate::guard("timerfd_create", || {
        fresh(unsafe { real::timerfd_create(clock, flags) })
    })
}

#[no_mangle]
pub unsafe extern "C" fn memfd_create(name: *const c_char, flags: c_uint) -> c_int {
    crate::guard("memfd_create", || {
        fresh(unsafe { real::memfd_create(name, flags) })
    })
}

#[no_mangle]
pub unsafe extern "C" fn inotify_init() -> c_int {
    crate::guard("inotify_init", || fresh(unsafe { real::inotify_init() }))
}

#[no_mangle]
pub unsafe extern "C" fn inotify_init1(flags: c_int) -> c_int {
    crate::guard("inotify_init1", || {
        fresh(unsafe { real::inotify_init1(flags) })
    })
}

/// Descriptors received with SCM_RIGHTS are new numbers too.
pub(crate) fn fresh_rights(msg: *const libc::msghdr) {
    if msg.is_null() {
        return;
    }
    // SAFETY: the kernel just filled this message header and its control
    // buffer; CMSG_* walk within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const c_int;
                let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..bytes / std::mem::size_of::<c_int>() {
                    route::clear_stale(std::ptr::read_unaligned(data.add(i)));
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
}
