//! Configuration of a runtime: from the environment (`RSTCP_*`) or explicit.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::link::{FaultConfig, Faulty, Link, PcapTee, Tun, TunConfig};
use crate::rs_log;
use crate::stack::StackConfig;
use crate::tcp;

/// The most shards (a multi-queue TUN device takes up to 256 queues).
pub const MAX_SHARDS: usize = 64;

/// The longest busy-poll accepted: a second of spinning is already a bug.
pub const MAX_BUSY_POLL_US: u64 = 1_000_000;

/// Everything needed to start a runtime on a TUN device.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// TUN device name (`RSTCP_TUN`, default `rstcp0`).
    pub tun: String,
    /// The stack's own address (`RSTCP_ADDR`, default 10.77.0.2/24).
    pub addr: Ipv4Addr,
    /// Prefix length of the link's subnet.
    pub prefix_len: u8,
    /// The kernel side's address when we create the device (`RSTCP_PEER`,
    /// default the first host of the prefix).
    pub peer: Option<Ipv4Addr>,
    /// MTU of a device we create (`RSTCP_MTU`, default 1500).
    pub mtu: u16,
    /// Write every packet to this pcap file (`RSTCP_PCAP`).
    pub pcap: Option<String>,
    /// Inject faults on the link (`RSTCP_FAULTS`).
    pub faults: Option<FaultConfig>,
    /// Maximum segment lifetime (`RSTCP_MSL_MS`, default 30 s; TIME-WAIT is twice this).
    pub msl: Duration,
    /// Take the kernel's large segments whole (`RSTCP_OFFLOAD`, default on):
    /// a TUN device with a virtio-net header and receive offload.
    pub offload: bool,
    /// How long a blocking call spins, taking packets from the device
    /// itself, before it sleeps (`RSTCP_BUSY_POLL_US`, default 0: never;
    /// like Linux's busy_read and SO_BUSY_POLL, which sets it per socket).
    pub busy_poll: Duration,
    /// How many shards (`RSTCP_SHARDS`, default 1): stacks with an I/O
    /// thread and a lock each, on the queues of one multi-queue TUN device
    /// that steers each connection to its shard (see `link::queues`), all
    /// behind one set of descriptors. Needs CAP_BPF; one shard under
    /// `RSTCP_FAULTS` or `RSTCP_PCAP`.
    pub shards: usize,
    /// At process exit, how long to let closing connections finish sending
    /// (`RSTCP_EXIT_LINGER_MS`, default 10 s): the kernel would deliver them
    /// after the process is gone; we must do it before.
    pub exit_linger: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            tun: "rstcp0".into(),
            addr: Ipv4Addr::new(10, 77, 0, 2),
            prefix_len: 24,
            peer: None,
            mtu: 1500,
            pcap: None,
            faults: None,
            msl: Duration::from_secs(30),
            exit_linger: Duration::from_secs(10),
            offload: true,
            busy_poll: Duration::ZERO,
            shards: 1,
        }
    }
}

/// Parses `a.b.c.d/len` (or a bare address, taken as /24).
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8)> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, len.parse::<u8>().map_err(|_| Error::Invalid)?),
        None => (s, 24),
    };
    let ip: Ipv4Addr = ip.trim().parse().map_err(|_| Error::Invalid)?;
    if !(1..=30).contains(&len) {
        return Err(Error::Invalid);
    }
    Ok((ip, len))
}

impl RuntimeConfig {
    /// Defaults overridden by whatever `RSTCP_*` variables are set. A
    /// malformed variable is an error (EINVAL), explained on stderr with the
    /// form it must take, not silently ignored.
    pub fn from_env() -> Result<RuntimeConfig> {
        RuntimeConfig::from_vars(|name| std::env::var(name).ok(), &[])
    }

