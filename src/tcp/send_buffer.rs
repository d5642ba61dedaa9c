//! Bytes the application has written and the peer has not yet acknowledged.
//!
//! Like the receive ring, the ring is shared with the application: a
//! [`SendWriter`] appends without the stack's lock once the connection has
//! taken a send through the stack, while the control block (under it)
//! copies segments out and drops what the peer acknowledged. Both take the
//! ring's own lock for a copy and nothing more.
//!
//! A segment may also leave straight from the ring ([`SendBuffer::pin`]):
//! the packet then points into the ring's storage until it is written, so
//! the storage is reference-counted and a ring that grows or shrinks moves
//! to new storage, leaving the old to whoever still points into it.

use std::ptr::NonNull;
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

/// A packet's payload left in the send ring (see [`SendBuffer::pin`]):
/// the storage it lies in stays allocated until this is dropped.
///
/// Bytes of it the peer acknowledges meanwhile may be overwritten by the
/// application's next writes (the ring counts them free): the peer then
/// receives other bytes at sequence numbers it already holds, and drops
/// them unread. Bytes not acknowledged are never overwritten where a
/// payload points (a ring that moves copies them to new storage).
#[derive(Clone, Debug)]
pub struct Payload {
    ring: Arc<Mutex<Ring>>,
    storage: Arc<Storage>,
    start: usize,
    len: usize,
}

/// A ring of bytes: the front is the oldest unacknowledged byte.
///
/// Storage grows as the application writes (doubling, from 4 KiB) up to
/// the capacity, so idle and lightly used connections cost little.
#[derive(Debug)]
struct Ring {
    /// The ring's storage; its length (not the capacity) is the modulus.
    buf: Arc<Storage>,
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

    /// Moves the held bytes to the front of new storage of `size` bytes
    /// (the old stays allocated while a packet points into it).
    fn relayout(&mut self, size: usize) {
        let data = Storage::new(size);
        // SAFETY: the ring's lock is held (`&mut self`), and the new
        // storage is not shared yet.
        self.copy_out(0, unsafe { &mut data.bytes_mut()[..self.len] });
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
        // SAFETY: the ring's lock is held; packets pointing into the
        // storage only pass its address to the kernel (see `Payload`).
        let buf = unsafe { self.buf.bytes_mut() };
        buf[tail..tail + first].copy_from_slice(&data[..first]);
        buf[..n - first].copy_from_slice(&data[first..n]);
        self.len += n;
        n
    }

    fn copy_out(&self, offset: usize, out: &mut [u8]) -> usize {
        if offset >= self.len {
            return 0;
        }
        let n = out.len().min(self.len - offset);
        let start = (self.head + offset) % self.buf.len();
        // SAFETY: the ring's lock is held.
        copy_wrapped(unsafe { self.buf.bytes() }, start, &mut out[..n]);
        n
    }
}

/// Copies `out.len()` bytes of the ring storage `buf` from `start` on,
/// wrapping at its end.
fn copy_wrapped(buf: &[u8], start: usize, out: &mut [u8]) {
    let n = out.len();
    let first = n.min(buf.len() - start);
    out[..first].copy_from_slice(&buf[start..start + first]);
    out[first..].copy_from_slice(&buf[..n - first]);
}

/// A ring's storage, shared with the packets that point into it.
///
/// Rust code reads and writes it only under the ring's lock, and only
/// while it is the ring's storage; a [`Payload`] hands its address to the
/// kernel (a write system call), which is not Rust code.
#[derive(Debug)]
struct Storage {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the bytes are plain memory; access is serialised by the ring's
// lock, as the comment on `Storage` says.
unsafe impl Send for Storage {}
// SAFETY: as above.
unsafe impl Sync for Storage {}

impl Storage {
    /// No storage (shared by every empty ring: no allocation).
    fn none() -> Arc<Storage> {
        static NONE: std::sync::OnceLock<Arc<Storage>> = std::sync::OnceLock::new();
        NONE.get_or_init(|| Storage::new(0)).clone()
    }

    /// Zeroed storage of `size` bytes.
    fn new(size: usize) -> Arc<Storage> {
        let bytes: Box<[u8]> = vec![0u8; size].into_boxed_slice();
        let len = bytes.len();
        let ptr = NonNull::new(Box::into_raw(bytes).cast::<u8>()).expect("Box is never null");
        Arc::new(Storage { ptr, len })
    }

    fn len(&self) -> usize {
        self.len
    }

    /// # Safety
    /// The ring's lock must be held and this be the ring's storage.
    unsafe fn bytes(&self) -> &[u8] {
        std::slice::from_raw_parts(self.ptr.as_ptr(), self.len)
    }

