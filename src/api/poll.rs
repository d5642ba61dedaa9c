//! poll() over our descriptors.

use std::time::Duration;

use super::Sockets;
use crate::error::Result;

/// One entry of a poll set, as `struct pollfd`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor; negative ones are skipped (revents 0), as in poll(2).
    pub fd: i32,
    /// Events of interest (POLLIN, POLLOUT, POLLRDHUP…).
    pub events: i16,
    /// Events that happened; POLLERR, POLLHUP and POLLNVAL are always reported.
    pub revents: i16,
}

impl Sockets {
    /// Fills `revents` and returns how many entries have any; waits up to
    /// `timeout` (None = forever) for one to become ready.
    pub fn poll(&self, fds: &mut [PollFd], timeout: Option<Duration>) -> Result<usize> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let entries: Vec<_> = fds.iter().map(|p| self.fds.get(p.fd).ok()).collect();
        let mut inner = self.lock();
        loop {
            if self.shared.is_dead() {
                return Err(crate::error::Error::Io);
            }
            let mut ready = 0;
            for (p, e) in fds.iter_mut().zip(entries.iter()) {
                p.revents = 0;
                if p.fd < 0 {
                    continue;
                }
                let mask = match e {
                    Some(e) => inner.stack.readiness(e.id).unwrap_or(libc::POLLNVAL),
                    None => libc::POLLNVAL,
                };
                let always = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
                p.revents = mask & (p.events | always);
                if p.revents != 0 {
                    ready += 1;
                }
            }
            if ready > 0 {
                return Ok(ready);
            }
            match deadline {
                Some(d) if std::time::Instant::now() >= d => return Ok(0),
                Some(d) => {
                    self.shared.any_change.wait_until(&mut inner, d);
                }
                None => self.shared.any_change.wait(&mut inner),
            }
        }
    }
}
