//! The TUN link against the kernel, each test inside its own namespace, and
//! the namespace harness itself.

mod common;

use common::{wait_readable, Netns};
use rstcp::link::{Link, Tun, TunConfig};
use rstcp::time::Instant;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::Duration;

fn config(name: String, subnet: u8) -> TunConfig {
    TunConfig {
        name,
        kernel_addr: Ipv4Addr::new(10, 77, subnet, 1),
        prefix_len: 24,
        mtu: 1500,
        offload: false,
    }
}

/// The UDP payload of an IPv4 packet, with its addresses and ports, if it is
/// one.
fn udp_of(packet: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, &[u8])> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    if packet.len() < ihl + 8 || packet[9] != 17 {
        return None;
    }
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    let udp = &packet[ihl..];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    Some((src, dst, sport, dport, &udp[8..]))
}

/// An IPv4/UDP packet (UDP checksum 0, which IPv4 allows).
fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.ip().octets());
    p[16..20].copy_from_slice(&dst.ip().octets());
    let mut sum: u32 = p[..20]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&src.port().to_be_bytes());
    p[22..24].copy_from_slice(&dst.port().to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// A UDP datagram from a kernel socket on 10.77.`subnet`.1 through `tun`
/// (checked: addresses, ports, payload), and one back from the link.
fn exchange_udp(tun: &mut Tun, subnet: u8) {
    let kernel = Ipv4Addr::new(10, 77, subnet, 1);
    let peer = SocketAddrV4::new(Ipv4Addr::new(10, 77, subnet, 2), 4000);
    let sock = UdpSocket::bind(SocketAddrV4::new(kernel, 0)).unwrap();
    let local = match sock.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("unexpected {other}"),
    };
    let fd = tun.readable_fd().unwrap();
    let mut buf = [0u8; 1500];
    // Sent again every 100 ms: a device that was up before its queue
    // attached gets its carrier (and a queueing discipline that passes
    // packets) only when the kernel's link watcher comes round, up to a
    // second later; until then what the kernel sends there is dropped.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let found = 'wait: loop {
        sock.send_to(b"hello from the kernel", peer).unwrap();
        if !wait_readable(fd, 100) {
            assert!(
                std::time::Instant::now() < until,
                "no packet on the TUN device"
            );
            continue;
        }
        while let Some(n) = tun.recv(Instant::ZERO, &mut buf).unwrap() {
            assert_eq!(buf[0] >> 4, 4, "only IPv4 comes out of a Tun");
            if let Some((src, dst, sport, dport, payload)) = udp_of(&buf[..n]) {
                break 'wait (src, dst, sport, dport, payload.to_vec());
            }
        }
    };
    assert_eq!(
        found,
        (
            kernel,
            *peer.ip(),
            local.port(),
            4000,
            b"hello from the kernel".to_vec()
        )
    );
    tun.send(Instant::ZERO, &udp_packet(peer, local, b"hello from rstcp"))
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello from rstcp");
    assert_eq!(from, std::net::SocketAddr::V4(peer));
}

#[test]
fn tun_carries_udp_between_kernel_and_link() {
    if common::skip_without_root() {
        return;
    }
    let ns = Netns::new("tun");
    ns.enter();
    let dev = ns.dev_name();
    assert!(dev.len() <= 15);
    assert!(!Tun::exists(&dev));
    let mut tun = Tun::open(&config(dev.clone(), 1)).unwrap();
    assert_eq!(tun.name(), dev);
    assert_eq!(tun.mtu(), 1500);
    assert!(Tun::exists(&dev));

    exchange_udp(&mut tun, 1);

    // Nothing else is waiting: recv must not block.
    let mut buf = [0u8; 1500];
    while tun.recv(Instant::ZERO, &mut buf).unwrap().is_some() {}

    // The created device is not persistent.
    drop(tun);
    assert!(!Tun::exists(&dev));

    let path = format!("/run/netns/{}", ns.name);
    assert!(Path::new(&path).exists());
    drop(ns);
    assert!(!Path::new(&path).exists(), "namespace left behind");
}

