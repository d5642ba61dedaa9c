//! Bytes received and not yet read by the application, with room for
//! segments that arrive ahead of a hole.
//!
//! The ring of in-order bytes is shared with the application: a
//! [`RecvReader`] copies bytes out without the stack's lock, while the
//! control block (under it) writes new ones in. Both take the ring's own
//! lock, which guards a copy and a few counters and nothing else: no I/O
//! and no wait happens under it, and the stack never blocks on it for
//! longer than the reader's memcpy. This is the one lock in `tcp/`.

use std::sync::Arc;

use parking_lot::Mutex;

use super::reassembler::Reassembler;

/// The control block's side: writes in order and out of order, decides the
/// window. Out-of-order bookkeeping stays here; only the ring is shared.
#[derive(Debug)]
pub struct RecvBuffer {
    ring: Arc<Mutex<Ring>>,
    ooo: Reassembler,
}

/// The application's side of a connection's receive ring: reads what is
/// in order without the stack's lock (see [`RecvReader::read`]).
#[derive(Clone, Debug)]
pub struct RecvReader(Arc<Mutex<Ring>>);

/// What a [`RecvReader::read`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    /// Bytes copied out.
    pub bytes: usize,
    /// The read opened the window by enough that the peer should hear of
    /// it: the caller takes the stack's lock and lets the control block
    /// decide (`Tcb::window_update`).
    pub update: bool,
}

/// A ring: `len` readable bytes from `head`, then the receive window, part
/// of which may already hold out-of-order bytes.
///
/// Storage grows as data arrives (doubling, from [`MIN_STORAGE`]) up to the
/// capacity, so a connection that receives little costs little.
#[derive(Debug)]
struct Ring {
    /// The ring's storage; its length (not the capacity) is the modulus.
    buf: Vec<u8>,
    capacity: usize,
    head: usize,
    len: usize,
    /// Bytes ever made readable: those ever read are `received - len`,
    /// and the window's right edge is `received - len + capacity`, in the
    /// same count as `adv_right`.
    received: u64,
    /// The right edge last advertised to the peer, counted like `received`.
    adv_right: u64,
    /// Two segments: with half the buffer, the least opening worth telling
    /// the peer about (RFC 1122, 4.2.3.3).
    update_step: usize,
    /// No more window updates (the peer closed, or we cannot receive).
    quiet: bool,
    /// Nothing more will be written: storage goes once the reader empties it.
    finished: bool,
}

/// The first allocation, and the least a ring grows to.
pub const MIN_STORAGE: usize = 4096;

impl Ring {
    fn read(&mut self, out: &mut [u8], peek: bool) -> usize {
        let n = out.len().min(self.len);
        if n == 0 {
            return 0;
        }
        let size = self.buf.len();
        let first = n.min(size - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        if !peek {
            self.head = (self.head + n) % size;
            self.len -= n;
        }
        n
    }

    /// How far the right edge would move past the one last advertised,
    /// if that is worth an update.
    fn window_opened(&self) -> bool {
        if self.quiet {
            return false;
        }
        let edge = self.received - self.len as u64 + self.capacity as u64;
        let opened = edge as i64 - self.adv_right as i64;
        let threshold = (self.capacity / 2).min(self.update_step) as i64;
        opened > 0 && opened >= threshold
    }

    fn release(&mut self, out_of_order: bool) {
        if self.len == 0 && !out_of_order {
            self.buf = Vec::new();
            self.head = 0;
        }
    }
}

impl RecvBuffer {
    /// An empty buffer of `capacity` bytes (storage comes as data does).
    pub fn new(capacity: usize) -> RecvBuffer {
        RecvBuffer {
            ring: Arc::new(Mutex::new(Ring {
                buf: Vec::new(),
                capacity: capacity.max(1),
                head: 0,
                len: 0,
                received: 0,
                adv_right: 0,
                update_step: usize::MAX,
                quiet: false,
                finished: false,
            })),
            ooo: Reassembler::new(),
        }
    }

    /// The application's handle on the in-order bytes.
    pub fn reader(&self) -> RecvReader {
        RecvReader(self.ring.clone())
    }

    /// Bytes ready for the application.
    pub fn len(&self) -> usize {
        self.ring.lock().len
    }

    /// True when nothing is ready to read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The receive window: room beyond the readable bytes.
    pub fn window(&self) -> usize {
        let r = self.ring.lock();
        r.capacity - r.len
    }

    /// The most the buffer can hold.
    pub fn capacity(&self) -> usize {
        self.ring.lock().capacity
    }

