//! Bytes received and not yet read by the application, with room for
//! segments that arrive ahead of a hole.

use super::reassembler::Reassembler;

/// A ring: `len` readable bytes from `head`, then the receive window, part of
/// which may already hold out-of-order bytes (tracked by the reassembler).
#[derive(Debug)]
pub struct RecvBuffer {
    buf: Vec<u8>,
    capacity: usize,
    head: usize,
    len: usize,
    ooo: Reassembler,
}

impl RecvBuffer {
    /// An empty buffer of `capacity` bytes (allocated on first use).
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
    pub fn grow(&mut self, capacity: usize) {
        if capacity <= self.capacity {
            return;
        }
        if !self.buf.is_empty() {
            let mut data = vec![0; capacity];
            let old = self.capacity;
            for (i, slot) in data.iter_mut().take(old).enumerate() {
                *slot = self.buf[(self.head + i) % old];
            }
            self.buf = data;
            self.head = 0;
        }
        self.capacity = capacity;
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
        if self.buf.is_empty() {
            self.buf = vec![0; self.capacity];
        }
        let start = (self.head + self.len + offset) % self.capacity;
        let first = n.min(self.capacity - start);
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
        let first = n.min(self.capacity - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        if !peek {
            self.head = (self.head + n) % self.capacity;
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
}
