//! The edge between C and Rust: errno, and no panic ever crossing it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{Error, Result};
use crate::rs_log;

/// Sets the calling thread's errno.
pub fn set_errno(e: i32) {
    // SAFETY: __errno_location always returns the thread's valid errno slot.
    unsafe {
        *libc::__errno_location() = e;
    }
}

/// Runs `f`; on error sets errno and returns -1. A panic becomes EIO and
/// marks the process-wide stack failed: its state may be half-changed, so
/// every later call fails with EIO too, as after a panic in the I/O thread.
pub fn call<T: From<i8>>(name: &str, f: impl FnOnce() -> Result<T>) -> T {
    call_with(name, crate::api::fail_global, f)
}

/// Like [`call`], for sockets other than the process-wide ones: a panic
/// runs `fail` (which marks those sockets failed) instead.
pub fn call_with<T: From<i8>>(name: &str, fail: impl FnOnce(), f: impl FnOnce() -> Result<T>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_errno(e.errno());
            T::from(-1)
        }
        Err(_) => {
            rs_log!(
                Error,
                "internal error (panic) in {name}; the stack is stopped"
            );
            fail();
            set_errno(Error::Io.errno());
            T::from(-1)
        }
    }
}
