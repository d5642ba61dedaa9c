//! socket, bind, listen, accept, connect, shutdown, close and the address
//! and option calls.

use std::ffi::{c_int, c_void};
use std::net::Ipv4Addr;
use std::sync::Arc;

use libc::{sockaddr, socklen_t};
use rstcp::ffi::{self, sockaddr as sa};
use rstcp::rs_log;
use rstcp::runtime::Waiter;

use crate::fds::{self, DUAL, KERNEL, OURS, PENDING};
use crate::route::{self, errno, fail, Stack};
use crate::{epoll, real};

const TYPE_MASK: c_int = 0xf;

#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    crate::guard("socket", || {
        let fd = unsafe { real::socket(domain, ty, protocol) };
        if fd < 0 || route::bypass() {
            return fd;
        }
        route::clear_stale(fd);
        let tcp = domain == libc::AF_INET
            && ty & TYPE_MASK == libc::SOCK_STREAM
            && (protocol == 0 || protocol == libc::IPPROTO_TCP);
        if tcp && route::stack().is_some() && !fds::set_kind(fd, PENDING) {
            rs_log!(
                Debug,
                "preload: fd {fd} goes to the kernel: beyond the shim's table"
            );
        }
        fd
    })
}

/// The kernel's port for `fd` (after its bind or autobind).
fn kernel_port(fd: c_int) -> Option<u16> {
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as socklen_t;
    let r = unsafe { real::getsockname(fd, &mut sin as *mut _ as *mut sockaddr, &mut len) };
    (r == 0).then(|| u16::from_be(sin.sin_port))
}

#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    crate::guard("bind", || {
        match fds::kind(fd) {
            OURS => unsafe { ffi::rs_bind(fd, addr, len) },
            PENDING => {
                let (Some(st), Ok(a)) = (route::running(), unsafe { sa::read(addr, len) }) else {
                    // Let the kernel give its answer to a malformed address.
                    return unsafe { real::bind(fd, addr, len) };
                };
                if *a.ip() == st.addr {
                    if route::make_ours(st, fd) {
                        return unsafe { ffi::rs_bind(fd, addr, len) };
                    }
                } else if a.ip().is_unspecified() {
                    let r = unsafe { real::bind(fd, addr, len) };
                    if r == 0 {
                        match kernel_port(fd) {
                            Some(port) => {
                                route::make_dual(st, fd, port);
                            }
                            None => route::to_kernel(fd, format_args!("no port after bind")),
                        }
                    }
                    return r;
                } else {
                    route::to_kernel(
                        fd,
                        format_args!("bound to {}, not the stack's address", a.ip()),
                    );
                }
                unsafe { real::bind(fd, addr, len) }
            }
            _ => unsafe { real::bind(fd, addr, len) },
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    crate::guard("listen", || {
        match fds::kind(fd) {
            OURS => {
                let r = ffi::rs_listen(fd, backlog);
                if r == 0 {
                    if let Some(Ok(a)) = route::running().map(|st| st.sockets.local_addr(fd)) {
                        rs_log!(Debug, "preload: fd {fd} listens on {a} through rstcp");
                    }
                }
                r
            }
            PENDING => {
                // listen() without bind: the kernel picks the port (INADDR_ANY),
                // and the stack listens on it too.
                let r = unsafe { real::listen(fd, backlog) };
                match (r, route::running(), kernel_port(fd)) {
                    (0, Some(st), Some(port)) if route::make_dual(st, fd, port) => {
                        listen_dual_half(st, fd, backlog);
                    }
                    (0, ..) => route::to_kernel(fd, format_args!("listen without bind")),
                    _ => {}
                }
                r
            }
            DUAL => {
                let r = unsafe { real::listen(fd, backlog) };
                if r == 0 {
                    if let Some(st) = route::running() {
                        listen_dual_half(st, fd, backlog);
                    }
                }
                r
            }
            _ => unsafe { real::listen(fd, backlog) },
        }
    })
}

fn listen_dual_half(st: &Stack, fd: c_int, backlog: c_int) {
    match st.sockets.listen(fd, backlog) {
        Ok(()) => {
            let port = st.sockets.local_addr(fd).map_or(0, |a| a.port());
            rs_log!(
                Debug,
                "preload: fd {fd} listens on port {port} through rstcp and the kernel"
            );
        }
        Err(e) => {
            rs_log!(Debug, "preload: fd {fd} listens on the kernel only: {e}");
            route::drop_dual_half(fd);
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    crate::guard("accept", || unsafe { accept4(fd, addr, len, 0) })
}

#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    crate::guard("accept4", || match fds::kind(fd) {
        OURS => unsafe { accept_ours(fd, addr, len, flags, None) },
        DUAL => unsafe { accept_dual(fd, addr, len, flags) },
        _ => {
            let nfd = unsafe { real::accept4(fd, addr, len, flags) };
            route::clear_stale(nfd);
            nfd
        }
    })
}

