//! A multi-queue TUN device (`IFF_MULTI_QUEUE`): one descriptor per queue,
//! so that each shard of a stack, with an I/O thread of its own, reads and
//! writes its own queue; and the steering program that makes the kernel
//! pick the queue of a packet it sends into the device from the packet's
//! ports (`TUNSETSTEERINGEBPF`), so that the stack knows in advance which
//! queue, and so which shard, each connection's packets reach: the one
//! [`shard_of`] names.
//!
//! Without the program the kernel picks by a hash seeded at random at boot
//! (and, for about 3 s after a write, by the queue that last wrote the
//! flow), which user space cannot predict. Loading the program needs
//! `CAP_BPF` (or `CAP_SYS_ADMIN`); attaching it, only the queue descriptor.
//! The tun crate opens one queue only, hence the system calls here.

use crate::sys;
use std::io;
use std::os::fd::RawFd;

/// The shard (queue) of a connection between our `local_port` and the
/// peer's `remote_port`: what the steering program computes from a packet
/// the kernel sends (its source port is the peer's, its destination ours;
/// the exclusive or does not care which is which).
pub fn shard_of(local_port: u16, remote_port: u16, shards: usize) -> usize {
    // Mixed by a multiplication, not the bare exclusive or: Linux gives
    // connect() even ports (odd ones are for bind), so with an even port
    // on our side the low bit alone would put every connection from the
    // kernel in an even shard.
    let mixed = u32::from(local_port ^ remote_port).wrapping_mul(MIX) >> 16;
    mixed as usize % shards.max(1)
}

/// Fibonacci hashing's multiplier (2^32 / the golden ratio, odd).
const MIX: u32 = 0x9e37_79b1;

/// `TUNSETIFF`, `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `TUNSETSTEERINGEBPF`, `_IOR('T', 224, int)`.
const TUNSETSTEERINGEBPF: libc::c_ulong = 0x8004_54e0;
/// `bpf(2)` command and program type.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;

/// The open queues of one device, closed on drop.
#[derive(Debug)]
pub struct Queues {
    fds: Vec<RawFd>,
    steered: bool,
}

impl Queues {
    /// Opens `n` queues of the multi-queue TUN device `name` in the calling
    /// thread's network namespace (creating it if it does not exist; it then
    /// has no address and is down), each non-blocking and close-on-exec,
    /// with a virtio-net header if `vnet`. Then attaches the steering
    /// program; if the kernel refuses it (no `CAP_BPF`), the queues work
    /// but are not steered ([`Queues::steered`] says which).
    pub fn open(name: &str, n: usize, vnet: bool) -> io::Result<Queues> {
        if name.is_empty() || name.len() > 15 || n == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let mut queues = Queues {
            fds: Vec::with_capacity(n),
            steered: false,
        };
        for _ in 0..n {
            queues.fds.push(open_queue(name, vnet)?);
        }
        queues.steered = attach_steering(queues.fds[0]).is_ok();
        Ok(queues)
    }

    /// The queues' descriptors, in queue order (what the kernel's queue
    /// numbers refer to).
    pub fn fds(&self) -> &[RawFd] {
        &self.fds
    }

    /// Whether the kernel picks each packet's queue by [`shard_of`].
    pub fn steered(&self) -> bool {
        self.steered
    }
}

impl Queues {
    /// Hands the descriptors over (their new owner closes them).
    pub fn into_fds(mut self) -> Vec<RawFd> {
        std::mem::take(&mut self.fds)
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        for &fd in &self.fds {
            sys::close(fd);
        }
    }
}

