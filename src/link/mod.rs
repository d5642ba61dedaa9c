//! Links: devices that move whole IPv4 packets.
//!
//! [`Tun`] is the real device (a Linux TUN interface); [`Pair`] is an
//! in-memory point-to-point link for stack-to-stack tests; [`Faulty`] and
//! [`PcapTee`] wrap any other link to inject faults or record a capture.
//! Every link is non-blocking: the runtime waits on [`Link::readable_fd`] and
//! [`Link::next_release`] and then calls [`Link::recv`] until it returns
//! `Ok(None)`.

pub mod faults;
pub mod pair;
pub mod pcap;
pub mod queues;
pub mod tun;
pub mod vnet;

pub use self::tun::{Tun, TunConfig, TunHandle};
pub use faults::{FaultConfig, Faulty};
pub use pair::{Pair, PairEnd};
pub use pcap::PcapTee;

use crate::time::Instant;
use crate::wire::Checksum;
use std::io;
use std::os::fd::RawFd;

/// A device that moves whole IPv4 packets.
pub trait Link: Send {
    /// Copies one received packet into `buf`; Ok(None) when nothing is waiting now (never blocks).
    ///
    /// A packet longer than `buf` is truncated to `buf.len()`, as read(2) on
    /// a TUN device does; a buffer of [`Link::max_packet`] bytes is always
    /// enough.
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// [`Link::recv`], also saying whether the packet's TCP checksum is to
    /// be verified: a TUN device with a virtio-net header vouches for the
    /// packets the kernel built itself (their checksum left partial, or
    /// already checked), and summing 64 KiB twice per packet was most of
    /// what taking one in cost. Links that cannot tell say
    /// `Checksum::Full`, and the packet is then as `recv` returns it.
    fn recv_checked(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, Checksum)>> {
        Ok(self.recv(now, buf)?.map(|n| (n, Checksum::Full)))
    }

    /// Sends one packet (never blocks; a full device queue may drop it, as a network may).
    fn send(&mut self, now: Instant, packet: &[u8]) -> io::Result<()>;

    /// The largest TCP packet [`Link::send_gso`] takes whole: more than the
    /// MTU when the device cuts segments itself (the kernel's TSO/GSO
    /// behind a TUN device with a virtio-net header), the MTU otherwise.
    fn gso_max(&self) -> usize {
        self.mtu()
    }

    /// Sends a TCP/IPv4 packet that carries several segments' payload, to
    /// be cut into segments of `mss` payload bytes each. Its TCP checksum
    /// holds only the pseudo-header sum (`wire::Checksum::Partial`).
    ///
    /// This default cuts it here, in software, and sends each segment with
    /// [`Link::send`]: test links and fault injectors then see exactly the
    /// packets a wire would carry. It allocates per call; the real device
    /// overrides it.
    fn send_gso(&mut self, now: Instant, packet: &[u8], mss: u16) -> io::Result<()> {
        let mut scratch = vec![0u8; self.mtu().max(usize::from(mss) + 120)];
        crate::wire::gso::segment(packet, usize::from(mss), &mut scratch, |seg| {
            self.send(now, seg)
        })
    }

    /// Packet I/O other threads may use while this link is owned by the
    /// I/O thread: only a bare TUN device has it (wrappers that record or
    /// change packets must see every packet, and say None).
    fn handle(&self) -> Option<TunHandle> {
        None
    }

    /// A descriptor that becomes readable when `recv` may return a packet (for poll(2)); None if there is none.
    fn readable_fd(&self) -> Option<RawFd>;

    /// The earliest time a packet held back (by a delay fault) becomes receivable, so the runtime can wake then.
    ///
    /// Wrappers that hold back *sent* packets report those too: the runtime
    /// waking then and calling `recv` is what pushes them out.
    fn next_release(&self) -> Option<Instant> {
        None
    }

    /// The largest packet the link carries.
    fn mtu(&self) -> usize;

    /// The largest packet `recv` may return: the MTU, or more when the
    /// link hands over the kernel's large segments (receive offload).
    fn max_packet(&self) -> usize {
        self.mtu()
    }
}

impl<L: Link + ?Sized> Link for Box<L> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        (**self).recv(now, buf)
    }

    fn recv_checked(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, Checksum)>> {
        (**self).recv_checked(now, buf)
    }

    fn send(&mut self, now: Instant, packet: &[u8]) -> io::Result<()> {
        (**self).send(now, packet)
    }

    fn gso_max(&self) -> usize {
        (**self).gso_max()
    }

    fn send_gso(&mut self, now: Instant, packet: &[u8], mss: u16) -> io::Result<()> {
        (**self).send_gso(now, packet, mss)
    }

    fn handle(&self) -> Option<TunHandle> {
        (**self).handle()
    }

    fn readable_fd(&self) -> Option<RawFd> {
        (**self).readable_fd()
    }

    fn next_release(&self) -> Option<Instant> {
        (**self).next_release()
    }

    fn mtu(&self) -> usize {
        (**self).mtu()
    }

    fn max_packet(&self) -> usize {
        (**self).max_packet()
    }
}
