//! Which sockets are rstcp's, and moving a socket from the kernel to the
//! stack when its address decides it.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rstcp::api::{self, Sockets};
use rstcp::rs_log;

use crate::fds::{self, DUAL, KERNEL, OURS};
use crate::{epoll, real};

/// The process's stack and the subnet it serves.
pub struct Stack {
    /// The sockets.
    pub sockets: &'static Sockets,
    /// The stack's own address.
    pub addr: Ipv4Addr,
    prefix_len: u8,
}

impl Stack {
    /// True if `ip` is reached through the stack's TUN device.
    pub fn serves(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr) & mask && !ip.is_loopback()
    }
}

thread_local! {
    /// Set while the shim itself runs code that may call hooked functions
    /// (starting the stack): they go straight to libc.
    static BYPASS: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread is inside the shim's own setup.
pub fn bypass() -> bool {
    BYPASS.with(|b| b.get())
}

static STACK: OnceLock<Option<Stack>> = OnceLock::new();

/// The stack, started on first use from the environment; None if it
/// cannot start (then every socket stays with the kernel, and one warning
/// says why) or in a forked child.
pub fn stack() -> Option<&'static Stack> {
    if api::in_forked_child() {
        return None;
    }
    STACK
        .get_or_init(|| {
            BYPASS.with(|b| b.set(true));
            let r = api::global();
            BYPASS.with(|b| b.set(false));
            match r {
                Ok(sockets) => {
                    let (addr, prefix_len) = sockets.with_stack(|s| {
                        let c = s.config();
                        (c.addr, c.prefix_len)
                    });
                    rs_log!(Info, "preload: stack at {addr}/{prefix_len}");
                    Some(Stack {
                        sockets,
                        addr,
                        prefix_len,
                    })
                }
                Err(e) => {
                    eprintln!(
                        "rstcp: the stack could not start ({}); every socket stays with the kernel. \
                         Check RSTCP_TUN / RSTCP_ADDR and that the process may open /dev/net/tun.",
                        std::io::Error::from_raw_os_error(e.errno())
                    );
                    None
                }
            }
        })
        .as_ref()
}

/// The stack, only if it already runs (calls on placed sockets).
pub fn running() -> Option<&'static Stack> {
    if api::in_forked_child() {
        // The stack's memory was copied into this process, not its thread:
        // touching it would act on a frozen copy (or a copied held lock).
        warn_inherited();
        return None;
    }
    STACK.get().and_then(|s| s.as_ref())
}

/// Says once, in a forked child that uses a descriptor of its parent's
/// stack, what that means.
fn warn_inherited() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if STACK.get().is_some_and(|s| s.is_some()) && !WARNED.swap(true, Ordering::AcqRel) {
        eprintln!(
            "rstcp: process {} was forked from the one that runs the stack: here its rstcp \
             connections fail with EIO and its listeners on 0.0.0.0 answer through the kernel \
             only (connections to the stack's address wait for the parent to accept them)",
            rstcp::sys::getpid()
        );
    }
}

/// Sets errno and returns -1 (in the caller's return type).
pub fn fail<T: From<i8>>(errno: i32) -> T {
    rstcp::ffi::guard::set_errno(errno);
    T::from(-1)
}

/// The calling thread's errno.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Logs, once per process, that the program used something the shim does
/// not support.
pub fn warn_unsupported(what: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::AcqRel) {
        rs_log!(Warn, "preload: {what} is not supported on rstcp sockets");
    }
}

/// Hands a pending socket to the kernel for good, saying why.
pub fn to_kernel(fd: c_int, why: std::fmt::Arguments<'_>) {
    rs_log!(Debug, "preload: fd {fd} goes to the kernel: {why}");
    fds::take_detail(fd);
    fds::set_kind(fd, KERNEL);
}

