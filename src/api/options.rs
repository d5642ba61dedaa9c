//! Socket options: the ones the stack itself handles.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::fd_table::FdEntry;
use super::Sockets;
use crate::error::{Error, Result};
use crate::runtime::config::MAX_BUSY_POLL_US;

/// Smallest buffer sizes Linux allows (SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF).
const MIN_RCVBUF: usize = 2304;
const MIN_SNDBUF: usize = 4608;
/// Largest buffer we accept (Linux's default rmem_max/wmem_max are smaller;
/// a user-space stack can afford more).
const MAX_BUF: usize = 64 << 20;

/// An option and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOpt {
    /// SO_REUSEADDR.
    ReuseAddr(bool),
    /// SO_KEEPALIVE.
    KeepAlive(bool),
    /// TCP_KEEPIDLE: idle time before the first keep-alive probe.
    KeepIdle(Duration),
    /// TCP_KEEPINTVL: time between unanswered probes.
    KeepInterval(Duration),
    /// TCP_KEEPCNT: unanswered probes before the connection is dropped.
    KeepCount(u32),
    /// SO_LINGER: None = off; Some(0) = close resets; Some(t) = close waits up to t.
    Linger(Option<Duration>),
    /// SO_RCVBUF: like Linux, the value set is doubled.
    RecvBuffer(usize),
    /// SO_SNDBUF: like Linux, the value set is doubled.
    SendBuffer(usize),
    /// SO_RCVTIMEO (None = block forever).
    RecvTimeout(Option<Duration>),
    /// SO_SNDTIMEO (None = block forever).
    SendTimeout(Option<Duration>),
    /// TCP_NODELAY.
    NoDelay(bool),
    /// SO_ERROR (read-only; reading clears it), as an errno value.
    Error(i32),
    /// SO_TYPE (read-only).
    Type(i32),
    /// SO_ACCEPTCONN (read-only).
    AcceptConn(bool),
    /// TCP_MAXSEG: the MSS in use (read), the most to announce and use
    /// for the connections to come (set; 0 clears it).
    MaxSeg(usize),
    /// TCP_USER_TIMEOUT (None = off): how long sent data may stay
    /// unacknowledged before the connection is given up (RFC 5482).
    UserTimeout(Option<Duration>),
    /// TCP_INFO (read-only).
    Info(crate::tcp::TcpInfo),
    /// TCP_CONGESTION: the congestion-control algorithm.
    Congestion(crate::tcp::Algorithm),
    /// SO_BUSY_POLL: how long a blocking call spins on the device before
    /// it sleeps (RSTCP_BUSY_POLL_US until set).
    BusyPoll(Duration),
}

/// Which option to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOptName {
    /// SO_REUSEADDR.
    ReuseAddr,
    /// SO_KEEPALIVE.
    KeepAlive,
    /// TCP_KEEPIDLE.
    KeepIdle,
    /// TCP_KEEPINTVL.
    KeepInterval,
    /// TCP_KEEPCNT.
    KeepCount,
    /// SO_LINGER.
    Linger,
    /// SO_RCVBUF.
    RecvBuffer,
    /// SO_SNDBUF.
    SendBuffer,
    /// SO_RCVTIMEO.
    RecvTimeout,
    /// SO_SNDTIMEO.
    SendTimeout,
    /// TCP_NODELAY.
    NoDelay,
    /// SO_ERROR.
    Error,
    /// SO_TYPE.
    Type,
    /// SO_ACCEPTCONN.
    AcceptConn,
    /// TCP_MAXSEG.
    MaxSeg,
    /// TCP_USER_TIMEOUT.
    UserTimeout,
    /// TCP_INFO.
    Info,
    /// TCP_CONGESTION.
    Congestion,
    /// SO_BUSY_POLL.
    BusyPoll,
}

fn micros(t: Option<Duration>) -> u64 {
    t.map(|d| d.as_micros().clamp(1, u64::MAX as u128) as u64)
        .unwrap_or(0)
}

impl Sockets {
    /// How long blocking calls on `e` busy-poll: its SO_BUSY_POLL, or the
    /// runtime's default.
    pub(crate) fn busy_poll_of(&self, e: &FdEntry) -> Duration {
        match e.busy_poll.load(Ordering::Relaxed) {
            FdEntry::DEFAULT_BUSY_POLL => self.rt(e.shard).busy_poll(),
            us => Duration::from_micros(us),
        }
    }

    /// setsockopt().
    pub fn set_option(&self, fd: i32, opt: SockOpt) -> Result<()> {
        let e = self.fds.get(fd)?;
        let set_timeout = |slot: &std::sync::atomic::AtomicU64, t| {
            slot.store(micros(t), Ordering::Release);
            Ok(())
        };
        match opt {
            SockOpt::RecvTimeout(t) => return set_timeout(&e.recv_timeout, t),
            SockOpt::SendTimeout(t) => return set_timeout(&e.send_timeout, t),
            SockOpt::BusyPoll(d) => {
                let us = d.as_micros().min(u128::from(MAX_BUSY_POLL_US)) as u64;
                e.busy_poll.store(us, Ordering::Relaxed);
                return Ok(());
            }
            SockOpt::Error(_) | SockOpt::Type(_) | SockOpt::AcceptConn(_) | SockOpt::Info(_) => {
                return Err(Error::NoProtocolOption)
            }
            // Linux's bounds: TCP_MIN_MSS (88) up to the largest window.
            SockOpt::MaxSeg(m) if m != 0 && !(88..=32767).contains(&m) => {
                return Err(Error::Invalid)
            }
            _ => {}
        }
        // A listener's copies in other shards take it too (their
        // connections inherit the listener's options).
        for (shard, id) in e.places() {
            let shared = self.rt(shard);
            let mut inner = shared.lock();
            let now = shared.now();
            set_one(&mut inner.stack, now, id, opt)?;
        }
        Ok(())
    }
}