    /// Out-of-order ranges held, as offsets from the next expected byte.
    pub fn out_of_order(&self) -> &[(usize, usize)] {
        self.ooo.ranges()
    }

    /// Grows the buffer (shrinking below what is promised is not allowed).
    /// Storage follows only when data needs it.
    pub fn grow(&mut self, capacity: usize) {
        let mut r = self.ring.lock();
        r.capacity = r.capacity.max(capacity);
    }

    /// Nothing more will arrive: the storage goes now if empty, else when
    /// the reader has emptied it.
    pub fn finish(&mut self) {
        let mut r = self.ring.lock();
        // Out-of-order bytes (kept after shutdown(SHUT_RD)) keep the
        // storage until the control block lets them go.
        r.finished = self.ooo.is_empty();
        r.release(!self.ooo.is_empty());
    }

    /// Bytes of storage held now (memory accounting, tests).
    pub fn storage(&self) -> usize {
        self.ring.lock().buf.len()
    }

    /// The peer was told of a right edge `ahead` bytes past the next byte
    /// expected; `step` is two segments (with half the buffer, the least
    /// opening worth an update).
    pub fn advertised(&mut self, ahead: u32, step: usize) {
        let mut r = self.ring.lock();
        r.adv_right = r.received + u64::from(ahead);
        r.update_step = step;
    }

    /// True if reads opened the window by enough to tell the peer
    /// (receiver-side silly window avoidance).
    pub fn window_opened(&self) -> bool {
        self.ring.lock().window_opened()
    }

    /// No window updates from now on (the peer sends nothing more).
    pub fn quiet(&mut self) {
        self.ring.lock().quiet = true;
    }

    /// Stores `data` that starts `offset` bytes past the next expected byte.
    /// Bytes beyond the window are cut off. Returns how many bytes became
    /// readable in order (0 for an out-of-order segment), or None if the
    /// segment could not be tracked and was dropped.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Option<usize> {
        let mut r = self.ring.lock();
        let window = r.capacity - r.len;
        if offset >= window || data.is_empty() {
            return Some(0);
        }
        let n = data.len().min(window - offset);
        if offset > 0 && !self.ooo.insert(offset, offset + n) {
            return None;
        }
        reserve(&mut r, offset + n);
        let size = r.buf.len();
        let start = (r.head + r.len + offset) % size;
        let first = n.min(size - start);
        r.buf[start..start + first].copy_from_slice(&data[..first]);
        r.buf[..n - first].copy_from_slice(&data[first..n]);
        if offset > 0 {
            return Some(0);
        }
        let grown = n + self.ooo.advance(n);
        r.len += grown;
        r.received += grown as u64;
        Some(grown)
    }

    /// Copies readable bytes into `out`; removes them unless `peek`.
    pub fn read(&mut self, out: &mut [u8], peek: bool) -> usize {
        self.ring.lock().read(out, peek)
    }

    /// Drops everything, in order and out of order.
    pub fn clear(&mut self) {
        let mut r = self.ring.lock();
        r.head = 0;
        r.len = 0;
        self.ooo.clear();
    }
}

/// Makes storage hold `end` bytes past the readable ones: doubles it (at
/// least to the need), never past the capacity, keeping every byte's place
/// relative to the head.
fn reserve(r: &mut Ring, end: usize) {
    let needed = r.len + end;
    let have = r.buf.len();
    if needed <= have {
        return;
    }
    let size = needed.max(have * 2).max(MIN_STORAGE).min(r.capacity);
    let mut data = vec![0; size];
    for (i, slot) in data.iter_mut().take(have).enumerate() {
        *slot = r.buf[(r.head + i) % have];
    }
    r.buf = data;
    r.head = 0;
}

impl RecvReader {
    /// Copies in-order bytes into `out` (keeping them if `peek`), without
    /// the stack's lock. None when nothing is ready or `out` is empty: the
    /// caller then takes the locked path, which knows about end of stream,
    /// errors and blocking. A finished ring gives its storage back once
    /// emptied.
    pub fn read(&self, out: &mut [u8], peek: bool) -> Option<Read> {
        let mut r = self.0.lock();
        if r.len == 0 || out.is_empty() {
            return None;
        }
        let bytes = r.read(out, peek);
        if r.finished {
            r.release(false);
        }
        Some(Read {
            bytes,
            update: !peek && r.window_opened(),
        })
    }

