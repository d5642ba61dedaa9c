//! An in-memory point-to-point link between two stacks in one process.
//!
//! Each direction is a bounded queue behind a mutex, plus an eventfd that is
//! readable exactly while the queue is non-empty, so a runtime can wait on a
//! `PairEnd` with poll(2) just as on a TUN device.

use super::Link;
use crate::time::Instant;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// Packets a direction holds before further sends are dropped, as a full
/// device queue would drop them.
pub const QUEUE_LIMIT: usize = 4096;

/// Emptied packet buffers kept for reuse, so a busy pair stops allocating.
const SPARE_LIMIT: usize = 256;

/// Constructor for a connected pair of [`PairEnd`]s.
#[derive(Debug)]
pub struct Pair;

impl Pair {
    /// Two ends of a link carrying packets of up to `mtu` bytes: what one
    /// end sends, the other receives, in order.
    ///
    /// # Panics
    ///
    /// If the kernel refuses an eventfd (the process is out of descriptors);
    /// [`Pair::try_new`] returns that error instead.
    // A pair has no value of its own; its constructor hands out the two ends.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(mtu: usize) -> (PairEnd, PairEnd) {
        match Pair::try_new(mtu) {
            Ok(ends) => ends,
            Err(err) => panic!("Pair::new: cannot create an eventfd: {err}"),
        }
    }

    /// Like [`Pair::new`], but reports a failure to create the eventfds.
    pub fn try_new(mtu: usize) -> io::Result<(PairEnd, PairEnd)> {
        let a = Arc::new(Direction::new()?);
        let b = Arc::new(Direction::new()?);
        Ok((
            PairEnd {
                rx: Arc::clone(&a),
                tx: Arc::clone(&b),
                mtu,
            },
            PairEnd { rx: b, tx: a, mtu },
        ))
    }
}

/// One end of a [`Pair`].
#[derive(Debug)]
pub struct PairEnd {
    rx: Arc<Direction>,
    tx: Arc<Direction>,
    mtu: usize,
}

impl PairEnd {
    /// Packets waiting to be received at this end.
    pub fn pending(&self) -> usize {
        self.rx.queue.lock().packets.len()
    }

    /// Packets dropped so far because this end's receive queue was full.
    pub fn dropped(&self) -> u64 {
        self.rx.queue.lock().dropped
    }
}

#[derive(Debug)]
struct Direction {
    queue: Mutex<Queue>,
    /// Readable while `queue.packets` is non-empty; only touched with the
    /// queue locked, so its state and the queue's always agree.
    event: OwnedFd,
}

#[derive(Debug, Default)]
struct Queue {
    packets: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    dropped: u64,
}

impl Direction {
    fn new() -> io::Result<Direction> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Direction {
            queue: Mutex::new(Queue::default()),
            // SAFETY: fd is a fresh descriptor nobody else owns.
            event: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. Failure is only possible on
        // counter overflow, which cannot happen with one write per
        // empty-to-non-empty transition.
        unsafe {
            libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN (already zero) is fine.
        unsafe {
            libc::read(self.event.as_raw_fd(), (&mut value as *mut u64).cast(), 8);
        }
    }
}

impl Link for PairEnd {
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut q = self.rx.queue.lock();
        let Some(packet) = q.packets.pop_front() else {
            return Ok(None);
        };
        let n = packet.len().min(buf.len());
        buf[..n].copy_from_slice(&packet[..n]);
        if q.packets.is_empty() {
            self.rx.drain();
        }
        if q.spare.len() < SPARE_LIMIT {
            q.spare.push(packet);
        }
        Ok(Some(n))
    }

