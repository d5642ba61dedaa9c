//! Packets coming in: IPv4 validation, ICMP echo, and TCP demultiplexing.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::socket_table::{FourTuple, Socket, SocketKind, SocketOptions};
use super::{syncookie, Stack};
use crate::tcp::{State, Tcb};
use crate::time::Instant;
use crate::wire::{
    emit_icmp_echo_reply, emit_ipv4_header, emit_ipv4_tcp, parse_icmp, parse_ipv4, parse_tcp_with,
    protocol, Checksum, IcmpMessage, TcpFlags, TcpHeader, TcpOptions, TcpSegment, WireError,
    IPV4_HEADER_LEN,
};

impl Stack {
    /// Takes one IPv4 packet from the link. Malformed packets are counted
    /// and dropped, never a panic.
    pub fn on_packet(&mut self, now: Instant, packet: &[u8]) {
        self.on_packet_checked(now, packet, Checksum::Full);
    }

    /// [`Stack::on_packet`] for a packet whose TCP checksum the link
    /// vouched for (`Checksum::Partial`: not verified; see
    /// `Link::recv_checked`).
    pub fn on_packet_checked(&mut self, now: Instant, packet: &[u8], checksum: Checksum) {
        self.stats.rx_packets += 1;
        if packet.len() > self.cfg.mtu {
            self.stats.rx_large_packets += 1;
        }
        let ip = match parse_ipv4(packet) {
            Ok(ip) => ip,
            Err(WireError::Fragmented) => {
                self.stats.rx_fragments += 1;
                return;
            }
            Err(_) => {
                self.stats.rx_bad_ip += 1;
                return;
            }
        };
        if ip.dst != self.cfg.addr {
            self.stats.rx_not_ours += 1;
            return;
        }
        match ip.protocol {
            protocol::TCP => match parse_tcp_with(ip.src, ip.dst, ip.payload, checksum) {
                Ok(seg) => {
                    self.stats.tcp_in_segs += 1;
                    self.on_tcp(now, SocketAddrV4::new(ip.src, seg.src_port), &seg)
                }
                Err(_) => self.stats.rx_bad_tcp += 1,
            },
            protocol::ICMP => match parse_icmp(ip.payload) {
                Ok(IcmpMessage::EchoRequest { ident, seq, data }) => {
                    let (src, dst) = (ip.dst, ip.src);
                    self.stats.echo_replies += 1;
                    self.queue_control(|buf| {
                        if buf.len() < IPV4_HEADER_LEN + 8 + data.len() {
                            return 0;
                        }
                        let n = emit_icmp_echo_reply(&mut buf[IPV4_HEADER_LEN..], ident, seq, data);
                        emit_ipv4_header(buf, src, dst, protocol::ICMP, 64, seq, n) + n
                    });
                }
                Ok(IcmpMessage::DestinationUnreachable {
                    code,
                    next_hop_mtu,
                    original,
                }) => self.on_icmp_unreachable(now, code, next_hop_mtu, original),
                Ok(_) => {}
                Err(_) => self.stats.rx_bad_icmp += 1,
            },
            _ => self.stats.rx_unknown_protocol += 1,
        }
    }

    /// An ICMP destination unreachable: finds the connection from the
    /// quoted IP header and the first 8 bytes of TCP (ports, sequence
    /// number) and lets it decide (it checks the sequence number).
    fn on_icmp_unreachable(&mut self, now: Instant, code: u8, mtu: u16, original: &[u8]) {
        let Some(&first) = original.first() else {
            return;
        };
        let ihl = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || ihl < IPV4_HEADER_LEN || original.len() < ihl + 8 {
            self.stats.rx_bad_icmp += 1;
            return;
        }
        let ip4 = |at: usize| {
            Ipv4Addr::new(
                original[at],
                original[at + 1],
                original[at + 2],
                original[at + 3],
            )
        };
        let (src, dst) = (ip4(12), ip4(16));
        if original[9] != protocol::TCP || src != self.cfg.addr {
            return;
        }
        let tcp = &original[ihl..ihl + 8];
        let key = FourTuple {
            local_port: u16::from_be_bytes([tcp[0], tcp[1]]),
            remote_ip: dst,
            remote_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        };
        let quoted_seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
        let Some(&id) = self.sockets.conns.get(&key) else {
            return;
        };
        self.stats.icmp_errors += 1;
        if let Some(t) = self.sockets.get_mut(id).and_then(|s| s.tcb_mut()) {
            if code == 4 {
                // Fragmentation needed: an older router says 0; then the
                // next plateau below the segment's size would be guessed
                // (RFC 1191, 5); we take the floor instead.
                t.on_path_mtu(now, mtu.max(crate::tcp::MIN_PATH_MTU), quoted_seq);
            } else {
                t.on_icmp_unreachable(now, code, quoted_seq);
            }
        }
        self.after(now, id);
    }

