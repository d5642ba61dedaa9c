//! Configuration of a runtime: from the environment (`RSTCP_*`) or explicit.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::link::{FaultConfig, Faulty, Link, PcapTee, Tun, TunConfig};
use crate::rs_log;
use crate::stack::StackConfig;
use crate::tcp;

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
    /// malformed variable is an error (EINVAL), not silently ignored.
    pub fn from_env() -> Result<RuntimeConfig> {
        let mut cfg = RuntimeConfig::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("RSTCP_TUN") {
            cfg.tun = v;
        }
        if let Some(v) = var("RSTCP_ADDR") {
            let (ip, len) = parse_cidr(&v).inspect_err(|_| {
                rs_log!(Error, "RSTCP_ADDR={v:?} is not an address/prefix");
            })?;
            cfg.addr = ip;
            cfg.prefix_len = len;
        }
        if let Some(v) = var("RSTCP_PEER") {
            cfg.peer = Some(v.parse().map_err(|_| {
                rs_log!(Error, "RSTCP_PEER={v:?} is not an IPv4 address");
                Error::Invalid
            })?);
        }
        if let Some(v) = var("RSTCP_MTU") {
            cfg.mtu = v.parse().ok().filter(|m| *m >= 576).ok_or(Error::Invalid)?;
        }
        if let Some(v) = var("RSTCP_MSL_MS") {
            cfg.msl = Duration::from_millis(v.parse().map_err(|_| Error::Invalid)?);
        }
        if let Some(v) = var("RSTCP_EXIT_LINGER_MS") {
            cfg.exit_linger = Duration::from_millis(v.parse().map_err(|_| Error::Invalid)?);
        }
        cfg.pcap = var("RSTCP_PCAP");
        if let Some(v) = var("RSTCP_FAULTS") {
            cfg.faults = Some(FaultConfig::parse(&v).map_err(|e| {
                rs_log!(Error, "RSTCP_FAULTS: {e}");
                Error::Invalid
            })?);
        }
        Ok(cfg)
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

    /// Opens (or creates) the TUN device and wraps it as configured.
    pub fn open_link(&self) -> Result<Box<dyn Link>> {
        let tun = Tun::open(&TunConfig {
            name: self.tun.clone(),
            kernel_addr: self.peer_addr(),
            prefix_len: self.prefix_len,
            mtu: self.mtu,
        })
        .map_err(|e| {
            rs_log!(Error, "cannot open TUN device {}: {e}", self.tun);
            match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => Error::Permission,
                Some(libc::EBUSY) => Error::AddressInUse,
                _ => Error::NoDevice,
            }
        })?;
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
                rs_log!(Error, "cannot write pcap {path}: {e}");
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
}
