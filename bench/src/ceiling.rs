//! The raw TUN ceiling: how many packets per second go through a TUN device
//! (IFF_TUN | IFF_NO_PI, no offloads) with no TCP stack above it. One thread
//! writes ICMP echo requests to the kernel side of the device, another reads
//! the kernel's echo replies, with at most WINDOW requests unanswered; the
//! figure is replies read per second (each one write plus one read on the
//! descriptor, and the kernel's ICMP turnaround).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::netns::Netns;

const WINDOW: u64 = 128;
const KERNEL: [u8; 4] = [10, 66, 0, 1];
const US: [u8; 4] = [10, 66, 0, 2];

/// Makes the device in `ns` (kernel side 10.66.0.1/24) and opens it.
pub fn open(ns: &Netns, dev: &str) -> Result<i32, String> {
    ns.exec(&["ip", "tuntap", "add", "dev", dev, "mode", "tun"])?;
    ns.exec(&["ip", "addr", "add", "10.66.0.1/24", "dev", dev])?;
    ns.exec(&["ip", "link", "set", dev, "up"])?;
    let name = dev.to_owned();
    crate::netns::in_ns(&ns.name, move || attach(&name)).map_err(|e| format!("open TUN {dev}: {e}"))
}

fn attach(dev: &str) -> io::Result<i32> {
    // SAFETY: open a path we spell out.
    let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // struct ifreq: the name, then flags (short).
    let mut ifr = [0u8; 40];
    ifr[..dev.len()].copy_from_slice(dev.as_bytes());
    let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as i16;
    ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes an ifreq-sized buffer we own.
    if unsafe { libc::ioctl(fd, libc::TUNSETIFF, ifr.as_mut_ptr()) } < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: closing our descriptor.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd)
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 ICMP echo request of `size` bytes in all, from 10.66.0.2 to 10.66.0.1.
fn echo_request(size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 1; // ICMP
    p[12..16].copy_from_slice(&US);
    p[16..20].copy_from_slice(&KERNEL);
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20] = 8; // echo request
    p[24..26].copy_from_slice(&0x4242u16.to_be_bytes());
    let c = checksum(&p[20..]);
    p[22..24].copy_from_slice(&c.to_be_bytes());
    p
}

/// Packets per second through the device for `secs` with packets of `size` bytes.
pub fn measure(fd: i32, size: usize, secs: f64) -> f64 {
    let packet = echo_request(size);
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, got) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (stop, sent, got) = (stop.clone(), sent.clone(), got.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if sent.load(Ordering::Relaxed) - got.load(Ordering::Relaxed) >= WINDOW {
                    std::hint::spin_loop();
                    continue;
                }
                // SAFETY: writing a buffer we own.
                if unsafe { libc::write(fd, packet.as_ptr().cast(), packet.len()) } > 0 {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut buf = vec![0u8; 2048];
    let t0 = Instant::now();
    let mut last = t0;
    let mut replies = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd we own.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            // A reply was lost (queue overflow): let the writer go on.
            got.store(sent.load(Ordering::Relaxed), Ordering::Relaxed);
            continue;
        }
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 21 && buf[9] == 1 && buf[20] == 0 {
            replies += 1;
            got.fetch_add(1, Ordering::Relaxed);
            last = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    // Drain what is still queued, so the next measurement starts clean.
    std::thread::sleep(Duration::from_millis(50));
    loop {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: as above.
        if unsafe { libc::poll(&mut pfd, 1, 0) } <= 0
            || unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } <= 0
        {
            break;
        }
    }
    replies as f64 / (last - t0).as_secs_f64().max(1e-9)
}