/// Accepts an rstcp connection into a new placeholder (or `placeholder`).
unsafe fn accept_ours(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
    placeholder: Option<c_int>,
) -> c_int {
    let Some(st) = route::running() else {
        return fail(libc::EIO);
    };
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return fail(libc::EINVAL);
    }
    if !addr.is_null() && len.is_null() {
        return fail(libc::EFAULT);
    }
    let ph = match placeholder {
        Some(ph) => ph,
        None => match new_placeholder(flags) {
            Some(ph) => ph,
            None => return -1,
        },
    };
    match st
        .sockets
        .accept(fd, flags & libc::SOCK_NONBLOCK != 0, Some(ph))
    {
        Ok((nfd, peer)) => {
            fds::set_kind(nfd, OURS);
            if let Err(e) = unsafe { sa::write(peer, addr, len) } {
                route::forget_placed(nfd);
                // A caller's placeholder is the caller's to close.
                if placeholder.is_none() {
                    unsafe { real::close(nfd) };
                }
                return fail(e.errno());
            }
            nfd
        }
        Err(e) => {
            if placeholder.is_none() {
                unsafe { real::close(ph) };
            }
            fail(e.errno())
        }
    }
}

/// A kernel socket whose number a new rstcp socket will use.
fn new_placeholder(flags: c_int) -> Option<c_int> {
    let ph = unsafe { real::socket(libc::AF_INET, libc::SOCK_STREAM | flags, 0) };
    if ph < 0 {
        return None;
    }
    route::clear_stale(ph);
    Some(ph)
}

/// accept on a listener of both the stack and the kernel: whichever
/// connection comes first. Both halves are non-blocking underneath; a
/// blocking caller waits in ppoll on the kernel listener and on a waiter
/// registered with the stack, so that signals interrupt it.
unsafe fn accept_dual(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    let Some(st) = route::running() else {
        // A forked child: the kernel half is all this process has.
        return unsafe { accept_kernel_half(fd, addr, len, flags) };
    };
    let Some(ph) = new_placeholder(flags & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)) else {
        return -1;
    };
    let nonblocking = fds::with_detail(fd, |d| d.nonblocking);
    let waiter: Arc<Waiter> = Waiter::current();
    let r = loop {
        let r = unsafe { accept_ours(fd, addr, len, flags, Some(ph)) };
        if r >= 0 || errno() != libc::EAGAIN {
            break r;
        }
        let k = unsafe { real::accept4(fd, addr, len, flags) };
        if k >= 0 {
            route::clear_stale(k);
            unsafe { real::close(ph) };
            return k;
        }
        if errno() != libc::EAGAIN || nonblocking {
            break -1;
        }
        let mut set = [libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }];
        match crate::wait::mixed_poll(st, &waiter, &mut set, None, None) {
            Ok(_) => {}
            // accept(2) is restarted after SA_RESTART handlers; this wait
            // (a ppoll) is not, so restart it here when that is what the
            // kernel would have done.
            Err(libc::EINTR) if rstcp::sys::all_handlers_restart() => {}
            Err(e) => break fail(e),
        }
    };
    if r < 0 {
        let e = errno();
        unsafe { real::close(ph) };
        return fail(e);
    }
    r
}

