//! Bytes the application has written and the peer has not yet acknowledged.
//!
//! Like the receive ring, the ring is shared with the application: a
//! [`SendWriter`] appends without the stack's lock once the connection has
//! taken a send through the stack, while the control block (under it)
//! copies segments out and drops what the peer acknowledged. Both take the
//! ring's own lock for a copy and nothing more.

use std::sync::Arc;

use parking_lot::Mutex;

/// The control block's side of the ring.
#[derive(Debug)]
pub struct SendBuffer {
    ring: Arc<Mutex<Ring>>,
}

/// The application's side: appends without the stack's lock (see
/// [`SendWriter::write`]).
#[derive(Clone, Debug)]
pub struct SendWriter(Arc<Mutex<Ring>>);

/// What a [`SendWriter::write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Bytes appended.
    pub bytes: usize,
    /// Nothing already under way will send them (no ACK is awaited while
    /// data waits): the caller has the stack look at the connection.
    pub kick: bool,
}

/// A ring of bytes: the front is the oldest unacknowledged byte.
///
/// Storage grows as the application writes (doubling, from 4 KiB) up to
/// the capacity, so idle and lightly used connections cost little.
#[derive(Debug)]
struct Ring {
    /// The ring's storage; its length (not the capacity) is the modulus.
    buf: Vec<u8>,
    capacity: usize,
    head: usize,
    len: usize,
    /// The application may append without the stack: the connection was
    /// established (or a send through the stack found it open for writing),
    /// and nothing has shut that since (FIN queued, reset, closed).
    open: bool,
    /// The last transmission left data waiting with data in flight: the
    /// ACK (or timeout) that must come will send what is appended now.
    clocked: bool,
}

impl Ring {
    fn free(&self) -> usize {
        self.capacity - self.len
    }

    /// Moves the held bytes to the front of new storage of `size` bytes.
    fn relayout(&mut self, size: usize) {
        let mut data = vec![0; size];
        self.copy_out(0, &mut data[..self.len]);
        self.buf = data;
        self.head = 0;
    }

    fn push(&mut self, data: &[u8]) -> usize {
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

    fn copy_out(&self, offset: usize, out: &mut [u8]) -> usize {
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

impl SendBuffer {
    /// An empty buffer that will hold at most `capacity` bytes.
    pub fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            ring: Arc::new(Mutex::new(Ring {
                buf: Vec::new(),
                capacity: capacity.max(1),
                head: 0,
                len: 0,
                open: false,
                clocked: false,
            })),
        }
    }

    /// The application's handle for appending without the stack's lock.
    pub fn writer(&self) -> SendWriter {
        SendWriter(self.ring.clone())
    }

    /// Bytes held (sent or not, but unacknowledged).
    pub fn len(&self) -> usize {
        self.ring.lock().len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room left for the application.
    pub fn free(&self) -> usize {
        self.ring.lock().free()
    }

    /// The most the buffer can hold.
    pub fn capacity(&self) -> usize {
        self.ring.lock().capacity
    }

    /// Changes the capacity; it never drops below what is held. Storage
    /// larger than the new capacity shrinks to it.
    pub fn set_capacity(&mut self, capacity: usize) {
        let mut r = self.ring.lock();
        r.capacity = capacity.max(r.len).max(1);
        if r.buf.len() > r.capacity {
            let size = r.capacity;
            r.relayout(size);
        }
    }

    /// Gives the storage back while nothing is held (the direction is
    /// done: a later push allocates afresh).
    pub fn release(&mut self) {
        let mut r = self.ring.lock();
        if r.len == 0 {
            r.buf = Vec::new();
            r.head = 0;
        }
    }

    /// Bytes of storage held now (memory accounting, tests).
    pub fn storage(&self) -> usize {
        self.ring.lock().buf.len()
    }

    /// Appends as much of `data` as fits; returns how much was taken. The
    /// connection was found open for writing: the application may append
    /// without the stack from now on.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let mut r = self.ring.lock();
        r.open = true;
        r.push(data)
    }

    /// The connection is established: the application may append without
    /// the stack (until [`SendBuffer::shut`]).
    pub fn open(&mut self) {
        self.ring.lock().open = true;
    }

    /// Appending without the stack ends (a FIN is queued, or the
    /// connection ends): the application's next send goes through the
    /// stack, which reports why.
    pub fn shut(&mut self) {
        self.ring.lock().open = false;
    }

    /// Whether data waiting now will go without the stack being asked:
    /// an ACK or a timeout is due that will send it.
    pub fn set_clocked(&mut self, clocked: bool) {
        self.ring.lock().clocked = clocked;
    }

    /// Drops `n` bytes from the front (they were acknowledged).
    pub fn consume(&mut self, n: usize) {
        let mut r = self.ring.lock();
        let n = n.min(r.len);
        if n == 0 {
            return;
        }
        r.head = (r.head + n) % r.buf.len();
        r.len -= n;
        if r.len == 0 {
            r.head = 0;
        }
    }

    /// Copies bytes starting `offset` bytes from the front into `out`; returns the count.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> usize {
        self.ring.lock().copy_out(offset, out)
    }
}

impl SendWriter {
    /// Appends as much of `data` as fits without the stack's lock. None if
    /// the ring is closed to such writes, full, or `data` is empty: the
    /// caller then goes through the stack (errors, blocking, the first send).
    pub fn write(&self, data: &[u8]) -> Option<Written> {
        let mut r = self.0.lock();
        if !r.open || data.is_empty() || r.free() == 0 {
            return None;
        }
        let bytes = r.push(data);
        Some(Written {
            bytes,
            kick: !r.clocked,
        })
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

    #[test]
    fn the_writer_appends_only_while_open_and_says_when_to_kick() {
        let mut b = SendBuffer::new(10);
        let w = b.writer();
        assert_eq!(w.write(b"early"), None, "not established yet");
        b.open();
        let r = w.write(b"hello").unwrap();
        assert_eq!((r.bytes, r.kick), (5, true), "nothing under way: kick");
        b.set_clocked(true);
        let r = w.write(b"world!").unwrap();
        assert_eq!((r.bytes, r.kick), (5, false), "an ACK will send it");
        assert_eq!(w.write(b"more"), None, "full");
        let mut out = [0u8; 10];
        assert_eq!(b.copy_out(0, &mut out), 10);
        assert_eq!(&out, b"helloworld");
        b.consume(10);
        b.shut();
        assert_eq!(w.write(b"after FIN"), None, "shut: through the stack");
        assert!(b.is_empty());
    }
}
