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
