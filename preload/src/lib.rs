//! `librstcp_preload.so`: loaded with LD_PRELOAD, it hands an unmodified
//! program's IPv4 TCP sockets to rstcp when their address is on the stack's
//! link, and leaves everything else to the kernel.
//!
//! - Descriptor numbers are real kernel sockets (placeholders), so numbers
//!   never collide and `F_GETFD`/`F_GETFL` answer naturally; [`fds`] says
//!   per number what it is.
//! - A socket is placed at its bind, listen or connect ([`route`]): the
//!   stack's address or a destination on its link makes it rstcp's; a
//!   listener on INADDR_ANY listens on both.
//! - Waits mix rstcp sockets with kernel descriptors ([`wait`], [`epoll`])
//!   and signals interrupt them, as the kernel's do.
//!
//! Every hook has the contract of the libc function of the same name.
#![allow(clippy::missing_safety_doc)]

pub mod epoll;
pub mod fds;
pub mod hooks;
pub mod real;
pub mod route;
pub mod wait;

/// Runs a hook's body; a panic (a bug) never unwinds into the C caller:
/// it is logged, the stack is marked failed (as the C ABI does), and the
/// call fails with EIO.
pub(crate) fn guard<T: From<i8>>(name: &str, body: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            rstcp::rs_log!(Error, "preload: internal error (panic) in {name}");
            rstcp::api::fail_global();
            route::fail(libc::EIO)
        }
    }
}

/// Runs when the library is loaded, before the program's main.
extern "C" fn on_load() {
    real::resolve_all();
    // SAFETY: registering plain extern "C" functions without arguments.
    unsafe {
        libc::pthread_atfork(Some(before_fork), Some(after_fork), Some(after_fork));
    }
}

#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;

/// The shim's own maps are locked across fork, so that a child never
/// inherits one held by a thread that does not exist there.
extern "C" fn before_fork() {
    epoll::hold_for_fork();
    fds::hold_for_fork();
}

extern "C" fn after_fork() {
    fds::release_after_fork();
    epoll::release_after_fork();
}
