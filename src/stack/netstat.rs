//! The socket table as `ss -tn` / `netstat -nt` show the kernel's, and the
//! counters as `netstat -s` does: plain values, for the observability
//! tools above (rstcp-stat, `rs_netstat`, Python).

use std::net::{Ipv4Addr, SocketAddrV4};

use super::socket_table::{SocketId, SocketKind};
use super::{Stack, Stats};
use crate::tcp::{State, TcpInfo};
use crate::time::Instant;

/// One socket as `ss` shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SocketRow {
    /// The socket (the API layer maps it to a descriptor); None for a
    /// connection in TIME-WAIT whose socket is gone.
    pub id: Option<SocketId>,
    /// Its TCP state (a socket not yet listening or connected is Closed).
    pub state: State,
    /// Bytes received and not read; for a listener, connections waiting
    /// for accept (as ss shows).
    pub recv_q: usize,
    /// Bytes not yet acknowledged; for a listener, its backlog.
    pub send_q: usize,
    /// Local address (0.0.0.0:0 before bind).
    pub local: SocketAddrV4,
    /// Peer address (0.0.0.0:0 when not connected).
    pub peer: SocketAddrV4,
    /// TCP_INFO of a connection.
    pub info: Option<TcpInfo>,
}

const NOWHERE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);

impl Stack {
    /// Every socket, connections closing in the background included,
    /// appended to `out`.
    pub fn socket_rows(&self, now: Instant, out: &mut Vec<SocketRow>) {
        for id in self.sockets.ids() {
            let Some(s) = self.sockets.get(id) else {
                continue;
            };
            let local = s.local.unwrap_or(NOWHERE);
            let row = match &s.kind {
                SocketKind::Fresh => SocketRow {
                    id: Some(id),
                    state: State::Closed,
                    recv_q: 0,
                    send_q: 0,
                    local,
                    peer: NOWHERE,
                    info: None,
                },
                SocketKind::Listener(l) => SocketRow {
                    id: Some(id),
                    state: State::Listen,
                    recv_q: l.ready.len(),
                    send_q: l.backlog,
                    local,
                    peer: NOWHERE,
                    info: None,
                },
                SocketKind::Conn(t) => SocketRow {
                    id: Some(id),
                    state: t.state(),
                    recv_q: t.recv_queue(),
                    send_q: t.send_queue(),
                    local: t.local(),
                    peer: t.remote(),
                    info: Some(t.info(now)),
                },
            };
            out.push(row);
        }
        for (local, peer) in self.time_waits() {
            out.push(SocketRow {
                id: None,
                state: State::TimeWait,
                recv_q: 0,
                send_q: 0,
                local,
                peer,
                info: None,
            });
        }
    }
}

impl Stack {
    /// The counters by name, in the spirit of `netstat -s`.
    pub fn counters(&self) -> [(&'static str, u64); 27] {
        let s: &Stats = &self.stats;
        [
            ("active_opens", s.tcp_active_opens),
            ("passive_opens", s.tcp_passive_opens),
            ("segments_received", s.tcp_in_segs),
            ("segments_sent", s.tcp_out_segs),
            ("segments_retransmitted", self.tcp_retrans_segs()),
            ("resets_sent_no_socket", s.rst_sent_no_socket),
            ("syns_dropped_backlog", s.syn_dropped_backlog),
            ("syn_cookies_sent", s.syn_cookies_sent),
            ("syn_cookies_accepted", s.syn_cookies_accepted),
            ("time_wait_overflow", s.time_wait_overflow),
            ("icmp_errors", s.icmp_errors),
            ("icmp_echo_replies", s.echo_replies),
            ("packets_received", s.rx_packets),
            ("packets_sent", s.tx_packets),
            ("large_packets_received", s.rx_large_packets),
            ("large_packets_sent", s.tx_large_packets),
            ("payloads_sent_in_place", s.tx_in_place),
            ("packets_sent_by_callers", s.tx_by_callers),
            ("packets_received_by_callers", s.rx_by_callers),
            ("io_thread_wakeups", s.io_wakeups),
            ("bad_ip_packets", s.rx_bad_ip),
            ("fragments_dropped", s.rx_fragments),
            ("packets_not_ours", s.rx_not_ours),
            ("bad_tcp_segments", s.rx_bad_tcp),
            ("bad_icmp_messages", s.rx_bad_icmp),
            ("unknown_protocol", s.rx_unknown_protocol),
            ("connections_in_time_wait", self.time_wait as u64),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::StackConfig;

    #[test]
    fn rows_show_fresh_listening_and_connecting_sockets() {
        let mut st = Stack::new(StackConfig::default());
        let now = Instant::from_millis(1);
        let fresh = st.socket_tcp();
        let l = st.socket_tcp();
        let addr = SocketAddrV4::new(st.config().addr, 8080);
        st.bind(l, addr).unwrap();
        st.listen(l, 5).unwrap();
        let c = st.socket_tcp();
        let peer = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 80);
        let _ = st.connect(now, c, peer);
        let mut rows = Vec::new();
        st.socket_rows(now, &mut rows);
        let by = |id| rows.iter().find(|r| r.id == Some(id)).copied().unwrap();
        assert_eq!(by(fresh).state, State::Closed);
        let lr = by(l);
        assert_eq!(
            (lr.state, lr.local, lr.recv_q, lr.send_q),
            (State::Listen, addr, 0, 5)
        );
        let cr = by(c);
        assert_eq!((cr.state, cr.peer), (State::SynSent, peer));
        assert_eq!(cr.info.map(|i| i.state), Some(2));
    }
}
