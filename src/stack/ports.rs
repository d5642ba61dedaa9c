//! Which local ports are in use, and the choice of ephemeral ports.

use std::collections::HashMap;

use super::socket_table::SocketId;

/// Linux's default ephemeral range (net.ipv4.ip_local_port_range).
pub const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;

/// Port → the sockets holding it (bound, listening or connected), and
/// how many compact TIME-WAIT connections hold it.
#[derive(Debug, Default)]
pub struct Ports {
    users: HashMap<u16, Vec<SocketId>>,
    time_waits: HashMap<u16, u32>,
    /// Advances on each pick so consecutive connects spread out.
    counter: u32,
}

impl Ports {
    /// The sockets holding `port`.
    pub fn users(&self, port: u16) -> &[SocketId] {
        self.users.get(&port).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Records that `id` holds `port`.
    pub fn add(&mut self, port: u16, id: SocketId) {
        self.users.entry(port).or_default().push(id);
    }

    /// Records that `id` no longer holds `port`.
    pub fn remove(&mut self, port: u16, id: SocketId) {
        if let Some(v) = self.users.get_mut(&port) {
            v.retain(|&u| u != id);
            if v.is_empty() {
                self.users.remove(&port);
            }
        }
    }

    /// Records a compact TIME-WAIT connection on `port`.
    pub fn hold_time_wait(&mut self, port: u16) {
        *self.time_waits.entry(port).or_default() += 1;
    }

    /// A compact TIME-WAIT connection on `port` ended.
    pub fn release_time_wait(&mut self, port: u16) {
        if let Some(n) = self.time_waits.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                self.time_waits.remove(&port);
            }
        }
    }

    /// How many compact TIME-WAIT connections hold `port`.
    pub fn time_waits(&self, port: u16) -> u32 {
        self.time_waits.get(&port).copied().unwrap_or(0)
    }

    /// A free ephemeral port for which `fits` holds (a shard's own, see
    /// `StackConfig::shard`), starting from a secret-dependent random offset
    /// (RFC 6056, algorithm 1 style) so ports are hard to predict.
    pub fn pick_ephemeral(&mut self, random: u64, fits: impl Fn(u16) -> bool) -> Option<u16> {
        let (lo, hi) = (*EPHEMERAL.start() as u32, *EPHEMERAL.end() as u32);
        let span = hi - lo + 1;
        self.counter = self.counter.wrapping_add(1);
        let start = (random as u32).wrapping_add(self.counter) % span;
        (0..span)
            .map(|i| (lo + (start + i) % span) as u16)
            .find(|&p| fits(p) && !self.users.contains_key(&p) && !self.time_waits.contains_key(&p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_ports_are_free_and_in_range() {
        let mut p = Ports::default();
        let a = p.pick_ephemeral(12345, |_| true).unwrap();
        assert!(EPHEMERAL.contains(&a));
        p.add(a, SocketId::new(1, 0));
        let b = p.pick_ephemeral(12345, |_| true).unwrap();
        assert_ne!(a, b);
        p.remove(a, SocketId::new(1, 0));
        assert!(p.users(a).is_empty());
        // Only ports that fit, while there are any.
        let even = p.pick_ephemeral(7, |port| port % 2 == 0).unwrap();
        assert_eq!(even % 2, 0);
        assert_eq!(p.pick_ephemeral(7, |_| false), None);
        // A port held by a TIME-WAIT alone is not free either.
        p.hold_time_wait(even);
        p.hold_time_wait(even);
        assert_ne!(p.pick_ephemeral(7, |port| port == even), Some(even));
        p.release_time_wait(even);
        assert_eq!(p.time_waits(even), 1);
        p.release_time_wait(even);
        assert_eq!(p.pick_ephemeral(7, |port| port == even), Some(even));
    }
}