    /// # Safety
    /// As for [`Storage::bytes`]; no other reference to the bytes is alive
    /// (the lock makes it so).
    #[allow(clippy::mut_from_ref)]
    unsafe fn bytes_mut(&self) -> &mut [u8] {
        std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        // SAFETY: made by `Box::into_raw` in `Storage::new` with this length.
        drop(unsafe { Box::from_raw(slice) });
    }
}

impl Payload {
    /// Bytes of payload.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for no bytes (never made so: see [`SendBuffer::pin`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the bytes lie: one span, or two when they wrap around the
    /// ring's end (the second then of nonzero length). The memory stays
    /// allocated while `self` lives; it is for a gather write(2), not to
    /// be read from Rust (the application may be writing into parts the
    /// peer has acknowledged meanwhile).
    pub fn spans(&self) -> [(*const u8, usize); 2] {
        let base = self.storage.ptr.as_ptr() as *const u8;
        let first = self.len.min(self.storage.len() - self.start);
        // SAFETY: start < len of the storage (see `SendBuffer::pin`), so
        // the offset stays inside the allocation.
        let at = unsafe { base.add(self.start) };
        [(at, first), (base, self.len - first)]
    }

    /// Copies the bytes into `out` (at least `len` bytes long), under the
    /// ring's lock: for links that cannot gather and for packet traces.
    pub fn copy_to(&self, out: &mut [u8]) {
        let _ring = self.ring.lock();
        // SAFETY: the ring's lock is held; whether or not this is still the
        // ring's storage, no one writes to it while the lock is held.
        let buf = unsafe { self.storage.bytes() };
        copy_wrapped(buf, self.start, &mut out[..self.len]);
    }
}

impl SendBuffer {
    /// An empty buffer that will hold at most `capacity` bytes.
    pub fn new(capacity: usize) -> SendBuffer {
        SendBuffer {
            ring: Arc::new(Mutex::new(Ring {
                buf: Storage::none(),
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
            r.buf = Storage::none();
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

    /// The `len` bytes starting `offset` bytes from the front, left where
    /// they are for a packet to point at (no copy); None if the ring does
    /// not hold them all, or `len` is 0.
    pub fn pin(&self, offset: usize, len: usize) -> Option<Payload> {
        let r = self.ring.lock();
        if len == 0 || offset.checked_add(len)? > r.len {
            return None;
        }
        Some(Payload {
            ring: self.ring.clone(),
            storage: r.buf.clone(),
            start: (r.head + offset) % r.buf.len(),
            len,
        })
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

    #[test]
    fn a_pinned_payload_outlives_the_storage_it_was_pinned_in() {
        let mut b = SendBuffer::new(1 << 20);
        let w = b.writer();
        b.open();
        assert_eq!(b.push(b"0123456789"), 10);
        let p = b.pin(2, 5).unwrap();
        let old = p.spans()[0].0;
        // Growing moves the ring to new storage; shrinking and releasing
        // do too. The payload keeps the old alive and unchanged.
        let more = vec![b'x'; 100_000];
        assert_eq!(w.write(&more).unwrap().bytes, 100_000);
        b.consume(100_010);
        b.release();
        assert_eq!(b.storage(), 0);
        let mut out = [0u8; 5];
        p.copy_to(&mut out);
        assert_eq!(&out, b"23456");
        assert_eq!(p.spans(), [(old, 5), (old.wrapping_sub(2), 0)]);
        assert_eq!(b.pin(0, 1).map(|p| p.len()), None, "nothing held");
    }

    #[test]
    fn a_payload_across_the_end_of_the_ring_is_two_spans() {
        let mut b = SendBuffer::new(4096);
        assert_eq!(b.push(&[1u8; 4090]), 4090);
        b.consume(4080);
        assert_eq!(b.push(&[2u8; 50]), 50);
        let p = b.pin(5, 40).unwrap();
        let [(a, n), (c, m)] = p.spans();
        assert_eq!(
            (n, m),
            (11, 29),
            "the ring's last 11 bytes, then its first 29"
        );
        // SAFETY: the spans are allocated while `p` lives and nothing
        // writes to the ring here.
        let (a, c) = unsafe {
            (
                std::slice::from_raw_parts(a, n).to_vec(),
                std::slice::from_raw_parts(c, m).to_vec(),
            )
        };
        assert_eq!(a, [&[1u8; 5][..], &[2u8; 6][..]].concat());
        assert_eq!(c, vec![2u8; 29]);
        assert_eq!(b.pin(10, 51).map(|p| p.len()), None, "past the end");
        assert_eq!(b.pin(60, 0).map(|p| p.len()), None, "empty");
    }
}
