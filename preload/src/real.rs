//! The libc functions the hooks stand in front of, found with
//! `dlsym(RTLD_NEXT, …)` on first use.
//!
//! Resolution allocates nothing of ours and calls no hooked function, so it
//! is safe from inside any hook (the classic shim trap is dlsym recursing
//! through a hooked calloc). A function libc does not have fails with ENOSYS.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use libc::{
    epoll_event, iovec, msghdr, nfds_t, off_t, pid_t, pollfd, sigset_t, sockaddr, socklen_t,
    timespec,
};

/// Address of the next definition of `name` (NUL-terminated), or 0.
fn resolve(name: &'static str) -> usize {
    // SAFETY: a NUL-terminated static name; RTLD_NEXT is a valid handle.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr() as *const c_char) as usize }
}

macro_rules! real {
    ($( fn $name:ident($($a:ident: $t:ty),* $(,)?) -> $r:ty; )*) => {
        $(
            // Each function's address, in a module of the same name (modules
            // and functions live in different namespaces).
            mod $name {
                pub static ADDR: super::AtomicUsize = super::AtomicUsize::new(0);
            }

            #[doc = concat!("libc's own `", stringify!($name), "`.")]
            ///
            /// # Safety
            /// As for the libc function.
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn $name($($a: $t),*) -> $r {
                let mut f = $name::ADDR.load(Ordering::Relaxed);
                if f == 0 {
                    f = resolve(concat!(stringify!($name), "\0"));
                    if f == 0 {
                        // SAFETY: errno is the thread's own.
                        unsafe { *libc::__errno_location() = libc::ENOSYS };
                        return <$r>::from(-1i8);
                    }
                    $name::ADDR.store(f, Ordering::Relaxed);
                }
                // SAFETY: `f` is libc's definition of this very signature.
                let f: unsafe extern "C" fn($($t),*) -> $r = unsafe { std::mem::transmute(f) };
                // SAFETY: the caller's contract.
                unsafe { f($($a),*) }
            }
        )*

        /// Looks every function up now (from the library's constructor), so
        /// that no hook calls dlsym later, possibly inside a signal handler.
        pub fn resolve_all() {
            $( $name::ADDR.store(resolve(concat!(stringify!($name), "\0")), Ordering::Relaxed); )*
        }
    };
}

real! {
    fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    fn socketpair(domain: c_int, ty: c_int, protocol: c_int, sv: *mut c_int) -> c_int;
    fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn shutdown(fd: c_int, how: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int;
    fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize;
    fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
    fn readv(fd: c_int, iov: *const iovec, n: c_int) -> isize;
    fn writev(fd: c_int, iov: *const iovec, n: c_int) -> isize;
    fn recv(fd: c_int, buf: *mut c_void, n: usize, flags: c_int) -> isize;
    fn send(fd: c_int, buf: *const c_void, n: usize, flags: c_int) -> isize;
    fn recvfrom(fd: c_int, buf: *mut c_void, n: usize, flags: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> isize;
    fn sendto(fd: c_int, buf: *const c_void, n: usize, flags: c_int, addr: *const sockaddr, len: socklen_t) -> isize;
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> isize;
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> isize;
    fn recvmmsg(fd: c_int, v: *mut libc::mmsghdr, n: c_uint, flags: c_int, t: *mut timespec) -> c_int;
    fn sendmmsg(fd: c_int, v: *mut libc::mmsghdr, n: c_uint, flags: c_int) -> c_int;
    fn sendfile(out: c_int, inp: c_int, off: *mut off_t, n: usize) -> isize;
    fn sendfile64(out: c_int, inp: c_int, off: *mut off_t, n: usize) -> isize;
    fn splice(a: c_int, aoff: *mut i64, b: c_int, boff: *mut i64, n: usize, flags: c_uint) -> isize;
    fn getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int;
    fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int;
    fn ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> c_int;
    fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int;
    fn ppoll(fds: *mut pollfd, n: nfds_t, t: *const timespec, mask: *const sigset_t) -> c_int;
    fn select(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, t: *mut libc::timeval) -> c_int;
    fn pselect(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, t: *const timespec, mask: *const sigset_t) -> c_int;
    fn epoll_create(size: c_int) -> c_int;
    fn epoll_create1(flags: c_int) -> c_int;
    fn epoll_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut epoll_event) -> c_int;
    fn epoll_wait(epfd: c_int, ev: *mut epoll_event, max: c_int, timeout: c_int) -> c_int;
    fn epoll_pwait(epfd: c_int, ev: *mut epoll_event, max: c_int, timeout: c_int, mask: *const sigset_t) -> c_int;
    fn epoll_pwait2(epfd: c_int, ev: *mut epoll_event, max: c_int, t: *const timespec, mask: *const sigset_t) -> c_int;
    fn dup(fd: c_int) -> c_int;
    fn dup2(fd: c_int, new: c_int) -> c_int;
    fn dup3(fd: c_int, new: c_int, flags: c_int) -> c_int;
    fn fork() -> pid_t;
    fn pipe(fds: *mut c_int) -> c_int;
    fn pipe2(fds: *mut c_int, flags: c_int) -> c_int;
    fn eventfd(init: c_uint, flags: c_int) -> c_int;
    fn signalfd(fd: c_int, mask: *const sigset_t, flags: c_int) -> c_int;
    fn timerfd_create(clock: c_int, flags: c_int) -> c_int;
    fn memfd_create(name: *const c_char, flags: c_uint) -> c_int;
    fn inotify_init() -> c_int;
    fn inotify_init1(flags: c_int) -> c_int;
    fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int;
    fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int;
    fn openat(dir: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int;
    fn openat64(dir: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int;
}
