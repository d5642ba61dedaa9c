//! Descriptor numbers → sockets. Numbers are either chosen here (the lowest
//! free one from 3, like the kernel) or given by the caller (the LD_PRELOAD
//! shim hands out a kernel placeholder's number).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::stack::SocketId;
use crate::tcp::Rings;

/// The most descriptors one table hands out: Linux's default fs.nr_open,
/// so a program that may open a million kernel descriptors may open as
/// many rstcp ones (100,000 idle connections fit with room to spare).
pub const MAX_FDS: usize = 1 << 20;

/// What a descriptor refers to, plus per-descriptor flags.
#[derive(Debug)]
pub struct FdEntry {
    /// The socket in the stack.
    pub id: SocketId,
    /// The shard whose stack `id` is in.
    pub shard: usize,
    /// A listener's copies in the other shards (each listens on the same
    /// address, for the connections the kernel steers to that shard).
    pub mirrors: std::sync::OnceLock<Vec<(usize, SocketId)>>,
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
    /// SO_BUSY_POLL in microseconds; [`FdEntry::DEFAULT_BUSY_POLL`] until
    /// set (the runtime's RSTCP_BUSY_POLL_US then applies).
    pub busy_poll: AtomicU64,
    /// The connection's rings, for reads and writes without the stack's
    /// lock; taken at accept and connect, and again by every read or write
    /// that goes through the stack, so a socket that connects anew soon
    /// uses the right ones.
    pub rings: parking_lot::Mutex<Option<Rings>>,
}

impl FdEntry {
    /// A fresh entry for socket `id`.
    pub fn new(id: SocketId, nonblocking: bool) -> FdEntry {
        FdEntry {
            id,
            shard: 0,
            mirrors: std::sync::OnceLock::new(),
            nonblocking: AtomicBool::new(nonblocking),
            connecting: AtomicBool::new(false),
            recv_timeout: AtomicU64::new(0),
            send_timeout: AtomicU64::new(0),
            refs: AtomicUsize::new(1),
            cloexec: AtomicBool::new(false),
            busy_poll: AtomicU64::new(FdEntry::DEFAULT_BUSY_POLL),
            rings: parking_lot::Mutex::new(None),
        }
    }

    /// The same entry for socket `id` of shard `shard`.
    pub fn on_shard(mut self, shard: usize) -> FdEntry {
        self.shard = shard;
        self
    }

