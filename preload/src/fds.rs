//! What each descriptor number is, indexed by number.
//!
//! The hot path (a `read` or `write` on a file or pipe) must cost one load:
//! a two-level table of bytes, grown in chunks on demand, answers "is this
//! number ours?" without a lock. Details that only a few descriptors need
//! (options recorded before a socket is placed, a dual listener's flags)
//! live in a map beside it.

use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use parking_lot::Mutex;

/// A kernel descriptor (or none): every call goes to libc.
pub const KERNEL: u8 = 0;
/// An AF_INET stream socket not yet bound or connected: a kernel socket
/// for now, placed at its bind, listen or connect.
pub const PENDING: u8 = 1;
/// An rstcp socket; the kernel socket of the same number is a placeholder
/// that holds the number.
pub const OURS: u8 = 2;
/// A listener bound to INADDR_ANY: the kernel socket listens too, and
/// accept takes whichever connection comes first.
pub const DUAL: u8 = 3;

const CHUNK: usize = 4096;
const CHUNKS: usize = 1024;

/// Descriptor numbers at or above this are always [`KERNEL`].
pub const LIMIT: usize = CHUNK * CHUNKS;

type Chunk = [AtomicU8; CHUNK];

static TABLE: [AtomicPtr<Chunk>; CHUNKS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS];

fn slot(fd: c_int, create: bool) -> Option<&'static AtomicU8> {
    let fd = usize::try_from(fd).ok().filter(|&f| f < LIMIT)?;
    let cell = &TABLE[fd / CHUNK];
    let mut chunk = cell.load(Ordering::Acquire);
    if chunk.is_null() {
        if !create {
            return None;
        }
        let fresh = Box::into_raw(Box::new([const { AtomicU8::new(KERNEL) }; CHUNK]));
        match cell.compare_exchange(chunk, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => chunk = fresh,
            Err(other) => {
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                chunk = other;
            }
        }
    }
    // SAFETY: chunks are never freed once published.
    Some(unsafe { &(*chunk)[fd % CHUNK] })
}

/// The kind of `fd`.
pub fn kind(fd: c_int) -> u8 {
    slot(fd, false).map_or(KERNEL, |s| s.load(Ordering::Acquire))
}

/// Sets the kind of `fd`; false if the number is beyond the table.
pub fn set_kind(fd: c_int, kind: u8) -> bool {
    match slot(fd, kind != KERNEL) {
        Some(s) => {
            s.store(kind, Ordering::Release);
            true
        }
        None => kind == KERNEL,
    }
}

/// Every descriptor in `first..=last` that is not [`KERNEL`].
pub fn placed_in(first: c_int, last: c_int) -> Vec<c_int> {
    let mut out = Vec::new();
    let (first, last) = (first.max(0) as usize, (last.max(0) as usize).min(LIMIT - 1));
    let mut fd = first;
    while fd <= last {
        let chunk = TABLE[fd / CHUNK].load(Ordering::Acquire);
        if chunk.is_null() {
            fd = (fd / CHUNK + 1) * CHUNK;
            continue;
        }
        // SAFETY: published chunks are never freed.
        if unsafe { (*chunk)[fd % CHUNK].load(Ordering::Acquire) } != KERNEL {
            out.push(fd as c_int);
        }
        fd += 1;
    }
    out
}

/// A socket option set on a [`PENDING`] socket, replayed when it is placed.
#[derive(Clone, Debug)]
pub struct SavedOpt {
    /// Level (SOL_SOCKET, IPPROTO_TCP…).
    pub level: c_int,
    /// Option name.
    pub name: c_int,
    /// The bytes the program passed.
    pub value: Vec<u8>,
}

/// What a non-kernel descriptor needs beyond its kind.
#[derive(Clone, Debug, Default)]
pub struct Detail {
    /// Options set while [`PENDING`].
    pub opts: Vec<SavedOpt>,
    /// epoll sets it joined while [`PENDING`] (epfd, events, data).
    pub epolls: Vec<(c_int, u32, u64)>,
    /// For [`DUAL`]: the program's O_NONBLOCK (both halves are always
    /// non-blocking underneath).
    pub nonblocking: bool,
}

static DETAILS: Mutex<Option<HashMap<c_int, Detail>>> = Mutex::new(None);

/// Runs `f` on the detail of `fd`, creating an empty one.
pub fn with_detail<T>(fd: c_int, f: impl FnOnce(&mut Detail) -> T) -> T {
    let mut map = DETAILS.lock();
    f(map.get_or_insert_with(HashMap::new).entry(fd).or_default())
}

/// Removes and returns the detail of `fd`.
pub fn take_detail(fd: c_int) -> Detail {
    DETAILS
        .lock()
        .as_mut()
        .and_then(|m| m.remove(&fd))
        .unwrap_or_default()
}

/// Locks the map across fork() (see `lib.rs`).
pub(crate) fn hold_for_fork() {
    std::mem::forget(DETAILS.lock());
}

/// Unlocks what [`hold_for_fork`] locked, in the parent and in the child.
pub(crate) fn release_after_fork() {
    // SAFETY: locked by hold_for_fork in this very thread, just before fork.
    unsafe { DETAILS.force_unlock() };
}
