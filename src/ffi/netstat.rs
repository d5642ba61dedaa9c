//! `rs_netstat`: the process's sockets as `ss -tn` would list them, into a
//! caller's array (the same table `rstcp-stat` shows).

use std::ffi::c_int;

use super::guard::call;
use crate::api;
use crate::error::Error;

/// One socket, as `rs_netstat` fills it. States use Linux's TCP state
/// numbers (1 ESTABLISHED, 2 SYN_SENT, … 7 CLOSE, 10 LISTEN, as in
/// `tcp_info`); the TCP_INFO figures are zero for sockets that are not
/// connections.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rs_sockinfo {
    /// The lowest rstcp descriptor referring to the socket, or -1 (in an
    /// accept queue, or closed and finishing in the background).
    pub fd: c_int,
    /// Linux's TCP state number.
    pub state: c_int,
    /// Bytes received and not read (a listener: connections to accept).
    pub recv_q: u32,
    /// Bytes not yet acknowledged (a listener: its backlog).
    pub send_q: u32,
    /// Local address (zero before bind).
    pub local: libc::sockaddr_in,
    /// Peer address (zero when not connected).
    pub peer: libc::sockaddr_in,
    /// Smoothed round-trip time, µs.
    pub rtt_us: u32,
    /// RTT variation, µs.
    pub rttvar_us: u32,
    /// Smallest RTT measured, µs.
    pub min_rtt_us: u32,
    /// Retransmission timeout, µs.
    pub rto_us: u32,
    /// Segment size in use.
    pub snd_mss: u32,
    /// Congestion window, in segments.
    pub snd_cwnd: u32,
    /// Slow-start threshold, in segments (0x7fffffff before any loss).
    pub snd_ssthresh: u32,
    /// Segments sent and not acknowledged.
    pub unacked: u32,
    /// Segments the peer SACKed.
    pub sacked: u32,
    /// Segments marked lost and not sent again yet.
    pub lost: u32,
    /// Segments sent again over the connection's life.
    pub total_retrans: u32,
}

fn sockaddr(a: std::net::SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Fills `out` with up to `max` of this process's sockets (ordered by
/// descriptor; those without one last) and returns how many there are,
/// which may be more than `max` (call again with a larger array). `out`
/// may be NULL when `max` is 0. Errors: EINVAL for a negative `max`,
/// EFAULT for a NULL `out` with `max` > 0; the stack's start-up errors.
///
/// # Safety
/// `out` must be NULL or point to `max` writable `rs_sockinfo`s.
#[no_mangle]
pub unsafe extern "C" fn rs_netstat(out: *mut rs_sockinfo, max: c_int) -> c_int {
    call("rs_netstat", || {
        if max < 0 {
            return Err(Error::Invalid);
        }
        if out.is_null() && max > 0 {
            return Err(Error::Fault);
        }
        let entries = api::global()?.netstat();
        for (i, e) in entries.iter().take(max as usize).enumerate() {
            let r = &e.row;
            let info = r.info.unwrap_or_default();
            let v = rs_sockinfo {
                fd: e.fd.unwrap_or(-1),
                state: i32::from(crate::tcp::info::linux_state(r.state)),
                recv_q: r.recv_q.min(u32::MAX as usize) as u32,
                send_q: r.send_q.min(u32::MAX as usize) as u32,
                local: sockaddr(r.local),
                peer: sockaddr(r.peer),
                rtt_us: info.rtt,
                rttvar_us: info.rttvar,
                min_rtt_us: info.min_rtt,
                rto_us: info.rto,
                snd_mss: info.snd_mss,
                snd_cwnd: info.snd_cwnd,
                snd_ssthresh: info.snd_ssthresh,
                unacked: info.unacked,
                sacked: info.sacked,
                lost: info.lost,
                total_retrans: info.total_retrans,
            };
            // SAFETY: i < max, and out holds max entries per the contract.
            unsafe { out.add(i).write(v) };
        }
        Ok(entries.len().min(c_int::MAX as usize) as c_int)
    })
}