/// Gives a device this process created the kernel side's address
/// `addr/prefix_len` and `mtu`, and brings it up (what the tun crate does
/// for a device of one queue), with netdevice ioctls on a datagram socket.
pub fn configure(name: &str, addr: std::net::Ipv4Addr, prefix_len: u8, mtu: u16) -> io::Result<()> {
    let sock = Control::new()?;
    let sin = |a: std::net::Ipv4Addr| {
        let mut v = [0u8; 16];
        v[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v[4..8].copy_from_slice(&a.octets());
        v
    };
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    sock.ioctl(name, libc::SIOCSIFADDR, &sin(addr))?;
    sock.ioctl(name, libc::SIOCSIFNETMASK, &sin(mask.into()))?;
    sock.ioctl(name, libc::SIOCSIFMTU, &i32::from(mtu).to_ne_bytes())?;
    let mut flags = [0u8; 2];
    sock.ioctl_get(name, libc::SIOCGIFFLAGS, &mut flags)?;
    let up = i16::from_ne_bytes(flags) | (libc::IFF_UP | libc::IFF_RUNNING) as i16;
    sock.ioctl(name, libc::SIOCSIFFLAGS, &up.to_ne_bytes())
}

/// The MTU of device `name`.
pub fn mtu_of(name: &str) -> io::Result<u16> {
    let mut v = [0u8; 4];
    Control::new()?.ioctl_get(name, libc::SIOCGIFMTU, &mut v)?;
    Ok(i32::from_ne_bytes(v).clamp(0, 65535) as u16)
}

/// A datagram socket for netdevice ioctls (made with a raw system call:
/// under the LD_PRELOAD shim libc's socket() is a hook).
struct Control(RawFd);

impl Control {
    fn new() -> io::Result<Control> {
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_socket,
                libc::AF_INET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Control(fd as RawFd))
    }

    /// An ioctl taking a struct ifreq: `name`, then `value` in its union.
    fn ioctl(&self, name: &str, request: libc::c_ulong, value: &[u8]) -> io::Result<()> {
        let mut req = ifreq(name);
        req[16..16 + value.len()].copy_from_slice(value);
        self.call(request, &mut req)
    }

    /// An ioctl filling a struct ifreq's union, copied into `out`.
    fn ioctl_get(&self, name: &str, request: libc::c_ulong, out: &mut [u8]) -> io::Result<()> {
        let mut req = ifreq(name);
        self.call(request, &mut req)?;
        let n = out.len();
        out.copy_from_slice(&req[16..16 + n]);
        Ok(())
    }

    fn call(&self, request: libc::c_ulong, req: &mut [u8; 40]) -> io::Result<()> {
        // SAFETY: the request reads and writes a struct ifreq we own.
        let r = unsafe { libc::syscall(libc::SYS_ioctl, self.0, request, req.as_mut_ptr()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        sys::close(self.0);
    }
}

/// A struct ifreq (40 bytes on Linux) with `name` in it.
fn ifreq(name: &str) -> [u8; 40] {
    let mut req = [0u8; 40];
    let n = name.len().min(15);
    req[..n].copy_from_slice(&name.as_bytes()[..n]);
    req
}

/// One more queue of device `name`.
fn open_queue(name: &str, vnet: bool) -> io::Result<RawFd> {
    // SAFETY: a NUL-terminated path; the result is checked.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = fd as RawFd;
    // struct ifreq: the name, then the flags (a short) in the union.
    let mut req = ifreq(name);
    let mut flags = libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE;
    if vnet {
        flags |= libc::IFF_VNET_HDR;
    }
    req[16..18].copy_from_slice(&(flags as i16).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq we own.
    let r = unsafe { libc::syscall(libc::SYS_ioctl, fd, TUNSETIFF, req.as_mut_ptr()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        sys::close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// The steering program (a socket filter): for an IPv4/TCP packet that is
/// not a later fragment, what [`shard_of`] computes before its modulo
/// (the kernel takes that); 0 for anything else. `skb->data` is the IPv4
/// header there. Instructions as (code, dst | src << 4, off, imm).
const STEER: [(u8, u8, i16, i32); 20] = [
    (0xbf, 0x16, 0, 0),          // r6 = r1 (the context LD_ABS needs)
    (0x30, 0x00, 0, 0),          // r0 = byte[0]: version and IHL
    (0xbf, 0x07, 0, 0),          // r7 = r0
    (0x77, 0x00, 0, 4),          // r0 >>= 4
    (0x55, 0x00, 13, 4),         // if r0 != 4 goto zero
    (0x30, 0x00, 0, 9),          // r0 = byte[9]: protocol
    (0x55, 0x00, 11, 6),         // if r0 != TCP goto zero
    (0x28, 0x00, 0, 6),          // r0 = half[6]: flags and fragment offset
    (0x45, 0x00, 9, 0x1fff),     // if r0 & 0x1fff goto zero (a later fragment)
    (0x57, 0x07, 0, 0xf),        // r7 &= 0xf
    (0x67, 0x07, 0, 2),          // r7 <<= 2: the TCP header's offset
    (0x48, 0x70, 0, 0),          // r0 = half[r7]: source port
    (0xbf, 0x08, 0, 0),          // r8 = r0
    (0x48, 0x70, 0, 2),          // r0 = half[r7 + 2]: destination port
    (0xaf, 0x80, 0, 0),          // r0 ^= r8
    (0x24, 0x00, 0, MIX as i32), // w0 *= MIX (32 bits, wrapping)
    (0x74, 0x00, 0, 16),         // w0 >>= 16
    (0x95, 0x00, 0, 0),          // exit
    (0xb7, 0x00, 0, 0),          // zero: r0 = 0
    (0x95, 0x00, 0, 0),          // exit
];

/// Loads [`STEER`] and attaches it to the device of queue `fd` (it applies
/// to every queue of the device).
fn attach_steering(fd: RawFd) -> io::Result<()> {
    let mut insns = [0u64; STEER.len()];
    for (slot, &(code, regs, off, imm)) in insns.iter_mut().zip(STEER.iter()) {
        let mut b = [0u8; 8];
        b[0] = code;
        b[1] = regs;
        b[2..4].copy_from_slice(&off.to_ne_bytes());
        b[4..8].copy_from_slice(&imm.to_ne_bytes());
        *slot = u64::from_ne_bytes(b);
    }
    // union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns,
    // license, then log fields left zero.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_SOCKET_FILTER.to_ne_bytes());
    attr[4..8].copy_from_slice(&(STEER.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(c"GPL".as_ptr() as u64).to_ne_bytes());
    // SAFETY: the attribute block and what it points to outlive the call.
    let prog = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if prog < 0 {
        return Err(io::Error::last_os_error());
    }
    let prog = prog as RawFd;
    // SAFETY: the ioctl reads an int (the program's descriptor) we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioctl,
            fd,
            TUNSETSTEERINGEBPF,
            &prog as *const RawFd,
        )
    };
    let result = if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    // The device holds the program now.
    sys::close(prog);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_and_its_reply_name_the_same_shard() {
        for (a, b) in [(80u16, 40000u16), (5001, 32768), (7, 7), (65535, 0)] {
            for n in 1..=4 {
                assert_eq!(shard_of(a, b, n), shard_of(b, a, n));
                assert!(shard_of(a, b, n) < n);
            }
        }
        assert_eq!(shard_of(1, 2, 0), 0);
        // Even ports on both sides (Linux's connect() takes even ones)
        // still spread over all shards.
        let mut seen = [0; 4];
        for p in (32768..33024u16).step_by(2) {
            seen[shard_of(7020, p, 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 16), "{seen:?}");
    }

    #[test]
    fn bad_arguments_are_refused_before_any_system_call() {
        for (name, n) in [("", 1), ("a-name-far-too-long", 1), ("ok", 0)] {
            let e = Queues::open(name, n, false).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
    }
}
