//! A Linux TUN device carrying raw IPv4 packets.
//!
//! The `tun` crate opens `/dev/net/tun`, issues `TUNSETIFF` (`IFF_TUN |
//! IFF_NO_PI`) and, for a new device, sets address, netmask, MTU and the up
//! flag through `SIOCSIF*` ioctls. After that this module keeps only the raw
//! descriptor and does its own non-blocking read(2)/write(2), so the packet
//! path has no locks and no allocation.
//!
//! **Namespaces.** Both the lookup of an existing device and the creation of
//! a new one happen in the network namespace of the *calling thread* (not of
//! the process). A test that has moved its thread into a namespace with
//! setns(2) therefore gets a device inside that namespace; the descriptor
//! stays bound to that device wherever it is used afterwards.

use super::{vnet, Link};
use crate::sys;
use crate::time::Instant;
use crate::wire::Checksum;
use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{IntoRawFd, RawFd};
use tun::AbstractDevice;

/// The longest interface name the kernel accepts (IFNAMSIZ minus the NUL).
const MAX_NAME_LEN: usize = 15;

/// The smallest MTU an IPv4 interface may have (RFC 791).
const MIN_MTU: u16 = 68;

/// How to find or create a TUN device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name, at most 15 bytes.
    pub name: String,
    /// The address the kernel side of the interface gets when the device is
    /// created (ignored when attaching to an existing device).
    pub kernel_addr: Ipv4Addr,
    /// Prefix length of `kernel_addr`'s subnet, 0..=32.
    pub prefix_len: u8,
    /// MTU given to a newly created device; an existing device keeps its own.
    pub mtu: u16,
    /// Receive offload: open the device with a virtio-net header and let
    /// the kernel hand over TCP segments of up to 64 KiB (its GSO), with
    /// partial checksums, instead of one read per MTU-sized packet.
    pub offload: bool,
}

/// An open TUN device: non-blocking, one IPv4 packet per read or write.
#[derive(Debug)]
pub struct Tun {
    /// Closed with a raw system call on drop, never through libc's `close`
    /// (under the LD_PRELOAD shim that name is a hook).
    fd: RawFd,
    name: String,
    mtu: usize,
    /// Every read and write carries a virtio-net header.
    vnet: bool,
    /// The kernel may hand over segments larger than the MTU.
    large: bool,
}

/// The largest packet the kernel hands over with receive offload.
const MAX_OFFLOAD_PACKET: usize = 65535;

impl Tun {
    /// Attaches to the device `config.name` if it exists in the calling
    /// thread's network namespace (its addresses are left alone), otherwise
    /// creates it there, gives the kernel side `kernel_addr/prefix_len`, sets
    /// the MTU and brings it up.
    ///
    /// A created device is not persistent: it disappears when the returned
    /// `Tun` is dropped. Attaching to a device already opened by someone
    /// else fails with `EBUSY` from the kernel.
    pub fn open(config: &TunConfig) -> io::Result<Tun> {
        validate(config)?;
        let mut cfg = tun::Configuration::default();
        cfg.tun_name(&config.name).layer(tun::Layer::L3);
        let attach = Tun::exists(&config.name);
        let offload = config.offload;
        if attach {
            // The crate calls its address/MTU configuration step only when
            // this flag is set; leaving it off is what makes this an attach.
            cfg.platform_config(|p| {
                p.ensure_root_privileges(false);
                p.vnet_hdr(offload);
            });
        } else {
            cfg.platform_config(|p| {
                p.vnet_hdr(offload);
            });
            cfg.address(config.kernel_addr)
                .netmask(netmask(config.prefix_len))
                .mtu(config.mtu)
                .up();
        }
        let device = match tun::create(&cfg) {
            Ok(d) => d,
            // The kernel lets no plain open attach to a multi-queue device
            // (one made for shards): take one queue of it instead.
            Err(e) if attach => return Tun::open_one_queue(config).map_err(|_| e.into()),
            Err(e) => return Err(e.into()),
        };
        let mtu = if attach {
            // An attached device has whatever MTU its creator chose.
            device.mtu().map_err(io::Error::from)?
        } else {
            config.mtu
        };
        let name = device.tun_name().map_err(io::Error::from)?;
        let fd = device.into_raw_fd();
        if let Err(e) = set_nonblocking(fd) {
            sys::close(fd);
            return Err(e);
        }
        let large = offload && ask_for_large_segments(fd);
        Ok(Tun {
            fd,
            name,
            mtu: usize::from(mtu),
            vnet: offload,
            large,
        })
    }