/// Applies `opt` to socket `id` of one stack.
fn set_one(
    stack: &mut crate::stack::Stack,
    now: crate::time::Instant,
    id: crate::stack::SocketId,
    opt: SockOpt,
) -> Result<()> {
    {
        stack.set_options(now, id, |o| match opt {
            SockOpt::ReuseAddr(v) => o.reuse_addr = v,
            SockOpt::KeepAlive(v) => o.keepalive.enabled = v,
            SockOpt::Linger(l) => o.linger = l,
            SockOpt::KeepIdle(d) => o.keepalive.idle = d,
            SockOpt::KeepInterval(d) => o.keepalive.interval = d,
            SockOpt::KeepCount(n) => o.keepalive.count = n,
            SockOpt::NoDelay(v) => o.nodelay = v,
            SockOpt::RecvBuffer(v) => {
                o.recv_buffer = v.saturating_mul(2).clamp(MIN_RCVBUF, MAX_BUF);
                o.recv_buffer_locked = true;
            }
            SockOpt::SendBuffer(v) => {
                o.send_buffer = v.saturating_mul(2).clamp(MIN_SNDBUF, MAX_BUF);
                o.send_buffer_locked = true;
            }
            SockOpt::UserTimeout(t) => o.user_timeout = t,
            SockOpt::MaxSeg(m) => o.max_seg = (m != 0).then_some(m as u16),
            SockOpt::Congestion(a) => o.congestion = a,
            _ => {}
        })
    }
}

impl Sockets {
    /// getsockopt().
    pub fn get_option(&self, fd: i32, name: SockOptName) -> Result<SockOpt> {
        let e: std::sync::Arc<FdEntry> = self.fds.get(fd)?;
        match name {
            SockOptName::RecvTimeout => {
                return Ok(SockOpt::RecvTimeout(FdEntry::timeout(&e.recv_timeout)))
            }
            SockOptName::SendTimeout => {
                return Ok(SockOpt::SendTimeout(FdEntry::timeout(&e.send_timeout)))
            }
            SockOptName::Type => return Ok(SockOpt::Type(libc::SOCK_STREAM)),
            SockOptName::BusyPoll => return Ok(SockOpt::BusyPoll(self.busy_poll_of(&e))),
            _ => {}
        }
        let mut inner = self.rt(e.shard).lock();
        if name == SockOptName::Error {
            let err = inner.stack.take_error(e.id)?;
            return Ok(SockOpt::Error(err.map(|e| e.errno()).unwrap_or(0)));
        }
        if name == SockOptName::AcceptConn {
            let listening = inner.stack.state(e.id)? == crate::tcp::State::Listen;
            return Ok(SockOpt::AcceptConn(listening));
        }
        if name == SockOptName::Info {
            let now = self.rt(e.shard).now();
            let info = match inner.stack.tcb(e.id) {
                Some(t) => t.info(now),
                None => crate::tcp::TcpInfo {
                    state: crate::tcp::info::linux_state(inner.stack.state(e.id)?),
                    ..Default::default()
                },
            };
            return Ok(SockOpt::Info(info));
        }
        if name == SockOptName::MaxSeg {
            // Connected: the MSS in use; before: what the application set,
            // or 536 as Linux answers (RFC 9293's default).
            let set = inner.stack.options(e.id)?.max_seg;
            let mss = match inner.stack.tcb(e.id) {
                Some(t) => t.send_mss(),
                None => set.map_or(536, usize::from),
            };
            return Ok(SockOpt::MaxSeg(mss));
        }
        // A connection's buffers grow by autotuning: report their size now,
        // as Linux does.
        let sizes = inner.stack.tcb(e.id).map(|t| t.buffer_sizes());
        let o = inner.stack.options(e.id)?;
        Ok(match name {
            SockOptName::ReuseAddr => SockOpt::ReuseAddr(o.reuse_addr),
            SockOptName::KeepAlive => SockOpt::KeepAlive(o.keepalive.enabled),
            SockOptName::Linger => SockOpt::Linger(o.linger),
            SockOptName::KeepIdle => SockOpt::KeepIdle(o.keepalive.idle),
            SockOptName::KeepInterval => SockOpt::KeepInterval(o.keepalive.interval),
            SockOptName::KeepCount => SockOpt::KeepCount(o.keepalive.count),
            SockOptName::NoDelay => SockOpt::NoDelay(o.nodelay),
            SockOptName::RecvBuffer => SockOpt::RecvBuffer(sizes.map_or(o.recv_buffer, |s| s.1)),
            SockOptName::SendBuffer => SockOpt::SendBuffer(sizes.map_or(o.send_buffer, |s| s.0)),
            SockOptName::UserTimeout => SockOpt::UserTimeout(o.user_timeout),
            SockOptName::Congestion => SockOpt::Congestion(o.congestion),
            _ => return Err(Error::NoProtocolOption),
        })
    }
}