#[test]
fn attaching_keeps_the_existing_configuration() {
    if common::skip_without_root() {
        return;
    }
    let ns = Netns::new("attach");
    ns.enter();
    let dev = ns.dev_name();
    ns.exec(&["ip", "tuntap", "add", "dev", &dev, "mode", "tun"]);
    ns.exec(&["ip", "link", "set", &dev, "mtu", "1400"]);
    assert!(Tun::exists(&dev));

    let tun = Tun::open(&config(dev.clone(), 2)).unwrap();
    assert_eq!(tun.mtu(), 1400, "an attached device keeps its MTU");
    let addrs = ns.exec(&["ip", "-4", "addr", "show", "dev", &dev]);
    assert!(
        !String::from_utf8_lossy(&addrs.stdout).contains("inet"),
        "attaching must not add an address"
    );
    // The kernel lets one descriptor at a time attach to a single-queue device.
    assert!(Tun::open(&config(dev.clone(), 2)).is_err());
    drop(tun);
    // A persistent device outlives the descriptor.
    assert!(Tun::exists(&dev));
}

#[test]
fn devices_and_commands_stay_in_their_namespace() {
    if common::skip_without_root() {
        return;
    }
    let a = Netns::new("iso");
    let b = Netns::new("iso");
    assert_ne!(a.name, b.name);
    assert_ne!(a.dev_name(), b.dev_name());
    let first = a.dev_name();
    let second = a.dev_name();
    assert_ne!(first, second);

    // A thread in `a` creates a device that `b` cannot see.
    let dev = a.dev_name();
    std::thread::scope(|s| {
        s.spawn(|| {
            a.enter();
            let _tun = Tun::open(&config(dev.clone(), 3)).unwrap();
            assert!(a.try_exec(&["ip", "link", "show", &dev]).status.success());
            assert!(!b.try_exec(&["ip", "link", "show", &dev]).status.success());
        });
    });

    let mut child = a.spawn("sleep", &["30"]);
    let pid = child.id().to_string();
    // `ip netns exec` execs the command, so the child itself ends up
    // inside, once `ip` has switched namespace (which takes a moment).
    let inside = || {
        let pids = std::process::Command::new("ip")
            .args(["netns", "pids", &a.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&pids.stdout)
            .split_whitespace()
            .any(|p| p == pid)
    };
    let start = std::time::Instant::now();
    while !inside() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "child never entered the namespace"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(a);
    // Dropping the namespace killed the process left inside it.
    let status = child.wait().unwrap();
    assert!(!status.success());
}

#[test]
fn sweep_recognises_only_harness_names() {
    if common::skip_without_root() {
        return;
    }
    assert_eq!(common::owner_pid("rstcp-tun-1234-0"), Some(1234));
    assert_eq!(common::owner_pid("rstcp-multi-part-tag-99-12"), Some(99));
    assert_eq!(common::owner_pid("rstcp-1234-0"), None);
    assert_eq!(common::owner_pid("other-tun-1234-0"), None);
    assert_eq!(common::owner_pid("rstcp-tun-x-0"), None);
}

#[test]
fn stale_namespaces_of_dead_processes_are_swept() {
    if common::skip_without_root() {
        return;
    }
    // A pid that is certainly dead: a child that has been reaped.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = format!("rstcp-stale-{dead}-0");
    let out = std::process::Command::new("ip")
        .args(["netns", "add", &stale])
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = format!("/run/netns/{stale}");
    assert!(Path::new(&path).exists());
    let _ns = Netns::new("sweeper");
    assert!(!Path::new(&path).exists(), "stale namespace not swept");
}

#[test]
fn a_steered_multi_queue_device_puts_each_connection_on_the_queue_its_ports_name() {
    use rstcp::link::queues::{shard_of, Queues};
    if common::skip_without_root() {
        return;
    }
    let ns = Netns::new("mq");
    ns.enter();
    let dev = ns.dev_name();
    for vnet in [false, true] {
        let n = 2;
        let queues = Queues::open(&dev, n, vnet).unwrap();
        assert!(queues.steered(), "the steering program was refused");
        ns.exec(&["ip", "addr", "replace", "10.77.4.1/24", "dev", &dev]);
        ns.exec(&["ip", "link", "set", &dev, "up"]);
        // SYNs of sixteen connections (nobody answers; the connects time
        // out at once, the kernel retransmits later).
        let mut attempts = Vec::new();
        for i in 0..16u16 {
            let to = SocketAddrV4::new(Ipv4Addr::new(10, 77, 4, 2), 5000 + i * 7);
            attempts.push(std::thread::spawn(move || {
                let _ =
                    std::net::TcpStream::connect_timeout(&to.into(), Duration::from_millis(300));
            }));
        }
        let (mut seen, mut per_queue) = (0, vec![0; n]);
        let mut buf = [0u8; 2048];
        let end = std::time::Instant::now() + Duration::from_millis(250);
        while std::time::Instant::now() < end {
            for (q, &fd) in queues.fds().iter().enumerate() {
                // SAFETY: reading into a buffer we own.
                let got = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if got <= 0 {
                    continue;
                }
                let skip = if vnet { 10 } else { 0 };
                let p = &buf[skip..got as usize];
                if p.len() < 40 || p[0] >> 4 != 4 || p[9] != 6 {
                    continue; // not IPv4/TCP (e.g. IPv6 router solicitations)
                }
                let ihl = usize::from(p[0] & 0x0f) * 4;
                let sport = u16::from_be_bytes([p[ihl], p[ihl + 1]]);
                let dport = u16::from_be_bytes([p[ihl + 2], p[ihl + 3]]);
                assert_eq!(
                    q,
                    shard_of(dport, sport, n),
                    "{sport} -> {dport} (vnet {vnet})"
                );
                seen += 1;
                per_queue[q] += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for a in attempts {
            a.join().unwrap();
        }
        assert!(seen >= 16, "only {seen} SYNs read (vnet {vnet})");
        assert!(
            per_queue.iter().all(|&c| c > 0),
            "{per_queue:?} (vnet {vnet})"
        );
        drop(queues);
        // The device goes with its last queue.
        for _ in 0..100 {
            if !Tun::exists(&dev) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!Tun::exists(&dev));
    }
}

#[test]
fn shards_asked_of_a_device_made_with_one_queue_give_one_shard() {
    if common::skip_without_root() {
        return;
    }
    let ns = Netns::new("oneq");
    ns.enter();
    let dev = ns.dev_name();
    ns.exec(&["ip", "tuntap", "add", "dev", &dev, "mode", "tun"]);
    ns.exec(&["ip", "addr", "add", "10.77.5.1/24", "dev", &dev]);
    ns.exec(&["ip", "link", "set", &dev, "up"]);
    let cfg = rstcp::runtime::RuntimeConfig {
        tun: dev,
        addr: Ipv4Addr::new(10, 77, 5, 2),
        shards: 2,
        ..rstcp::runtime::RuntimeConfig::default()
    };
    let links = cfg.open_links().unwrap();
    assert_eq!(links.len(), 1);
}

#[test]
fn one_queue_of_a_multi_queue_device_is_a_tun_like_any() {
    if common::skip_without_root() {
        return;
    }
    // A device made for shards, used with one (RSTCP_SHARDS unset, or the
    // fallback under RSTCP_FAULTS or RSTCP_PCAP): the kernel refuses a
    // plain open of a multi-queue device, so the link attaches one queue.
    let ns = Netns::new("mq1");
    ns.enter();
    let dev = ns.dev_name();
    ns.exec(&[
        "ip",
        "tuntap",
        "add",
        "dev",
        &dev,
        "mode",
        "tun",
        "multi_queue",
    ]);
    ns.exec(&["ip", "addr", "add", "10.77.6.1/24", "dev", &dev]);
    ns.exec(&["ip", "link", "set", &dev, "up"]);
    let mut tun = Tun::open(&config(dev.clone(), 6)).unwrap();
    exchange_udp(&mut tun, 6);
    // And so the runtime's links: one shard asked, one link.
    drop(tun);
    let cfg = rstcp::runtime::RuntimeConfig {
        tun: dev,
        addr: Ipv4Addr::new(10, 77, 6, 2),
        ..rstcp::runtime::RuntimeConfig::default()
    };
    assert_eq!(cfg.open_links().unwrap().len(), 1);
}