    fn on_tcp(&mut self, now: Instant, remote: SocketAddrV4, seg: &TcpSegment) {
        let key = FourTuple {
            local_port: seg.dst_port,
            remote_ip: *remote.ip(),
            remote_port: remote.port(),
        };
        if let Some(&id) = self.sockets.conns.get(&key) {
            if self.reopen_time_wait(id, seg) {
                self.sockets.conns.remove(&key);
                if let Some(s) = self.sockets.get_mut(id) {
                    s.key = None;
                    if let Some(t) = s.tcb_mut() {
                        t.abort();
                    }
                }
                self.after(now, id);
            } else {
                if let Some(t) = self.sockets.get_mut(id).and_then(|s| s.tcb_mut()) {
                    t.on_segment(now, seg);
                }
                self.after(now, id);
                return;
            }
        }
        if self.on_time_wait_segment(now, key, seg) {
            return;
        }
        if let Some(&lid) = self.sockets.listeners.get(&seg.dst_port) {
            self.on_listener_segment(now, lid, remote, seg);
            return;
        }
        self.reset_for(remote, seg);
    }

    /// RFC 6191: a new SYN for a connection in TIME-WAIT may be a new
    /// incarnation, not a stray (`Tcb::syn_reopens`).
    fn reopen_time_wait(&self, id: super::SocketId, seg: &TcpSegment) -> bool {
        let Some(t) = self.sockets.get(id).and_then(|s| s.tcb()) else {
            return false;
        };
        t.syn_reopens(seg) && self.sockets.listeners.contains_key(&seg.dst_port)
    }