    /// Opens `n` queues of a multi-queue device (see [`super::queues`]),
    /// as [`Tun::open`] does one: attached to if it exists (it must then be
    /// multi-queue), otherwise created, addressed, sized and brought up.
    /// Each queue is a `Tun` of its own; the kernel puts each connection's
    /// packets on the queue `queues::shard_of` names. Fails if the kernel
    /// refuses the steering program (it needs CAP_BPF): without it the
    /// queues would not say which connection is whose.
    pub fn open_queues(config: &TunConfig, n: usize) -> io::Result<Vec<Tun>> {
        validate(config)?;
        let attach = Tun::exists(&config.name);
        let queues = super::queues::Queues::open(&config.name, n, config.offload)?;
        if !queues.steered() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the kernel refused the queue steering program (it needs CAP_BPF)",
            ));
        }
        let mtu = if attach {
            super::queues::mtu_of(&config.name)?
        } else {
            super::queues::configure(
                &config.name,
                config.kernel_addr,
                config.prefix_len,
                config.mtu,
            )?;
            config.mtu
        };
        let large = config.offload && ask_for_large_segments(queues.fds()[0]);
        Ok(queues
            .into_fds()
            .into_iter()
            .map(|fd| Tun {
                fd,
                name: config.name.clone(),
                mtu: usize::from(mtu),
                vnet: config.offload,
                large,
            })
            .collect())
    }

    /// One queue of the existing multi-queue device `config.name`, which
    /// keeps its configuration; all its traffic comes to this queue.
    fn open_one_queue(config: &TunConfig) -> io::Result<Tun> {
        let queues = super::queues::Queues::open(&config.name, 1, config.offload)?;
        let mtu = super::queues::mtu_of(&config.name)?;
        let large = config.offload && ask_for_large_segments(queues.fds()[0]);
        let fd = queues.into_fds().remove(0);
        Ok(Tun {
            fd,
            name: config.name.clone(),
            mtu: usize::from(mtu),
            vnet: config.offload,
            large,
        })
    }

    /// Whether an interface called `name` exists in the calling thread's
    /// network namespace.
    pub fn exists(name: &str) -> bool {
        let Ok(c_name) = CString::new(name) else {
            return false;
        };
        // if_nametoindex asks through a socket it opens now, so it sees the
        // calling thread's namespace (unlike /sys, which shows the mounter's).
        // SAFETY: c_name is a valid NUL-terminated string.
        unsafe { libc::if_nametoindex(c_name.as_ptr()) != 0 }
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Tun {
    fn drop(&mut self) {
        sys::close(self.fd);
    }
}

impl Link for Tun {
    /// Reads one packet; packets that are not IPv4 (the kernel sends IPv6
    /// router solicitations on any new interface) are skipped.
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        Ok(self.handle().recv(buf, true)?.map(|(n, _)| n))
    }

    fn recv_checked(
        &mut self,
        _now: Instant,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, Checksum)>> {
        self.handle().recv(buf, false)
    }

    fn send(&mut self, _now: Instant, packet: &[u8]) -> io::Result<()> {
        self.handle().send(packet)
    }

    fn send_gso(&mut self, _now: Instant, packet: &[u8], mss: u16) -> io::Result<()> {
        self.handle().send_gso(packet, mss)
    }

    fn handle(&self) -> Option<TunHandle> {
        Some(Tun::handle(self))
    }

    fn gso_max(&self) -> usize {
        if self.vnet {
            MAX_OFFLOAD_PACKET
        } else {
            self.mtu
        }
    }

    fn readable_fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn max_packet(&self) -> usize {
        if self.large {
            MAX_OFFLOAD_PACKET
        } else {
            self.mtu
        }
    }
}

impl Tun {
    fn handle(&self) -> TunHandle {
        TunHandle {
            fd: self.fd,
            vnet: self.vnet,
            mtu: self.mtu,
        }
    }
}

/// A [`Tun`]'s packet I/O without the device: a read(2) or write(2) per
/// packet needs no state, so any thread may send, or take a packet in,
/// while the I/O thread owns the device (see [`Link::handle`]). It does not
/// own the descriptor: whoever holds one must stop using it before the
/// `Tun` is dropped.
#[derive(Clone, Copy, Debug)]
pub struct TunHandle {
    fd: RawFd,
    vnet: bool,
    mtu: usize,
}

