//! Initial sequence numbers per RFC 6528: a clock plus a keyed hash of the
//! connection's addresses, so that ISNs are hard to guess off-path yet a new
//! incarnation of the same 4-tuple starts above the old one.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddrV4;

use crate::time::Instant;

/// Makes ISNs; holds the secret key.
#[derive(Clone, Debug)]
pub struct IsnGenerator {
    key: RandomState,
}

impl Default for IsnGenerator {
    fn default() -> Self {
        IsnGenerator::new()
    }
}

impl IsnGenerator {
    /// A generator with a fresh random key (std's SipHash keys come from the OS).
    pub fn new() -> IsnGenerator {
        IsnGenerator {
            key: RandomState::new(),
        }
    }

    /// ISN = M + F(local, remote, key), M ticking every 4 microseconds.
    pub fn isn(&self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        let mut h = self.key.build_hasher();
        local.hash(&mut h);
        remote.hash(&mut h);
        let f = h.finish() as u32;
        f.wrapping_add((now.micros() / 4) as u32)
    }

    /// A keyed hash for other secrets of the stack (ephemeral port choice).
    pub fn hash64(&self, data: &[u8]) -> u64 {
        self.key.hash_one(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differs_per_tuple_and_grows_with_time() {
        let g = IsnGenerator::new();
        let a: SocketAddrV4 = "10.0.0.1:1000".parse().unwrap();
        let b: SocketAddrV4 = "10.0.0.2:80".parse().unwrap();
        let c: SocketAddrV4 = "10.0.0.2:81".parse().unwrap();
        let t0 = Instant::from_millis(5);
        assert_ne!(g.isn(t0, a, b), g.isn(t0, a, c));
        let later = t0 + std::time::Duration::from_micros(400);
        assert_eq!(g.isn(later, a, b).wrapping_sub(g.isn(t0, a, b)), 100);
        let other = IsnGenerator::new();
        assert_ne!(g.isn(t0, a, b), other.isn(t0, a, b));
    }
}
