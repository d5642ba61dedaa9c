//! A link wrapper that records every packet to a pcap file.
//!
//! The file uses the classic pcap format (microsecond timestamps) with link
//! type `LINKTYPE_IPV4`, so Wireshark and tcpdump read it without any
//! framing guesswork. Records carry wall-clock time, since the link's `now`
//! has an arbitrary origin.
//!
//! Each record goes to the file in one write(2) as it happens, unbuffered:
//! however the program ends short of a crash in the middle of that call
//! (exit, a signal's default action, SIGKILL), the capture holds every
//! packet up to the last and no torn record. A capture is for debugging,
//! where a complete file is worth a system call per packet.

use super::Link;
use crate::sys::RawFile;
use crate::time::Instant;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Magic number of a classic pcap file with microsecond timestamps, written
/// in native byte order (readers detect the order from it).
const MAGIC: u32 = 0xa1b2_c3d4;
/// Longest packet recorded in full.
const SNAPLEN: u32 = 65535;
/// `LINKTYPE_IPV4`: each record is a bare IPv4 packet.
const LINKTYPE_IPV4: u32 = 228;

/// Records every packet sent and received through the inner link.
///
/// A failure to write the capture does not fail the link: traffic matters
/// more than its record. Recording stops at the first write error, which
/// [`PcapTee::take_error`] reports.
#[derive(Debug)]
pub struct PcapTee<L: Link> {
    inner: L,
    out: Option<RawFile>,
    /// One record, header and packet, assembled for its single write.
    record: Vec<u8>,
    error: Option<io::Error>,
}

impl<L: Link> PcapTee<L> {
    /// Creates (or truncates) the file at `path`, writes the pcap header and
    /// wraps `inner`.
    pub fn new(inner: L, path: impl AsRef<Path>) -> io::Result<PcapTee<L>> {
        let mut out = RawFile::new(File::create(path)?);
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC.to_ne_bytes());
        header[4..6].copy_from_slice(&2u16.to_ne_bytes());
        header[6..8].copy_from_slice(&4u16.to_ne_bytes());
        // Bytes 8..16 (time zone offset and accuracy) stay zero, as usual.
        header[16..20].copy_from_slice(&SNAPLEN.to_ne_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_IPV4.to_ne_bytes());
        // Even a run that records nothing leaves a valid, empty capture.
        out.write_all(&header)?;
        Ok(PcapTee {
            inner,
            out: Some(out),
            record: Vec::new(),
            error: None,
        })
    }

    /// The first error met while writing the capture, if any (recording
    /// stopped then).
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// The wrapped link.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// The wrapped link, mutably.
    pub fn inner_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    /// Records `packet`; `partial` says its TCP checksum is the offload's
    /// partial one, finished in the record so readers do not flag it.
    fn record(&mut self, packet: &[u8], partial: bool) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        if let Err(err) = write_record(out, &mut self.record, packet, partial) {
            self.out = None;
            self.error = Some(err);
        }
    }
}

fn write_record(
    out: &mut RawFile,
    record: &mut Vec<u8>,
    packet: &[u8],
    partial: bool,
) -> io::Result<()> {
    // A clock set before 1970 is recorded as the epoch rather than failing.
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let orig_len = u32::try_from(packet.len()).unwrap_or(u32::MAX);
    let incl_len = orig_len.min(SNAPLEN);
    let mut header = [0u8; 16];
    // pcap seconds are 32 bits; they wrap in 2106.
    header[0..4].copy_from_slice(&(since_epoch.as_secs() as u32).to_ne_bytes());
    header[4..8].copy_from_slice(&since_epoch.subsec_micros().to_ne_bytes());
    header[8..12].copy_from_slice(&incl_len.to_ne_bytes());
    header[12..16].copy_from_slice(&orig_len.to_ne_bytes());
    record.clear();
    record.extend_from_slice(&header);
    record.extend_from_slice(&packet[..incl_len as usize]);
    if partial {
        crate::wire::gso::finish_checksum(&mut record[16..]);
    }
    out.write_all(record)
}

