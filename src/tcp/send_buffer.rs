//! Bytes the application has written and the peer has not yet acknowledged.

/// A ring of bytes: the front is the oldest unacknowledged byte.
///
/// Storage grows as the application writes (doubling, from 4 KiB) up to
/// the capacity, so idle and lightly used connections cost little.
#[derive(Debug)]
pub struct SendBuffer {
    /// The ring's storage; its length (not the capacity) is the modulus.
    buf: Vec<u8>,
    capacity: usize,
    head: usize,
    len: usize,
}

impl SendBuffer {
    /// An empty buffer that will hold at most `capacity` bytes.
    pub fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            buf: Vec::new(),
            capacity: capacity.max(1),
            head: 0,
            len: 0,
        }
    }

    /// Bytes held (sent or not, but unacknowledged).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left for the application.
    pub fn free(&self) -> usize {
        self.capacity - self.len
    }

    /// The most the buffer can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the capacity; it never drops below what is held. Storage
    /// larger than the new capacity shrinks to it.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(self.len).max(1);
        if self.buf.len() > self.capacity {
            self.relayout(self.capacity);
        }
    }

    /// Gives the storage back while nothing is held (the direction is
    /// done: a later push allocates afresh).
    pub fn release(&mut self) {
        if self.len == 0 {
            self.buf = Vec::new();
            self.head = 0;
        }
    }

    /// Bytes of storage held now (memory accounting, tests).
    pub fn storage(&self) -> usize {
        self.buf.len()
    }

    /// Moves the held bytes to the front of new storage of `size` bytes.
    fn relayout(&mut self, size: usize) {
        let mut data = vec![0; size];
        self.copy_out(0, &mut data[..self.len]);
        self.buf = data;
        self.head = 0;
    }

    /// Appends as much of `data` as fits; returns how much was taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        let needed = self.len + n;
        if needed > self.buf.len() {
            let size = needed.max(self.buf.len() * 2).max(4096).min(self.capacity);
            self.relayout(size);
        }
        let size = self.buf.len();
        let tail = (self.head + self.len) % size;
        let first = n.min(size - tail);
        self.buf[tail..tail + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        self.len += n;
        n
    }

    /// Drops `n` bytes from the front (they were acknowledged).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        if n == 0 {
            return;
        }
        self.head = (self.head + n) % self.buf.len();
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// Copies bytes starting `offset` bytes from the front into `out`; returns the count.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = out.len().min(self.len - offset);
        let size = self.buf.len();
        let start = (self.head + offset) % size;
        let first = n.min(size - start);
        out[..first].copy_from_slice(&self.buf[start..start + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_around_and_keeps_order() {
        let mut b = SendBuffer::new(8);
        assert_eq!(b.push(b"abcdef"), 6);
        b.consume(4);
        assert_eq!(b.push(b"ghijklmn"), 6);
        assert_eq!(b.free(), 0);
        let mut out = [0u8; 8];
        assert_eq!(b.copy_out(0, &mut out), 8);
        assert_eq!(&out, b"efghijkl");
        let mut out = [0u8; 3];
        assert_eq!(b.copy_out(6, &mut out), 2);
        assert_eq!(&out[..2], b"kl");
        b.set_capacity(16);
        assert_eq!(b.copy_out(0, &mut [0u8; 16]), 8);
        assert_eq!(b.push(b"0123456789"), 8);
    }

    #[test]
    fn storage_grows_with_what_is_written() {
        let mut b = SendBuffer::new(256 * 1024);
        assert_eq!(b.storage(), 0);
        assert_eq!(b.push(b"small"), 5);
        assert_eq!(b.storage(), 4096);
        let data: Vec<u8> = (0..100_000).map(|i| (i % 251) as u8).collect();
        assert_eq!(b.push(&data), 100_000);
        assert!(b.storage() >= 100_005 && b.storage() <= 256 * 1024);
        let mut out = vec![0u8; 100_005];
        assert_eq!(b.copy_out(0, &mut out), 100_005);
        assert_eq!(&out[..5], b"small");
        assert_eq!(&out[5..], &data[..]);
        b.consume(50_000);
        assert_eq!(b.push(&data), 100_000);
        assert_eq!(b.copy_out(50_005, &mut out[..10]), 10);
        assert_eq!(&out[..10], &data[..10]);
    }
}
