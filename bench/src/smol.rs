//! smoltcp over the same TUN setup: one thread in its own namespace owns a
//! TUN device (10.99.0.2; the kernel side 10.99.0.1 runs the same kernel
//! clients) and serves the sink, source, echo and connection ports the way
//! `workloads::Server` does. smoltcp has no listen backlog: each port keeps
//! a few sockets listening, and a socket that has closed listens again.
//! The idle-connection figures are left out: smoltcp's sockets are made in
//! advance with their buffers, so the figure would be the buffer size chosen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Medium, TunTapInterface};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::netns::Netns;
use crate::workloads::{CRR, ECHO, SINK, SOURCE};

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Sink,
    Source,
    Echo,
    Crr,
}

/// The smoltcp server thread; stopped when dropped.
pub struct SmolServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SmolServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Makes the device in `ns` and starts serving on it.
pub fn start(ns: &Netns, dev: &str) -> Result<SmolServer, String> {
    ns.exec(&["ip", "tuntap", "add", "dev", dev, "mode", "tun"])?;
    ns.exec(&["ip", "addr", "add", "10.99.0.1/24", "dev", dev])?;
    ns.exec(&["ip", "link", "set", dev, "up"])?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let (name, dev, flag) = (ns.name.clone(), dev.to_owned(), stop.clone());
    let thread = std::thread::spawn(move || {
        crate::netns::enter(&name);
        match TunTapInterface::new(&dev, Medium::Ip) {
            Ok(device) => {
                let _ = tx.send(Ok(()));
                serve(device, &flag);
            }
            Err(e) => {
                let _ = tx.send(Err(format!("smoltcp cannot open TUN {dev}: {e}")));
            }
        }
    });
    rx.recv().map_err(|e| e.to_string())??;
    Ok(SmolServer {
        stop,
        thread: Some(thread),
    })
}

struct Slot {
    handle: SocketHandle,
    role: Role,
    port: u16,
    /// Bytes of the 64-byte request read so far (Crr).
    got: usize,
}

fn serve(mut device: TunTapInterface, stop: &AtomicBool) {
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ip),
        &mut device,
        Instant::now(),
    );
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::v4(10, 99, 0, 2), 24));
    });
    let mut sockets = SocketSet::new(vec![]);
    let mut slots = Vec::new();
    let mut plan = vec![
        (SINK, Role::Sink, 2),
        (SOURCE, Role::Source, 2),
        (ECHO, Role::Echo, 2),
    ];
    plan.extend(CRR.iter().map(|&p| (p, Role::Crr, 2)));
    for (port, role, count) in plan {
        let size = if role == Role::Crr { 4096 } else { 256 * 1024 };
        for _ in 0..count {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; size]),
                tcp::SocketBuffer::new(vec![0; size]),
            );
            s.set_nagle_enabled(role != Role::Echo && role != Role::Crr);
            let _ = s.listen(port);
            slots.push(Slot {
                handle: sockets.add(s),
                role,
                port,
                got: 0,
            });
        }
    }
    let mut buf = vec![0u8; 256 * 1024];
    let fill = vec![0x5au8; 64 * 1024];
    use std::os::fd::AsRawFd;
    let fd = device.as_raw_fd();
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        iface.poll(now, &mut device, &mut sockets);
        for slot in &mut slots {
            let s = sockets.get_mut::<tcp::Socket>(slot.handle);
            if !s.is_open() {
                slot.got = 0;
                let _ = s.listen(slot.port);
                continue;
            }
            match slot.role {
                Role::Sink => while s.recv_slice(&mut buf).unwrap_or(0) > 0 {},
                Role::Source => while s.can_send() && s.send_slice(&fill).unwrap_or(0) > 0 {},
                Role::Echo => {
                    let room = s.send_capacity() - s.send_queue();
                    let n = s.recv_slice(&mut buf[..room]).unwrap_or(0);
                    let _ = s.send_slice(&buf[..n]);
                }
                Role::Crr => {
                    if slot.got < 64 {
                        slot.got += s.recv_slice(&mut buf[..64 - slot.got]).unwrap_or(0);
                        if slot.got == 64 {
                            let _ = s.send_slice(&buf[..64]);
                        }
                    }
                }
            }
            // The client closed (or shut down): close our side too.
            if s.state() == tcp::State::CloseWait && !s.can_recv() {
                s.close();
            }
        }
        iface.poll(now, &mut device, &mut sockets);
        let delay = iface
            .poll_delay(Instant::now(), &sockets)
            .map_or(Duration::from_millis(20), |d| {
                d.min(Duration::from_millis(20))
            });
        let _ = smoltcp::phy::wait(fd, Some(delay));
    }
}