    /// Like [`from_env`](Self::from_env) with the variables read through
    /// `get`, leaving out those in `skip` (values `rs_init` gives instead).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>, skip: &[&str]) -> Result<RuntimeConfig> {
        let mut cfg = RuntimeConfig::default();
        let var = |name: &str| {
            if skip.contains(&name) {
                return None;
            }
            get(name).filter(|v| !v.is_empty())
        };
        let bad = |name: &str, v: &str, form: &str| {
            crate::log::explain(format_args!(
                "{name}={v:?} is not valid: expected {form}; the stack does not start"
            ));
            Error::Invalid
        };
        if let Some(v) = var("RSTCP_TUN") {
            if v.len() > 15 || v.contains('/') || v.contains(char::is_whitespace) {
                return Err(bad(
                    "RSTCP_TUN",
                    &v,
                    "an interface name of at most 15 characters",
                ));
            }
            cfg.tun = v;
        }
        if let Some(v) = var("RSTCP_ADDR") {
            (cfg.addr, cfg.prefix_len) = parse_cidr(&v).map_err(|_| {
                bad(
                    "RSTCP_ADDR",
                    &v,
                    "address/prefix, e.g. 10.77.0.2/24 (prefix 1..30)",
                )
            })?;
        }
        if let Some(v) = var("RSTCP_PEER") {
            cfg.peer = Some(
                v.parse()
                    .map_err(|_| bad("RSTCP_PEER", &v, "an IPv4 address, e.g. 10.77.0.1"))?,
            );
        }
        if let Some(v) = var("RSTCP_MTU") {
            cfg.mtu = v
                .parse()
                .ok()
                .filter(|m| *m >= 576)
                .ok_or_else(|| bad("RSTCP_MTU", &v, "a number from 576 to 65535"))?;
        }
        let millis = |name: &str, v: &str| {
            v.parse()
                .map(Duration::from_millis)
                .map_err(|_| bad(name, v, "a whole number of milliseconds"))
        };
        if let Some(v) = var("RSTCP_MSL_MS") {
            cfg.msl = millis("RSTCP_MSL_MS", &v)?;
        }
        if let Some(v) = var("RSTCP_EXIT_LINGER_MS") {
            cfg.exit_linger = millis("RSTCP_EXIT_LINGER_MS", &v)?;
        }
        cfg.pcap = var("RSTCP_PCAP");
        if let Some(v) = var("RSTCP_FAULTS") {
            cfg.faults = Some(FaultConfig::parse(&v).map_err(|e| {
                bad(
                    "RSTCP_FAULTS",
                    &v,
                    &format!("key=value pairs as the README lists ({e})"),
                )
            })?);
        }
        if let Some(v) = var("RSTCP_OFFLOAD") {
            cfg.offload = match v.as_str() {
                "0" => false,
                "1" => true,
                _ => return Err(bad("RSTCP_OFFLOAD", &v, "0 (off) or 1 (on)")),
            };
        }
        if let Some(v) = var("RSTCP_BUSY_POLL_US") {
            cfg.busy_poll = v
                .parse()
                .ok()
                .filter(|&us| us <= MAX_BUSY_POLL_US)
                .map(Duration::from_micros)
                .ok_or_else(|| {
                    bad(
                        "RSTCP_BUSY_POLL_US",
                        &v,
                        "a number of microseconds from 0 to 1000000",
                    )
                })?;
        }
        if let Some(v) = var("RSTCP_SHARDS") {
            cfg.shards = v
                .parse()
                .ok()
                .filter(|n| (1..=MAX_SHARDS).contains(n))
                .ok_or_else(|| bad("RSTCP_SHARDS", &v, "a number from 1 to 64"))?;
        }
        if let Some(v) = var("RSTCP_LOG") {
            if crate::log::parse_level(&v).is_none() {
                return Err(bad("RSTCP_LOG", &v, crate::log::LEVELS));
            }
        }
        if let Some(v) = var("RSTCP_STAT") {
            if v != "0" && v != "1" {
                return Err(bad("RSTCP_STAT", &v, "0 (no stat endpoint) or 1"));
            }
        }
        Ok(cfg)
    }

    /// Says on stderr why the TUN device could not be had and what to do,
    /// and picks the errno for it.
    fn explain_open_failure(&self, e: &std::io::Error) -> Error {
        let dev = &self.tun;
        let (errno, what) = match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => (
                Error::Permission,
                format!(
                    "creating or opening TUN device {dev} needs CAP_NET_ADMIN: run as root, \
                     or create it first (ip tuntap add dev {dev} mode tun user $USER; \
                     ip addr add {}/{} dev {dev}; ip link set {dev} up) and run as that user",
                    self.peer_addr(),
                    self.prefix_len
                ),
            ),
            Some(libc::EBUSY) => (
                Error::Busy,
                format!(
                    "TUN device {dev} is in use by another process (one process per device): \
                     set RSTCP_TUN to another name"
                ),
            ),
            Some(libc::ENOENT) | Some(libc::ENXIO) | Some(libc::ENODEV) => (
                Error::NoDevice,
                "no /dev/net/tun: load the tun module (modprobe tun), or in a container \
                 give it the device (--device /dev/net/tun)"
                    .to_string(),
            ),
            _ => (
                Error::NoDevice,
                format!("TUN device {dev} cannot be opened"),
            ),
        };
        crate::log::explain(format_args!("{what} ({e}); the stack does not start"));
        errno
    }

    /// The kernel side's address: RSTCP_PEER, or the first host of the prefix.
    pub fn peer_addr(&self) -> Ipv4Addr {
        self.peer.unwrap_or_else(|| {
            let mask = u32::MAX << (32 - self.prefix_len as u32);
            let first = (u32::from(self.addr) & mask) + 1;
            let first = if first == u32::from(self.addr) {
                first + 1
            } else {
                first
            };
            Ipv4Addr::from(first)
        })
    }

    /// The stack settings this configuration implies.
    pub fn stack_config(&self) -> StackConfig {
        StackConfig {
            addr: self.addr,
            prefix_len: self.prefix_len,
            mtu: self.mtu as usize,
            tcp: tcp::Config {
                msl: self.msl,
                ..tcp::Config::default()
            },
            ..StackConfig::default()
        }
    }

    /// Opens (or creates) the TUN device with one queue per shard: a link
    /// for each. One link when there is one shard, or faults or a capture
    /// are asked for (they act on one stream of packets), or the kernel
    /// refuses the steering program (said in the log).
    pub fn open_links(&self) -> Result<Vec<Box<dyn Link>>> {
        if self.shards <= 1 || self.faults.is_some() || self.pcap.is_some() {
            return Ok(vec![self.open_link()?]);
        }
        match Tun::open_queues(&self.tun_config(), self.shards) {
            Ok(queues) => {
                rs_log!(
                    Info,
                    "attached to {} as {}/{}, {} queues",
                    self.tun,
                    self.addr,
                    self.prefix_len,
                    queues.len()
                );
                Ok(queues
                    .into_iter()
                    .map(|q| Box::new(q) as Box<dyn Link>)
                    .collect())
            }
            // No CAP_BPF, or a device someone made with one queue (the
            // kernel says EINVAL to a second): one shard will do.
            Err(e)
                if e.kind() == std::io::ErrorKind::PermissionDenied
                    || e.raw_os_error() == Some(libc::EINVAL) =>
            {
                rs_log!(Warn, "{}: {e}; one shard", self.tun);
                Ok(vec![self.open_link()?])
            }
            Err(e) => Err(self.explain_open_failure(&e)),
        }
    }

    fn tun_config(&self) -> TunConfig {
        TunConfig {
            name: self.tun.clone(),
            kernel_addr: self.peer_addr(),
            prefix_len: self.prefix_len,
            mtu: self.mtu,
            // Faults act on packets as a wire carries them, MTU-sized: a
            // 64 KiB segment of the kernel's offload lost whole would be
            // forty-odd losses at once.
            offload: self.offload && self.faults.is_none(),
        }
    }

    /// Opens (or creates) the TUN device and wraps it as configured.
    pub fn open_link(&self) -> Result<Box<dyn Link>> {
        let tun = Tun::open(&self.tun_config()).map_err(|e| self.explain_open_failure(&e))?;
        rs_log!(
            Info,
            "attached to {} as {}/{}",
            self.tun,
            self.addr,
            self.prefix_len
        );
        let mut link: Box<dyn Link> = Box::new(tun);
        if let Some(f) = &self.faults {
            link = Box::new(Faulty::new(link, f.clone()));
        }
        if let Some(path) = &self.pcap {
            link = Box::new(PcapTee::new(link, path).map_err(|e| {
                crate::log::explain(format_args!(
                    "RSTCP_PCAP={path:?} cannot be written ({e}); the stack does not start"
                ));
                Error::Invalid
            })?);
        }
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_and_peer() {
        assert_eq!(
            parse_cidr("10.1.2.3/16").unwrap(),
            (Ipv4Addr::new(10, 1, 2, 3), 16)
        );
        assert!(parse_cidr("10.1.2/16").is_err());
        assert!(parse_cidr("10.1.2.3/33").is_err());
        let cfg = RuntimeConfig::default();
        assert_eq!(cfg.peer_addr(), Ipv4Addr::new(10, 77, 0, 1));
        let cfg = RuntimeConfig {
            addr: Ipv4Addr::new(10, 77, 0, 1),
            ..RuntimeConfig::default()
        };
        assert_eq!(cfg.peer_addr(), Ipv4Addr::new(10, 77, 0, 2));
    }

    fn from(vars: &[(&str, &str)], skip: &[&str]) -> Result<RuntimeConfig> {
        RuntimeConfig::from_vars(
            |n| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            },
            skip,
        )
    }

    #[test]
    fn every_malformed_variable_is_rejected() {
        for (name, value) in [
            ("RSTCP_TUN", "a-name-far-too-long"),
            ("RSTCP_TUN", "a/b"),
            ("RSTCP_ADDR", "10.77.0.2/33"),
            ("RSTCP_PEER", "nowhere"),
            ("RSTCP_MTU", "100"),
            ("RSTCP_MSL_MS", "-5"),
            ("RSTCP_EXIT_LINGER_MS", "soon"),
            ("RSTCP_FAULTS", "loss=2"),
            ("RSTCP_LOG", "verbose"),
            ("RSTCP_STAT", "yes"),
            ("RSTCP_BUSY_POLL_US", "2000000"),
            ("RSTCP_BUSY_POLL_US", "-1"),
            ("RSTCP_SHARDS", "0"),
            ("RSTCP_SHARDS", "65"),
        ] {
            assert_eq!(
                from(&[(name, value)], &[]).err(),
                Some(Error::Invalid),
                "{name}={value}"
            );
        }
        let ok = from(
            &[
                ("RSTCP_LOG", "off"),
                ("RSTCP_STAT", "0"),
                ("RSTCP_MTU", "9000"),
                ("RSTCP_TUN", "tun7"),
                ("RSTCP_BUSY_POLL_US", "50"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!((ok.mtu, ok.tun.as_str()), (9000, "tun7"));
        assert_eq!(ok.busy_poll, Duration::from_micros(50));
        // A value rs_init gives replaces the variable, malformed or not.
        let skipped = from(&[("RSTCP_ADDR", "bogus")], &["RSTCP_ADDR"]).unwrap();
        assert_eq!(skipped.addr, RuntimeConfig::default().addr);
    }
}
