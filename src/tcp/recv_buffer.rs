//! Bytes received and not yet read by the application, with room for
//! segments that arrive ahead of a hole.

use super::reassembler::Reassembler;

/// A ring: `len` readable bytes from `head`, then the receive window, part of
/// which may already hold out-of-order bytes (tracked by the reassembler).
///
/// Storage grows as data arrives (doubling, from [`MIN_STORAGE`]) up to the
/// capacity, so a connection that receives little costs little.
#[derive(Debug)]
pub struct RecvBuffer {
    /// The ring's storage; its length (not the capacity) is the modulus.
    buf: Vec<u8>,
    capacity: usize,
    head: usize,
    len: usize,
    ooo: Reassembler,
}

/// The first allocation, and the least a ring grows to.
pub const MIN_STORAGE: usize = 4096;

impl RecvBuffer {
    /// An empty buffer of `capacity` bytes (storage comes as data does).
    pub fn new(capacity: usize) -> RecvBuffer {
        RecvBuffer {
            buf: Vec::new(),
            capacity: capacity.max(1),
            head: 0,
            len: 0,
            ooo: Reassembler::new(),
        }
    }

    /// Bytes ready for the application.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is ready to read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The receive window: room beyond the readable bytes.
    pub fn window(&self) -> usize {
        self.capacity - self.len
    }

    /// The most the buffer can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Out-of-order ranges held, as offsets from the next expected byte.
    pub fn out_of_order(&self) -> &[(usize, usize)] {
        self.ooo.ranges()
    }

    /// Grows the buffer (shrinking below what is promised is not allowed).
    /// Storage follows only when data needs it.
    pub fn grow(&mut self, capacity: usize) {
        self.capacity = self.capacity.max(capacity);
    }

    /// Gives the storage back while nothing is held, in order or not.
    pub fn release(&mut self) {
        if self.len == 0 && self.ooo.ranges().is_empty() {
            self.buf = Vec::new();
            self.head = 0;
        }
    }

    /// Bytes of storage held now (memory accounting, tests).
    pub fn storage(&self) -> usize {
        self.buf.len()
    }

    /// Makes storage hold `end` bytes past the readable ones: doubles it
    /// (at least to the need), never past the capacity, keeping every
    /// byte's place relative to the head.
    fn reserve(&mut self, end: usize) {
        let needed = self.len + end;
        let have = self.buf.len();
        if needed <= have {
            return;
        }
        let size = needed.max(have * 2).max(MIN_STORAGE).min(self.capacity);
        let mut data = vec![0; size];
        for (i, slot) in data.iter_mut().take(have).enumerate() {
            *slot = self.buf[(self.head + i) % have];
        }
        self.buf = data;
        self.head = 0;
    }

    /// Stores `data` that starts `offset` bytes past the next expected byte.
    /// Bytes beyond the window are cut off. Returns how many bytes became
    /// readable in order (0 for an out-of-order segment), or None if the
    /// segment could not be tracked and was dropped.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Option<usize> {
        let window = self.window();
        if offset >= window || data.is_empty() {
            return Some(0);
        }
        let n = data.len().min(window - offset);
        if offset > 0 && !self.ooo.insert(offset, offset + n) {
            return None;
        }
        self.reserve(offset + n);
        let size = self.buf.len();
        let start = (self.head + self.len + offset) % size;
        let first = n.min(size - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        if offset > 0 {
            return Some(0);
        }
        let grown = n + self.ooo.advance(n);
        self.len += grown;
        Some(grown)
    }

    /// Copies readable bytes into `out`; removes them unless `peek`.
    pub fn read(&mut self, out: &mut [u8], peek: bool) -> usize {
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

    /// Drops everything, in order and out of order.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.ooo.clear();
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
}
