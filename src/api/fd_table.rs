//! Descriptor numbers → sockets. Numbers are either chosen here (the lowest
//! free one from 3, like the kernel) or given by the caller (the LD_PRELOAD
//! shim hands out a kernel placeholder's number).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::stack::SocketId;

/// The most descriptors one table hands out.
pub const MAX_FDS: usize = 65536;

/// What a descriptor refers to, plus per-descriptor flags.
#[derive(Debug)]
pub struct FdEntry {
    /// The socket in the stack.
    pub id: SocketId,
    /// O_NONBLOCK.
    pub nonblocking: AtomicBool,
    /// A connect was started and its outcome not yet reported by connect.
    pub connecting: AtomicBool,
    /// SO_RCVTIMEO in microseconds (0 = none).
    pub recv_timeout: AtomicU64,
    /// SO_SNDTIMEO in microseconds (0 = none).
    pub send_timeout: AtomicU64,
    /// How many descriptors refer to this socket (dup).
    pub refs: AtomicUsize,
    /// FD_CLOEXEC (reported by F_GETFD; rstcp descriptors do not survive
    /// exec either way).
    pub cloexec: AtomicBool,
}

impl FdEntry {
    /// A fresh entry for socket `id`.
    pub fn new(id: SocketId, nonblocking: bool) -> FdEntry {
        FdEntry {
            id,
            nonblocking: AtomicBool::new(nonblocking),
            connecting: AtomicBool::new(false),
            recv_timeout: AtomicU64::new(0),
            send_timeout: AtomicU64::new(0),
            refs: AtomicUsize::new(1),
            cloexec: AtomicBool::new(false),
        }
    }

    /// O_NONBLOCK is set.
    pub fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Acquire)
    }

    /// A timeout stored as microseconds, 0 meaning none.
    pub fn timeout(v: &AtomicU64) -> Option<Duration> {
        match v.load(Ordering::Acquire) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}

/// The table itself.
#[derive(Debug, Default)]
pub struct FdTable {
    map: RwLock<HashMap<i32, Arc<FdEntry>>>,
}

impl FdTable {
    /// The entry of `fd`, or EBADF.
    pub fn get(&self, fd: i32) -> Result<Arc<FdEntry>> {
        self.map
            .read()
            .get(&fd)
            .cloned()
            .ok_or(Error::BadDescriptor)
    }

    /// Registers `entry` under `fd` if given (EBADF if negative or taken),
    /// otherwise under the lowest free number from 3.
    pub fn insert(&self, fd: Option<i32>, entry: Arc<FdEntry>) -> Result<i32> {
        let mut map = self.map.write();
        if map.len() >= MAX_FDS {
            return Err(Error::TooManyFiles);
        }
        let fd = match fd {
            Some(fd) if fd < 0 || map.contains_key(&fd) => return Err(Error::BadDescriptor),
            Some(fd) => fd,
            None => (3..)
                .find(|n| !map.contains_key(n))
                .ok_or(Error::TooManyFiles)?,
        };
        map.insert(fd, entry);
        Ok(fd)
    }

    /// Removes `fd`, returning its entry.
    pub fn remove(&self, fd: i32) -> Result<Arc<FdEntry>> {
        self.map.write().remove(&fd).ok_or(Error::BadDescriptor)
    }

    /// Every open descriptor number.
    pub fn open_fds(&self) -> Vec<i32> {
        self.map.read().keys().copied().collect()
    }

    /// Every open descriptor with its socket.
    pub fn entries(&self) -> Vec<(i32, SocketId)> {
        self.map.read().iter().map(|(&fd, e)| (fd, e.id)).collect()
    }

    /// Number of open descriptors.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// True when no descriptor is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
