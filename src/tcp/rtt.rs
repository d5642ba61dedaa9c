//! Round-trip time estimation and the retransmission timeout (RFC 6298).

use std::time::Duration;

/// Smoothed RTT, its variation, and the RTO derived from them.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    backoff: u32,
    /// The smallest sample, for congestion control (CUBIC's RTT, HyStart++).
    min_rtt: Option<Duration>,
}

/// Clock granularity G of RFC 6298: our clock counts microseconds, but
/// deadlines are served by a poll(2) with millisecond resolution.
const GRANULARITY: Duration = Duration::from_millis(1);

impl RttEstimator {
    /// Before any sample the RTO is `initial` (1 s per RFC 6298, 2.1).
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial.clamp(min_rto, max_rto),
            min_rto,
            max_rto,
            backoff: 0,
            min_rtt: None,
        }
    }

    /// Takes one measurement (RFC 6298, 2.2 and 2.3) and clears any backoff.
    pub fn sample(&mut self, r: Duration) {
        self.min_rtt = Some(self.min_rtt.map_or(r, |m| m.min(r)));
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.rto = (srtt + (self.rttvar * 4).max(GRANULARITY)).clamp(self.min_rto, self.max_rto);
        self.backoff = 0;
    }

    /// The current timeout, with exponential backoff applied.
    pub fn rto(&self) -> Duration {
        let factor = 1u32.checked_shl(self.backoff).unwrap_or(u32::MAX);
        self.rto.saturating_mul(factor).min(self.max_rto)
    }

    /// Doubles the timeout after an expiry (RFC 6298, 5.5).
    pub fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(31);
    }

    /// The smoothed RTT, if any sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The smallest RTT measured, if any.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// The RTT variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_sample_and_smoothing() {
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(120_000));
        assert_eq!(e.rto(), ms(1000));
        e.sample(ms(100));
        // RTO = 100 + 4 * 50
        assert_eq!(e.rto(), ms(300));
        e.sample(ms(100));
        // rttvar = 3/4 * 50 = 37.5, srtt = 100: RTO = 250
        assert_eq!(e.rto(), ms(250));
        e.back_off();
        e.back_off();
        assert_eq!(e.rto(), ms(1000));
        e.sample(ms(10));
        assert!(e.rto() >= ms(200));
    }

    #[test]
    fn backoff_is_capped() {
        let mut e = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        for _ in 0..40 {
            e.back_off();
        }
        assert_eq!(e.rto(), ms(60_000));
    }
}