impl TunHandle {
    /// The device's descriptor (to poll for packets).
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Reads one packet, as [`Link::recv_checked`]; packets that are not
    /// IPv4 (the kernel sends IPv6 router solicitations on any new
    /// interface) are skipped. With `complete`, a checksum the kernel left
    /// partial is completed (and the packet then says `Checksum::Full`),
    /// as [`Link::recv`] promises.
    pub fn recv(&self, buf: &mut [u8], complete: bool) -> io::Result<Option<(usize, Checksum)>> {
        loop {
            let mut hdr = [0u8; vnet::HDR_LEN];
            let read = if self.vnet {
                sys::read2(self.fd, &mut hdr, buf).map(|n| n.saturating_sub(vnet::HDR_LEN))
            } else {
                sys::read(self.fd, buf)
            };
            let n = match read {
                Ok(n) => n,
                Err(err) => match err.kind() {
                    io::ErrorKind::WouldBlock => return Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(err),
                },
            };
            if n == 0 {
                if self.vnet {
                    continue; // a header alone: nothing to take
                }
                return Ok(None);
            }
            if buf[0] >> 4 != 4 {
                continue;
            }
            if !self.vnet {
                return Ok(Some((n, Checksum::Full)));
            }
            if complete && vnet::needs_checksum(&hdr) {
                if vnet::complete_checksum(&hdr, &mut buf[..n]) {
                    return Ok(Some((n, Checksum::Full)));
                }
                continue; // a header that does not fit the packet
            }
            return Ok(Some((n, vnet::received_checksum(&hdr))));
        }
    }

    /// Sends one packet (a full device queue drops it, as a wire would).
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.write(&vnet::PLAIN, packet)
    }

    /// Sends a packet of several segments (see [`Link::send_gso`]). With
    /// the virtio-net header the kernel takes it whole: it delivers it
    /// locally as one (as its GRO would have made it), or cuts it where it
    /// must leave by a smaller MTU.
    pub fn send_gso(&self, packet: &[u8], mss: u16) -> io::Result<()> {
        if !self.vnet {
            // Not asked for (gso_max is the MTU then): cut it here.
            let mut scratch = vec![0u8; self.mtu];
            return crate::wire::gso::segment(packet, usize::from(mss), &mut scratch, |seg| {
                self.send(seg)
            });
        }
        let headers = headers_len(packet);
        let segments = packet.len() > headers + usize::from(mss);
        self.write(
            &vnet::gso(ip_header_len(packet), headers, mss, segments),
            packet,
        )
    }

    /// Whether the device takes packets whose TCP checksum is left partial
    /// (it has the virtio-net header): what [`TunHandle::send_parts`] needs.
    pub fn completes_checksums(&self) -> bool {
        self.vnet
    }

    /// Sends a TCP/IPv4 packet given as its headers (`head`) and payload
    /// spans (pointer, length) written as they lie, with one gather write:
    /// the payload is not copied on the way. Its TCP checksum holds the
    /// pseudo-header sum only; the kernel completes it, and with `gso`
    /// cuts the packet into segments of that many payload bytes. Needs
    /// the virtio-net header (Unsupported without); at most two spans.
    ///
    /// # Safety
    /// Each span must be memory readable for its length until this returns.
    pub unsafe fn send_parts(
        &self,
        head: &[u8],
        spans: &[(*const u8, usize)],
        gso: Option<u16>,
    ) -> io::Result<()> {
        if !self.vnet {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let hdr = vnet::gso(
            ip_header_len(head),
            headers_len(head),
            gso.unwrap_or(0),
            gso.is_some(),
        );
        let iovec = |ptr: *const u8, len: usize| libc::iovec {
            iov_base: ptr as *mut libc::c_void,
            iov_len: len,
        };
        let mut iov = [iovec(std::ptr::null(), 0); 4];
        iov[0] = iovec(hdr.as_ptr(), hdr.len());
        iov[1] = iovec(head.as_ptr(), head.len());
        let mut n = 2;
        for &(ptr, len) in spans.iter().filter(|s| s.1 > 0) {
            // At most two (a ring's payload wraps once): more would be a
            // packet shorter than its header says.
            let slot = iov.get_mut(n).ok_or(io::ErrorKind::InvalidInput)?;
            *slot = iovec(ptr, len);
            n += 1;
        }
        // SAFETY: the header and head are borrowed; the caller vouches for
        // the spans.
        retry_write(|| unsafe { sys::writev(self.fd, &iov[..n]) })
    }

    /// Writes one packet after `hdr` (when the device has the header).
    fn write(&self, hdr: &[u8; vnet::HDR_LEN], packet: &[u8]) -> io::Result<()> {
        retry_write(|| {
            if self.vnet {
                sys::write2(self.fd, hdr, packet)
            } else {
                sys::write(self.fd, packet)
            }
        })
    }
}

