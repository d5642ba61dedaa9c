//! The exported functions that stand in for libc's.

pub mod fdops;
pub mod io;
pub mod sockets;