/// accept on the kernel half of a dual listener, which is non-blocking
/// underneath: a blocking caller waits in the kernel's poll.
unsafe fn accept_kernel_half(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let nonblocking = fds::with_detail(fd, |d| d.nonblocking);
    loop {
        let k = unsafe { real::accept4(fd, addr, len, flags) };
        if k >= 0 || errno() != libc::EAGAIN || nonblocking {
            route::clear_stale(k);
            return k;
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        if unsafe { real::poll(&mut p, 1, -1) } < 0 {
            return -1;
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    crate::guard("connect", || {
        match fds::kind(fd) {
            OURS => unsafe { ffi::rs_connect(fd, addr, len) },
            kind @ (PENDING | DUAL) => {
                let to = unsafe { sa::read(addr, len) }.ok().map(|a| *a.ip());
                let st = route::running();
                let ours = matches!((st, to), (Some(st), Some(ip)) if st.serves(ip));
                match (kind, ours) {
                    (PENDING, true) => {
                        if route::make_ours(st.expect("running"), fd) {
                            return unsafe { ffi::rs_connect(fd, addr, len) };
                        }
                    }
                    (DUAL, true) => {
                        let r = unsafe { ffi::rs_connect(fd, addr, len) };
                        let e = errno();
                        let detail = fds::take_detail(fd);
                        let view = detail.nonblocking;
                        // The kernel half leaves the epoll sets it joined: an
                        // unconnected socket there would report a hang-up.
                        for &(epfd, _, _) in &detail.epolls {
                            unsafe {
                                real::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut())
                            };
                        }
                        if !view {
                            unsafe {
                                let fl = real::fcntl(fd, libc::F_GETFL, 0);
                                real::fcntl(fd, libc::F_SETFL, (fl & !libc::O_NONBLOCK) as _);
                            }
                        }
                        st.expect("running").sockets.set_nonblocking(fd, view).ok();
                        fds::set_kind(fd, OURS);
                        // A blocking connect was started non-blocking: finish it.
                        if r < 0 && e == libc::EINPROGRESS && !view {
                            return unsafe { ffi::rs_connect(fd, addr, len) };
                        }
                        return if r < 0 { fail(e) } else { 0 };
                    }
                    (DUAL, false) => route::drop_dual_half(fd),
                    _ => {
                        let ip = to.unwrap_or(Ipv4Addr::UNSPECIFIED);
                        route::to_kernel(fd, format_args!("{ip} is not on the stack's link"));
                    }
                }
                unsafe { real::connect(fd, addr, len) }
            }
            _ => unsafe { real::connect(fd, addr, len) },
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    crate::guard("shutdown", || match fds::kind(fd) {
        OURS => ffi::rs_shutdown(fd, how),
        DUAL => {
            let k = unsafe { real::shutdown(fd, how) };
            let ours = ffi::rs_shutdown(fd, how);
            if k == 0 || ours == 0 {
                0
            } else {
                k
            }
        }
        _ => unsafe { real::shutdown(fd, how) },
    })
}

#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    crate::guard("close", || {
        match fds::kind(fd) {
            KERNEL => {
                epoll::forget_set(fd);
                unsafe { real::close(fd) }
            }
            _ => {
                // Forget the number before the kernel can hand it out again.
                route::forget_placed(fd);
                unsafe { real::close(fd) }
            }
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    crate::guard("getsockname", || match fds::kind(fd) {
        OURS => unsafe { ffi::rs_getsockname(fd, addr, len) },
        _ => unsafe { real::getsockname(fd, addr, len) },
    })
}

#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    crate::guard("getpeername", || match fds::kind(fd) {
        OURS => unsafe { ffi::rs_getpeername(fd, addr, len) },
        _ => unsafe { real::getpeername(fd, addr, len) },
    })
}

#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    crate::guard("getsockopt", || {
        if fds::kind(fd) == OURS {
            let r = unsafe { ffi::rs_getsockopt(fd, level, name, val, len) };
            if r == 0 || errno() != libc::ENOPROTOOPT {
                return r;
            }
        }
        // Options the stack does not keep: the placeholder's answer.
        unsafe { real::getsockopt(fd, level, name, val, len) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    crate::guard("setsockopt", || {
        match fds::kind(fd) {
            OURS => {
                let r = unsafe { ffi::rs_setsockopt(fd, level, name, val, len) };
                if r == 0 || errno() != libc::ENOPROTOOPT {
                    return r;
                }
                unsafe { real::setsockopt(fd, level, name, val, len) }
            }
            kind @ (PENDING | DUAL) => {
                let r = unsafe { real::setsockopt(fd, level, name, val, len) };
                if r == 0 && !val.is_null() {
                    if kind == DUAL {
                        unsafe { ffi::rs_setsockopt(fd, level, name, val, len) };
                    } else {
                        // SAFETY: the kernel just read `len` bytes from `val`.
                        let value =
                            unsafe { std::slice::from_raw_parts(val as *const u8, len as usize) }
                                .to_vec();
                        fds::with_detail(fd, |d| d.opts.push(fds::SavedOpt { level, name, value }));
                    }
                }
                r
            }
            _ => unsafe { real::setsockopt(fd, level, name, val, len) },
        }
    })
}