/// The length of a packet's IPv4 header (20 if it is too short to say).
fn ip_header_len(packet: &[u8]) -> usize {
    usize::from(packet.first().copied().unwrap_or(0x45) & 0x0f) * 4
}

/// The length of a TCP/IPv4 packet's IPv4 and TCP headers.
fn headers_len(packet: &[u8]) -> usize {
    let ihl = ip_header_len(packet);
    ihl + packet.get(ihl + 12).map_or(20, |b| usize::from(b >> 4) * 4)
}

/// Runs a write until it is not interrupted. A full queue is congestion,
/// not failure: the packet is lost as it would be on a wire, and TCP
/// sends it again.
fn retry_write(mut write: impl FnMut() -> io::Result<usize>) -> io::Result<()> {
    loop {
        let Err(err) = write() else {
            return Ok(());
        };
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) => return Ok(()),
            _ => return Err(err),
        }
    }
}

/// With the virtio-net header on, asks the kernel for large segments with
/// partial checksums (for the whole device); a kernel that refuses still
/// gives the header. Returns whether it agreed.
fn ask_for_large_segments(fd: RawFd) -> bool {
    sys::ioctl_int(
        fd,
        libc::TUNSETOFFLOAD as libc::c_ulong,
        libc::c_ulong::from(libc::TUN_F_CSUM | libc::TUN_F_TSO4),
    )
    .is_ok()
}

fn validate(config: &TunConfig) -> io::Result<()> {
    let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    let name = &config.name;
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return invalid(format!(
            "TUN device name {name:?} must be 1 to {MAX_NAME_LEN} bytes"
        ));
    }
    if name
        .bytes()
        .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
    {
        return invalid(format!(
            "TUN device name {name:?} has a forbidden character"
        ));
    }
    if config.prefix_len > 32 {
        return invalid(format!(
            "prefix length {} is longer than 32",
            config.prefix_len
        ));
    }
    if config.mtu < MIN_MTU {
        return invalid(format!(
            "MTU {} is below the IPv4 minimum of {MIN_MTU}",
            config.mtu
        ));
    }
    Ok(())
}

fn netmask(prefix_len: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

/// Non-blocking for the I/O thread's batches, and close-on-exec so that a
/// program the application runs does not keep the device open.
fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let flags = sys::fcntl(fd, libc::F_GETFL, 0)?;
    sys::fcntl(
        fd,
        libc::F_SETFL,
        flags as i64 | i64::from(libc::O_NONBLOCK),
    )?;
    sys::fcntl(fd, libc::F_SETFD, i64::from(libc::FD_CLOEXEC))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str) -> TunConfig {
        TunConfig {
            name: name.to_string(),
            kernel_addr: Ipv4Addr::new(10, 77, 0, 1),
            prefix_len: 24,
            mtu: 1500,
            offload: false,
        }
    }

    #[test]
    fn netmask_from_prefix() {
        assert_eq!(netmask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(netmask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(netmask(31), Ipv4Addr::new(255, 255, 255, 254));
        assert_eq!(netmask(32), Ipv4Addr::new(255, 255, 255, 255));
    }

    #[test]
    fn bad_configs_are_rejected_before_touching_the_system() {
        for name in ["", "a-name-that-is-too-long", "a/b", "a b", "a\0b"] {
            let err = Tun::open(&config(name)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
        let mut c = config("rtx");
        c.prefix_len = 33;
        assert_eq!(
            Tun::open(&c).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let mut c = config("rtx");
        c.mtu = 20;
        assert_eq!(
            Tun::open(&c).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn exists_handles_odd_names() {
        assert!(Tun::exists("lo"));
        assert!(!Tun::exists("a\0b"));
        assert!(!Tun::exists("rstcp-no-such"));
    }
}