    /// The socket and its mirrors, as (shard, id).
    pub fn places(&self) -> impl Iterator<Item = (usize, SocketId)> + '_ {
        std::iter::once((self.shard, self.id))
            .chain(self.mirrors.get().into_iter().flatten().copied())
    }

    /// `busy_poll` before SO_BUSY_POLL sets it.
    pub const DEFAULT_BUSY_POLL: u64 = u64::MAX;

    /// Keeps the rings `stack` has for this socket now (see `rings`).
    pub fn take_rings(&self, stack: &crate::stack::Stack) {
        let fresh = stack.rings(self.id);
        let mut held = self.rings.lock();
        if !matches!((&*held, &fresh), (Some(a), Some(b)) if a.same(b)) {
            *held = fresh;
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
    map: RwLock<Table>,
}

/// The entries, and which numbers are free for the next one: the lowest,
/// as POSIX asks, in O(log n) instead of a scan from 3 (which made opening
/// n descriptors cost O(n²)).
#[derive(Debug, Default)]
struct Table {
    entries: HashMap<i32, Arc<FdEntry>>,
    /// Free numbers below `next`.
    free: BTreeSet<i32>,
    /// Numbers from here up are free, unless taken by an explicit insert.
    next: i32,
}

impl Table {
    fn lowest_free(&mut self) -> i32 {
        if let Some(n) = self.free.pop_first() {
            return n;
        }
        self.next = self.next.max(FIRST_FD);
        while self.entries.contains_key(&self.next) {
            self.next += 1;
        }
        let n = self.next;
        self.next += 1;
        n
    }

    fn take(&mut self, fd: i32) {
        self.free.remove(&fd);
    }

    fn release(&mut self, fd: i32) {
        if (FIRST_FD..self.next).contains(&fd) {
            self.free.insert(fd);
        }
    }
}

/// The lowest number handed out (0, 1 and 2 are stdin, stdout, stderr).
const FIRST_FD: i32 = 3;

impl FdTable {
    /// The entry of `fd`, or EBADF.
    pub fn get(&self, fd: i32) -> Result<Arc<FdEntry>> {
        self.map
            .read()
            .entries
            .get(&fd)
            .cloned()
            .ok_or(Error::BadDescriptor)
    }

    /// Registers `entry` under `fd` if given (EBADF if negative or taken),
    /// otherwise under the lowest free number from 3.
    pub fn insert(&self, fd: Option<i32>, entry: Arc<FdEntry>) -> Result<i32> {
        let mut table = self.map.write();
        if table.entries.len() >= MAX_FDS {
            return Err(Error::TooManyFiles);
        }
        let fd = match fd {
            Some(fd) if fd < 0 || table.entries.contains_key(&fd) => {
                return Err(Error::BadDescriptor)
            }
            Some(fd) => {
                table.take(fd);
                fd
            }
            None => table.lowest_free(),
        };
        table.entries.insert(fd, entry);
        Ok(fd)
    }

    /// Removes `fd`, returning its entry.
    pub fn remove(&self, fd: i32) -> Result<Arc<FdEntry>> {
        let mut table = self.map.write();
        let entry = table.entries.remove(&fd).ok_or(Error::BadDescriptor)?;
        table.release(fd);
        Ok(entry)
    }

    /// Every open descriptor number.
    pub fn open_fds(&self) -> Vec<i32> {
        self.map.read().entries.keys().copied().collect()
    }

    /// Every open descriptor with its entry.
    pub fn entries(&self) -> Vec<(i32, Arc<FdEntry>)> {
        self.map
            .read()
            .entries
            .iter()
            .map(|(&fd, e)| (fd, e.clone()))
            .collect()
    }

    /// Puts `entry` in place of what `fd` referred to (a socket moved to
    /// another shard). EBADF if `fd` is not open.
    pub fn replace(&self, fd: i32, entry: Arc<FdEntry>) -> Result<()> {
        let mut table = self.map.write();
        let slot = table.entries.get_mut(&fd).ok_or(Error::BadDescriptor)?;
        *slot = entry;
        Ok(())
    }

    /// Number of open descriptors.
    pub fn len(&self) -> usize {
        self.map.read().entries.len()
    }

    /// True when no descriptor is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Arc<FdEntry> {
        Arc::new(FdEntry::new(SocketId::new(0, 0), false))
    }

    #[test]
    fn numbers_are_the_lowest_free_from_three_also_around_explicit_ones() {
        let t = FdTable::default();
        let got: Vec<i32> = (0..4).map(|_| t.insert(None, entry()).unwrap()).collect();
        assert_eq!(got, [3, 4, 5, 6]);
        t.remove(4).unwrap();
        t.remove(3).unwrap();
        assert_eq!(t.insert(None, entry()), Ok(3));
        // An explicit number beyond the others is skipped, and free again
        // once removed; one below fills its hole.
        assert_eq!(t.insert(Some(8), entry()), Ok(8));
        assert_eq!(t.insert(Some(4), entry()), Ok(4));
        assert_eq!(t.insert(Some(4), entry()), Err(Error::BadDescriptor));
        assert_eq!(t.insert(None, entry()), Ok(7));
        assert_eq!(t.insert(None, entry()), Ok(9));
        t.remove(8).unwrap();
        assert_eq!(t.insert(None, entry()), Ok(8));
        // Numbers below 3 given explicitly never come back as free ones.
        assert_eq!(t.insert(Some(1), entry()), Ok(1));
        t.remove(1).unwrap();
        assert_eq!(t.insert(None, entry()), Ok(10));
    }

    #[test]
    fn a_full_table_says_emfile_and_a_freed_number_is_usable_again() {
        let t = FdTable::default();
        for i in 0..MAX_FDS as i32 {
            assert_eq!(t.insert(None, entry()), Ok(3 + i));
        }
        assert_eq!(t.insert(None, entry()), Err(Error::TooManyFiles));
        t.remove(1000).unwrap();
        assert_eq!(t.insert(None, entry()), Ok(1000));
    }

    #[test]
    fn holes_left_among_many_descriptors_are_filled_lowest_first() {
        let t = FdTable::default();
        for i in 0..50_000 {
            assert_eq!(t.insert(None, entry()), Ok(3 + i));
        }
        for fd in [40_000, 7, 20_000] {
            t.remove(fd).unwrap();
        }
        let again: Vec<i32> = (0..4).map(|_| t.insert(None, entry()).unwrap()).collect();
        assert_eq!(again, [7, 20_000, 40_000, 50_003]);
    }
}