    /// Queues `packet` for the other end. A packet longer than the MTU is an
    /// error (`InvalidInput`): it shows a stack bug that a silent drop would
    /// hide.
    fn send(&mut self, _now: Instant, packet: &[u8]) -> io::Result<()> {
        if packet.len() > self.mtu {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "packet of {} bytes exceeds the pair's MTU of {}",
                    packet.len(),
                    self.mtu
                ),
            ));
        }
        let mut q = self.tx.queue.lock();
        if q.packets.len() >= QUEUE_LIMIT {
            q.dropped += 1;
            return Ok(());
        }
        let mut copy = q.spare.pop().unwrap_or_default();
        copy.clear();
        copy.extend_from_slice(packet);
        let was_empty = q.packets.is_empty();
        q.packets.push_back(copy);
        if was_empty {
            self.tx.signal();
        }
        Ok(())
    }

    fn readable_fd(&self) -> Option<RawFd> {
        Some(self.rx.event.as_raw_fd())
    }

    fn mtu(&self) -> usize {
        self.mtu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 1 && pfd.revents & libc::POLLIN != 0
    }

    #[test]
    fn packets_cross_in_order_both_ways() {
        let (mut a, mut b) = Pair::new(1500);
        let now = Instant::ZERO;
        let mut buf = [0u8; 1500];
        a.send(now, b"one").unwrap();
        a.send(now, b"two").unwrap();
        b.send(now, b"back").unwrap();
        assert_eq!(b.pending(), 2);
        assert_eq!(b.recv(now, &mut buf).unwrap(), Some(3));
        assert_eq!(&buf[..3], b"one");
        assert_eq!(b.recv(now, &mut buf).unwrap(), Some(3));
        assert_eq!(&buf[..3], b"two");
        assert_eq!(b.recv(now, &mut buf).unwrap(), None);
        assert_eq!(a.recv(now, &mut buf).unwrap(), Some(4));
        assert_eq!(&buf[..4], b"back");
        assert_eq!(a.recv(now, &mut buf).unwrap(), None);
    }

    #[test]
    fn eventfd_is_readable_exactly_while_packets_wait() {
        let (mut a, mut b) = Pair::new(1500);
        let fd = b.readable_fd().unwrap();
        let now = Instant::ZERO;
        let mut buf = [0u8; 64];
        assert!(!readable(fd));
        a.send(now, b"x").unwrap();
        a.send(now, b"y").unwrap();
        assert!(readable(fd));
        b.recv(now, &mut buf).unwrap();
        assert!(readable(fd), "one packet still waits");
        b.recv(now, &mut buf).unwrap();
        assert!(!readable(fd));
        assert!(!readable(a.readable_fd().unwrap()));
    }

    #[test]
    fn full_queue_drops_and_oversize_is_an_error() {
        let (mut a, mut b) = Pair::new(100);
        let now = Instant::ZERO;
        for i in 0..QUEUE_LIMIT + 10 {
            a.send(now, &(i as u32).to_be_bytes()).unwrap();
        }
        assert_eq!(b.pending(), QUEUE_LIMIT);
        assert_eq!(b.dropped(), 10);
        let err = a.send(now, &[0u8; 101]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // The oldest packets survive; the overflow was the newest.
        let mut buf = [0u8; 4];
        assert_eq!(b.recv(now, &mut buf).unwrap(), Some(4));
        assert_eq!(u32::from_be_bytes(buf), 0);
    }

    #[test]
    fn short_buffer_truncates() {
        let (mut a, mut b) = Pair::new(1500);
        let now = Instant::ZERO;
        a.send(now, b"abcdef").unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(b.recv(now, &mut buf).unwrap(), Some(3));
        assert_eq!(&buf, b"abc");
    }

    #[test]
    fn ends_work_from_different_threads() {
        let (mut a, mut b) = Pair::new(1500);
        let sender = std::thread::spawn(move || {
            for i in 0u32..1000 {
                a.send(Instant::ZERO, &i.to_be_bytes()).unwrap();
            }
        });
        let mut next = 0u32;
        let mut buf = [0u8; 4];
        while next < 1000 {
            let mut pfd = libc::pollfd {
                fd: b.readable_fd().unwrap(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 5000) };
            while let Some(n) = b.recv(Instant::ZERO, &mut buf).unwrap() {
                assert_eq!(n, 4);
                assert_eq!(u32::from_be_bytes(buf), next);
                next += 1;
            }
        }
        sender.join().unwrap();
    }
}