/// The placeholder's O_NONBLOCK.
fn placeholder_nonblocking(fd: c_int) -> bool {
    // SAFETY: fcntl on the program's own descriptor.
    let fl = unsafe { real::fcntl(fd, libc::F_GETFL, 0) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

/// Creates the rstcp socket behind pending `fd`, with the options the
/// program set so far, and moves its epoll registrations over.
fn adopt(st: &Stack, fd: c_int, nonblocking: bool) -> rstcp::Result<fds::Detail> {
    st.sockets.socket(nonblocking, Some(fd))?;
    let detail = fds::take_detail(fd);
    for o in &detail.opts {
        // SAFETY: the bytes the program passed for this option.
        let r = unsafe {
            rstcp::ffi::rs_setsockopt(
                fd,
                o.level,
                o.name,
                o.value.as_ptr() as *const c_void,
                o.value.len() as libc::socklen_t,
            )
        };
        if r != 0 && errno() != libc::ENOPROTOOPT {
            rs_log!(
                Debug,
                "preload: fd {fd}: option {}/{} not taken over",
                o.level,
                o.name
            );
        }
    }
    Ok(detail)
}

/// Pending `fd` becomes an rstcp socket (its bind or connect address is the
/// stack's). On failure it stays with the kernel.
pub fn make_ours(st: &Stack, fd: c_int) -> bool {
    match adopt(st, fd, placeholder_nonblocking(fd)) {
        Ok(detail) => {
            fds::set_kind(fd, OURS);
            epoll::adopt(fd, &detail.epolls);
            rs_log!(Debug, "preload: fd {fd} is an rstcp socket");
            true
        }
        Err(e) => {
            to_kernel(fd, format_args!("the stack refused it ({e})"));
            false
        }
    }
}

/// Pending `fd`, bound by the kernel to INADDR_ANY:`port`, also binds the
/// same port on the stack: it will listen on both.
pub fn make_dual(st: &Stack, fd: c_int, port: u16) -> bool {
    let view = placeholder_nonblocking(fd);
    let r = adopt(st, fd, true).and_then(|detail| {
        st.sockets
            .bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
            .inspect_err(|_| {
                let _ = st.sockets.close(fd);
            })
            .map(|_| detail)
    });
    match r {
        Ok(detail) => {
            // SAFETY: fcntl on the program's own descriptor.
            unsafe {
                let fl = real::fcntl(fd, libc::F_GETFL, 0);
                real::fcntl(fd, libc::F_SETFL, (fl | libc::O_NONBLOCK) as libc::c_ulong);
            }
            fds::with_detail(fd, |d| {
                d.nonblocking = view;
                // Kept: the kernel half leaves these sets if it connects.
                d.epolls = detail.epolls.clone();
            });
            fds::set_kind(fd, DUAL);
            epoll::adopt(fd, &detail.epolls);
            rs_log!(
                Debug,
                "preload: fd {fd} listens on port {port} through rstcp and the kernel"
            );
            true
        }
        Err(e) => {
            to_kernel(fd, format_args!("port {port} is taken on the stack ({e})"));
            false
        }
    }
}

/// A dual socket gives up its rstcp half (it connects elsewhere, or the
/// stack refused to listen): the kernel socket gets the program's flags back.
pub fn drop_dual_half(fd: c_int) {
    if let Some(st) = running() {
        let _ = st.sockets.close(fd);
    }
    epoll::forget(fd);
    let view = fds::take_detail(fd).nonblocking;
    // SAFETY: fcntl on the program's own descriptor.
    unsafe {
        let fl = real::fcntl(fd, libc::F_GETFL, 0);
        let fl = if view {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        real::fcntl(fd, libc::F_SETFL, fl as libc::c_ulong);
    }
    fds::set_kind(fd, KERNEL);
}

/// A descriptor number the kernel just handed out cannot still be ours:
/// an entry left by a close the shim did not see is dropped.
pub fn clear_stale(fd: c_int) {
    if fd >= 0 && fds::kind(fd) != KERNEL {
        rs_log!(Debug, "preload: fd {fd} was closed behind the shim's back");
        forget_placed(fd);
    }
}

/// True in any child of the stack's process: forked, or vfork()-style
/// (sharing its memory). For the calls a child makes on the way to exec
/// (close, dup2, close_range); it costs a system call.
pub fn in_child() -> bool {
    api::in_forked_child() || api::shares_owner_memory()
}

/// Drops whatever the shim holds for `fd` (not the kernel descriptor).
/// A vfork()-style child changes nothing (the memory is its parent's); a
/// forked child forgets the number in its own copy of the table only.
pub fn forget_placed(fd: c_int) {
    if api::shares_owner_memory() {
        return;
    }
    let kind = fds::kind(fd);
    fds::set_kind(fd, KERNEL);
    if (kind == OURS || kind == DUAL) && !api::in_forked_child() {
        epoll::forget(fd);
        if let Some(st) = running() {
            let _ = st.sockets.close(fd);
        }
    }
    fds::take_detail(fd);
}