    fn on_listener_segment(
        &mut self,
        now: Instant,
        lid: super::SocketId,
        remote: SocketAddrV4,
        seg: &TcpSegment,
    ) {
        let f = seg.flags;
        if f.contains(TcpFlags::RST) {
            return;
        }
        if f.contains(TcpFlags::ACK) {
            // No connection matches: the ACK of a SYN cookie, or else
            // answered with RST (RFC 9293, 3.10.7.2).
            if !f.contains(TcpFlags::SYN) && self.accept_cookie(now, lid, remote, seg) {
                return;
            }
            self.reset_for(remote, seg);
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        let Some(listener) = self.sockets.get(lid) else {
            return;
        };
        let SocketKind::Listener(l) = &listener.kind else {
            return;
        };
        // Two queues, each as long as the backlog (as Linux): the accept
        // queue full drops the SYN (the client tries again); the SYN queue
        // full answers with a cookie and keeps nothing.
        if l.ready.len() >= l.backlog {
            self.stats.syn_dropped_backlog += 1;
            return;
        }
        if l.pending.len() >= l.backlog {
            let options = listener.options.clone();
            self.send_cookie(now, &options, remote, seg);
            return;
        }
        let options: SocketOptions = listener.options.clone();
        let local = SocketAddrV4::new(self.cfg.addr, seg.dst_port);
        let cfg = options.tcp_config(&self.cfg.tcp);
        let iss = self.isn.isn(now, local, remote);
        let tcb = Tcb::accept_syn(&cfg, local, remote, iss, seg);
        self.add_child(now, lid, options, tcb);
    }

    /// A listener's new connection: registered by its 4-tuple and port and
    /// queued as the listener's child; after() moves it on to the accept
    /// queue once (or if already) established.
    fn add_child(&mut self, now: Instant, lid: super::SocketId, options: SocketOptions, tcb: Tcb) {
        let (local, remote) = (tcb.local(), tcb.remote());
        let key = FourTuple::new(local, remote);
        let child = self.sockets.insert(Socket {
            kind: SocketKind::Conn(Box::new(tcb)),
            local: Some(local),
            options,
            parent: Some(lid),
            app_closed: false,
            scheduled: None,
            in_tx_queue: false,
            changed: false,
            key: Some(key),
            in_time_wait: false,
            reported_state: None,
        });
        self.sockets.conns.insert(key, child);
        self.ports.add(local.port(), child);
        if let Some(SocketKind::Listener(l)) = self.sockets.get_mut(lid).map(|s| &mut s.kind) {
            l.pending.push(child);
        }
        self.stats.tcp_passive_opens += 1;
        self.after(now, child);
    }

    /// Answers a SYN with a SYN|ACK whose sequence number is a cookie.
    fn send_cookie(
        &mut self,
        now: Instant,
        options: &SocketOptions,
        remote: SocketAddrV4,
        syn: &TcpSegment,
    ) {
        let cfg = options.tcp_config(&self.cfg.tcp);
        let local = SocketAddrV4::new(self.cfg.addr, syn.dst_port);
        let peer_mss = syn.options.mss.unwrap_or(536);
        let (cookie, _) = syncookie::make(
            &self.isn,
            now,
            local,
            remote,
            syn.seq,
            peer_mss.min(cfg.mss),
        );
        let mut opts = TcpOptions {
            mss: Some(cfg.mss),
            ..TcpOptions::default()
        };
        // Window scale and SACK can only be remembered in the timestamp.
        if let (true, Some((peer_ts, _))) = (cfg.timestamps, syn.options.timestamps) {
            let wscale = (cfg.window_scaling && syn.options.window_scale.is_some())
                .then(|| cfg.window_shift());
            let sack = cfg.sack && syn.options.sack_permitted;
            // The connection's clock, as the Tcb rebuilt later will run it.
            let ts_now = (now.millis() as u32).wrapping_add(cookie.rotate_left(13));
            opts.timestamps = Some((syncookie::timestamp(ts_now, wscale, sack), peer_ts));
            opts.window_scale = wscale;
            opts.sack_permitted = sack;
        }
        let header = TcpHeader {
            src_port: syn.dst_port,
            dst_port: syn.src_port,
            seq: cookie,
            ack: syn.seq.wrapping_add(1),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: cfg.recv_buffer.min(0xffff) as u16,
            options: opts,
        };
        let src = self.cfg.addr;
        self.stats.syn_cookies_sent += 1;
        self.stats.tcp_out_segs += 1;
        self.queue_control(|buf| emit_ipv4_tcp(buf, src, *remote.ip(), 0, &header, 0));
    }

    /// An ACK for a listener: if it returns one of our cookies, the
    /// connection it stands for is made, established, and queued for
    /// accept. False if it is no cookie of ours.
    fn accept_cookie(
        &mut self,
        now: Instant,
        lid: super::SocketId,
        remote: SocketAddrV4,
        seg: &TcpSegment,
    ) -> bool {
        let local = SocketAddrV4::new(self.cfg.addr, seg.dst_port);
        let iss = seg.ack.wrapping_sub(1);
        let peer_isn = seg.seq.wrapping_sub(1);
        let Some(mss) = syncookie::check(&self.isn, now, local, remote, peer_isn, iss) else {
            return false;
        };
        let Some(listener) = self.sockets.get(lid) else {
            return false;
        };
        let SocketKind::Listener(l) = &listener.kind else {
            return false;
        };
        if l.ready.len() >= l.backlog {
            // No room to hand it out: drop the ACK; the client sends again.
            self.stats.syn_dropped_backlog += 1;
            return true;
        }
        let options = listener.options.clone();
        let cfg = options.tcp_config(&self.cfg.tcp);
        let (wscale, sack) = match seg.options.timestamps {
            Some((_, echo)) if cfg.timestamps => syncookie::options_from_echo(echo),
            _ => (None, false),
        };
        let syn_options = TcpOptions {
            mss: Some(mss),
            window_scale: wscale,
            sack_permitted: sack,
            ..TcpOptions::default()
        };
        let mut tcb = Tcb::from_cookie(&cfg, local, remote, iss, seg, syn_options);
        tcb.on_segment(now, seg);
        if tcb.state() != State::Established && tcb.state() != State::CloseWait {
            return false;
        }
        self.stats.syn_cookies_accepted += 1;
        self.add_child(now, lid, options, tcb);
        true
    }

    /// Answers a segment no socket wants with RST (RFC 9293, 3.10.7.1).
    pub(crate) fn reset_for(&mut self, remote: SocketAddrV4, seg: &TcpSegment) {
        if seg.flags.contains(TcpFlags::RST) {
            return;
        }
        let (seq, ack, flags) = if seg.flags.contains(TcpFlags::ACK) {
            (seg.ack, 0, TcpFlags::RST)
        } else {
            let len = seg.payload.len() as u32
                + seg.flags.contains(TcpFlags::SYN) as u32
                + seg.flags.contains(TcpFlags::FIN) as u32;
            (0, seg.seq.wrapping_add(len), TcpFlags::RST | TcpFlags::ACK)
        };
        let header = TcpHeader {
            src_port: seg.dst_port,
            dst_port: seg.src_port,
            seq,
            ack,
            flags,
            window: 0,
            options: TcpOptions::default(),
        };
        let src = self.cfg.addr;
        self.stats.rst_sent_no_socket += 1;
        self.stats.tcp_out_segs += 1;
        self.queue_control(|buf| emit_ipv4_tcp(buf, src, *remote.ip(), 0, &header, 0));
    }
}
