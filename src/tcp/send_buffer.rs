//! Bytes the application has written and the peer has not yet acknowledged.

/// A ring of bytes: the front is the oldest unacknowledged byte.
///
/// Storage is allocated on the first write, so idle connections cost little.
#[derive(Debug)]
pub struct SendBuffer {
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

    /// Changes the capacity; it never drops below what is held.
    pub fn set_capacity(&mut self, capacity: usize) {
        let capacity = capacity.max(self.len).max(1);
        if capacity == self.capacity {
            return;
        }
        if !self.buf.is_empty() {
            let mut data = vec![0; capacity];
            self.copy_out(0, &mut data[..self.len]);
            self.buf = data;
            self.head = 0;
        }
        self.capacity = capacity;
    }

    /// Appends as much of `data` as fits; returns how much was taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        if self.buf.is_empty() {
            self.buf = vec![0; self.capacity];
        }
        let tail = (self.head + self.len) % self.capacity;
        let first = n.min(self.capacity - tail);
        self.buf[tail..tail + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        self.len += n;
        n
    }

    /// Drops `n` bytes from the front (they were acknowledged).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % self.capacity;
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
        let start = (self.head + offset) % self.capacity;
        let first = n.min(self.capacity - start);
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
}