impl<L: Link> Link for PcapTee<L> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let received = self.inner.recv(now, buf)?;
        if let Some(n) = received {
            self.record(&buf[..n], false);
        }
        Ok(received)
    }

    /// A checksum the device left partial is finished in the record only.
    fn recv_checked(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, crate::wire::Checksum)>> {
        let received = self.inner.recv_checked(now, buf)?;
        if let Some((n, checksum)) = received {
            self.record(&buf[..n], checksum == crate::wire::Checksum::Partial);
        }
        Ok(received)
    }

    /// Records the packet only if the inner link accepted it.
    fn send(&mut self, now: Instant, packet: &[u8]) -> io::Result<()> {
        self.inner.send(now, packet)?;
        self.record(packet, false);
        Ok(())
    }

    /// Records the packet as the stack sent it, before any segmentation
    /// (as tcpdump shows a TSO sender's large segments).
    fn send_gso(&mut self, now: Instant, packet: &[u8], mss: u16) -> io::Result<()> {
        self.inner.send_gso(now, packet, mss)?;
        self.record(packet, true);
        Ok(())
    }

    fn gso_max(&self) -> usize {
        self.inner.gso_max()
    }

    fn readable_fd(&self) -> Option<RawFd> {
        self.inner.readable_fd()
    }

    fn next_release(&self) -> Option<Instant> {
        self.inner.next_release()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn max_packet(&self) -> usize {
        self.inner.max_packet()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::Pair;

    fn temp_path(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rstcp-pcap-{tag}-{}.pcap", std::process::id()))
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// Splits a capture into (header, records), checking the framing.
    fn parse(bytes: &[u8]) -> Vec<Vec<u8>> {
        assert!(bytes.len() >= 24, "no global header");
        assert_eq!(u32_at(bytes, 0), MAGIC);
        assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 2);
        assert_eq!(u16::from_ne_bytes([bytes[6], bytes[7]]), 4);
        assert_eq!(u32_at(bytes, 16), 65535);
        assert_eq!(u32_at(bytes, 20), 228);
        let mut records = Vec::new();
        let mut at = 24;
        while at < bytes.len() {
            assert!(bytes.len() - at >= 16, "truncated record header");
            let secs = u32_at(bytes, at);
            let micros = u32_at(bytes, at + 4);
            let incl = u32_at(bytes, at + 8) as usize;
            let orig = u32_at(bytes, at + 12) as usize;
            assert!(secs > 1_600_000_000, "wall-clock timestamp");
            assert!(micros < 1_000_000);
            assert_eq!(incl, orig);
            at += 16;
            assert!(bytes.len() - at >= incl, "truncated record body");
            records.push(bytes[at..at + incl].to_vec());
            at += incl;
        }
        records
    }

    #[test]
    fn records_both_directions_in_a_valid_capture() {
        let path = temp_path("both");
        let (a, mut b) = Pair::new(1500);
        let mut a = PcapTee::new(a, &path).unwrap();
        let now = Instant::ZERO;
        a.send(now, b"\x45outgoing").unwrap();
        b.send(now, b"\x45incoming!").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(a.recv(now, &mut buf).unwrap(), Some(10));
        assert_eq!(a.recv(now, &mut buf).unwrap(), None);
        // An oversize send fails and is not recorded.
        assert!(a.send(now, &[0u8; 2000]).is_err());
        assert_eq!(a.mtu(), 1500);
        drop(a);
        let records = parse(&std::fs::read(&path).unwrap());
        assert_eq!(
            records,
            vec![b"\x45outgoing".to_vec(), b"\x45incoming!".to_vec()]
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn header_and_each_packet_are_on_disk_at_once() {
        let path = temp_path("empty");
        let (a, _b) = Pair::new(1500);
        let mut tee = PcapTee::new(a, &path).unwrap();
        assert!(parse(&std::fs::read(&path).unwrap()).is_empty());
        tee.send(Instant::ZERO, b"x").unwrap();
        assert_eq!(parse(&std::fs::read(&path).unwrap()), vec![b"x".to_vec()]);
        assert!(tee.take_error().is_none());
        drop(tee);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_packet_of_many_segments_is_recorded_whole_with_its_checksum_finished() {
        use crate::wire::{self, Checksum, TcpFlags, TcpHeader, TcpOptions};
        let path = temp_path("gso");
        let (a, mut b) = Pair::new(1500);
        let mut tee = PcapTee::new(a, &path).unwrap();
        let (src, dst) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let header = TcpHeader {
            src_port: 1,
            dst_port: 2,
            seq: 3,
            ack: 4,
            flags: TcpFlags::ACK,
            window: 5,
            options: TcpOptions::default(),
        };
        let mut packet = vec![7u8; 40 + 3000];
        let n =
            wire::emit_ipv4_tcp_with(&mut packet, src, dst, 9, &header, 3000, Checksum::Partial);
        assert_eq!(n, packet.len());
        tee.send_gso(Instant::ZERO, &packet, 1000).unwrap();
        // The pair, a wire, carries three segments; the capture holds one.
        let mut buf = [0u8; 1500];
        let mut segments = 0;
        while let Some(n) = b.recv(Instant::ZERO, &mut buf).unwrap() {
            let ip = wire::parse_ipv4(&buf[..n]).unwrap();
            assert_eq!(
                wire::parse_tcp(src, dst, ip.payload).unwrap().payload.len(),
                1000
            );
            segments += 1;
        }
        assert_eq!(segments, 3);
        drop(tee);
        let records = parse(&std::fs::read(&path).unwrap());
        assert_eq!(records.len(), 1);
        let ip = wire::parse_ipv4(&records[0]).unwrap();
        let seg = wire::parse_tcp(src, dst, ip.payload).expect("a finished checksum");
        assert_eq!(seg.payload, &[7u8; 3000][..]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let (a, _b) = Pair::new(1500);
        assert!(PcapTee::new(a, "/nonexistent-dir/x.pcap").is_err());
    }
}