    /// True if this reader and `other` read the same ring.
    pub fn same(&self, other: &RecvReader) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_then_fill() {
        let mut b = RecvBuffer::new(16);
        assert_eq!(b.write(4, b"efgh"), Some(0));
        assert_eq!(b.len(), 0);
        assert_eq!(b.write(0, b"abcd"), Some(8));
        let mut out = [0u8; 3];
        assert_eq!(b.read(&mut out, true), 3);
        assert_eq!(b.read(&mut out, false), 3);
        assert_eq!(&out, b"abc");
        // Wrap around the ring; the window cuts the tail.
        assert_eq!(b.window(), 11);
        assert_eq!(b.write(0, &[7u8; 20]), Some(11));
        let mut all = [0u8; 32];
        assert_eq!(b.read(&mut all, false), 16);
        assert_eq!(&all[..5], b"defgh");
        assert!(all[5..16].iter().all(|&x| x == 7));
    }

    #[test]
    fn storage_grows_with_the_data_and_keeps_out_of_order_bytes_in_place() {
        let mut b = RecvBuffer::new(64 * 1024);
        assert_eq!(b.storage(), 0, "nothing until data comes");
        assert_eq!(b.write(0, b"hello"), Some(5));
        assert_eq!(b.storage(), MIN_STORAGE);
        // Out of order far ahead: storage doubles to reach it.
        let far = vec![9u8; 100];
        assert_eq!(b.write(10_000, &far), Some(0));
        assert!(b.storage() >= 10_105 && b.storage() <= 64 * 1024);
        // The hole fills: everything reads back in order.
        let gap: Vec<u8> = (0..10_000).map(|i| (i % 251) as u8).collect();
        assert_eq!(b.write(0, &gap), Some(10_000 + 100));
        let mut out = vec![0u8; 20_000];
        assert_eq!(b.read(&mut out, false), 10_105);
        assert_eq!(&out[..5], b"hello");
        assert_eq!(&out[5..10_005], &gap[..]);
        assert!(out[10_005..10_105].iter().all(|&x| x == 9));
        // Never past the capacity.
        let big = vec![1u8; 200 * 1024];
        assert_eq!(b.write(0, &big), Some(64 * 1024));
        assert_eq!(b.storage(), 64 * 1024);
    }

    #[test]
    fn the_reader_reads_in_order_bytes_and_says_when_the_window_opened() {
        let mut b = RecvBuffer::new(8000);
        let reader = b.reader();
        assert_eq!(reader.read(&mut [0u8; 10], false), None, "nothing yet");
        // The peer was told of the whole buffer; segments of 1000 bytes.
        b.advertised(8000, 2000);
        assert_eq!(b.write(1000, &[2u8; 1000]), Some(0), "out of order");
        assert_eq!(reader.read(&mut [0u8; 10], false), None, "not readable");
        assert_eq!(b.write(0, &[1u8; 1000]), Some(2000));
        // Reading 1500 moves the right edge 1500 past the one promised:
        // less than two segments, no update yet.
        let mut out = [0u8; 1500];
        let r = reader.read(&mut out, false).unwrap();
        assert_eq!((r.bytes, r.update), (1500, false));
        assert!(out[..1000].iter().all(|&x| x == 1) && out[1000..].iter().all(|&x| x == 2));
        // A peek changes nothing.
        let r = reader.read(&mut [0u8; 100], true).unwrap();
        assert_eq!((r.bytes, r.update), (100, false));
        assert_eq!(b.len(), 500);
        let r = reader.read(&mut [0u8; 600], false).unwrap();
        assert_eq!((r.bytes, r.update), (500, true));
        assert!(b.window_opened());
        // Once the peer hears of the new edge, nothing is owed.
        b.advertised(8000, 2000);
        assert!(!b.window_opened());
        // A connection that no longer receives owes no updates.
        assert_eq!(b.write(0, &[3u8; 4000]), Some(4000));
        b.quiet();
        let r = reader.read(&mut [0u8; 4000], false).unwrap();
        assert_eq!((r.bytes, r.update), (4000, false));
    }

    #[test]
    fn a_finished_ring_gives_its_storage_back_when_the_reader_empties_it() {
        let mut b = RecvBuffer::new(64 * 1024);
        let reader = b.reader();
        assert_eq!(b.write(0, b"last words"), Some(10));
        b.finish();
        assert_eq!(b.storage(), MIN_STORAGE, "kept while unread");
        let mut out = [0u8; 4];
        assert_eq!(reader.read(&mut out, false).unwrap().bytes, 4);
        assert_eq!(b.storage(), MIN_STORAGE);
        let mut rest = [0u8; 16];
        assert_eq!(reader.read(&mut rest, false).unwrap().bytes, 6);
        assert_eq!(&rest[..6], b" words");
        assert_eq!(b.storage(), 0, "emptied and finished: released");
    }
}
