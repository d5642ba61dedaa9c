//! Congestion-control algorithms: how the congestion window grows with
//! acknowledgements and shrinks on loss. Loss *detection* and recovery
//! (which segments to resend, when recovery starts and ends) live in
//! `tcp/congestion.rs`; an algorithm only answers "how big may the window
//! be now". Chosen per socket with TCP_CONGESTION.

mod cubic;
mod hystart;
mod reno;

pub use cubic::Cubic;
pub use hystart::HyStart;
pub use reno::Reno;

use crate::time::Instant;
use std::time::Duration;

/// What an acknowledgement of new data tells the algorithm.
#[derive(Clone, Copy, Debug)]
pub struct AckSample {
    /// When the ACK arrived.
    pub now: Instant,
    /// Bytes newly acknowledged.
    pub acked: usize,
    /// Bytes outstanding before this ACK.
    pub flight_before: usize,
    /// The ACK number (the new SND.UNA).
    pub ack: u32,
    /// The highest sequence number sent so far (ends a slow-start round).
    pub snd_max: u32,
    /// The round-trip time this ACK measured, if it measured one.
    pub rtt: Option<Duration>,
    /// The smallest round-trip time seen on the connection.
    pub min_rtt: Option<Duration>,
}

/// A congestion-control algorithm (RFC 5681's window, RFC 9438's CUBIC…).
/// Windows are in bytes.
pub trait CongestionControl {
    /// The name TCP_CONGESTION reads and writes ("reno", "cubic").
    fn name(&self) -> &'static str;
    /// The congestion window.
    fn window(&self) -> usize;
    /// The slow-start threshold (`usize::MAX` before the first loss).
    fn ssthresh(&self) -> usize;
    /// The segment size changed (after the handshake, or PMTU).
    fn set_mss(&mut self, mss: usize);
    /// Sets the window outright (the initial window, the loss window, the
    /// restart window after idle).
    fn set_window(&mut self, cwnd: usize);
    /// New data was acknowledged outside loss recovery.
    fn on_ack(&mut self, s: &AckSample);
    /// A loss was detected (fast retransmit): the multiplicative decrease.
    /// Sets ssthresh, and cwnd to the window to recover with.
    fn on_congestion(&mut self, now: Instant, flight: usize);
    /// Recovery ended: the window to go on with.
    fn on_recovery_end(&mut self, now: Instant);
    /// The retransmission timer expired: ssthresh as for a loss, cwnd to
    /// one segment (RFC 5681, 3.1).
    fn on_timeout(&mut self, now: Instant, flight: usize);
}

/// The algorithms there are, as TCP_CONGESTION names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// NewReno window growth (RFC 5681).
    Reno,
    /// CUBIC (RFC 9438) with HyStart++ (RFC 9406) in slow start.
    #[default]
    Cubic,
}

impl Algorithm {
    /// The algorithm TCP_CONGESTION calls `name` (Linux's names).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "reno" => Some(Algorithm::Reno),
            "cubic" => Some(Algorithm::Cubic),
            _ => None,
        }
    }

    /// Its TCP_CONGESTION name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Reno => "reno",
            Algorithm::Cubic => "cubic",
        }
    }
}

/// One connection's algorithm. An enum rather than a boxed trait object:
/// no allocation per connection, and the window is read on every send.
#[derive(Clone, Debug)]
pub enum Controller {
    /// NewReno.
    Reno(Reno),
    /// CUBIC.
    Cubic(Cubic),
}

impl Controller {
    /// A fresh controller of `alg` with `cwnd` and `ssthresh`.
    pub fn new(alg: Algorithm, mss: usize, cwnd: usize, ssthresh: usize) -> Controller {
        match alg {
            Algorithm::Reno => Controller::Reno(Reno::new(mss, cwnd, ssthresh)),
            Algorithm::Cubic => Controller::Cubic(Cubic::new(mss, cwnd, ssthresh)),
        }
    }

    /// Which algorithm this is.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Controller::Reno(_) => Algorithm::Reno,
            Controller::Cubic(_) => Algorithm::Cubic,
        }
    }

    fn inner(&self) -> &dyn CongestionControl {
        match self {
            Controller::Reno(c) => c,
            Controller::Cubic(c) => c,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn CongestionControl {
        match self {
            Controller::Reno(c) => c,
            Controller::Cubic(c) => c,
        }
    }
}

impl CongestionControl for Controller {
    fn name(&self) -> &'static str {
        self.inner().name()
    }
    fn window(&self) -> usize {
        self.inner().window()
    }
    fn ssthresh(&self) -> usize {
        self.inner().ssthresh()
    }
    fn set_mss(&mut self, mss: usize) {
        self.inner_mut().set_mss(mss)
    }
    fn set_window(&mut self, cwnd: usize) {
        self.inner_mut().set_window(cwnd)
    }
    fn on_ack(&mut self, s: &AckSample) {
        self.inner_mut().on_ack(s)
    }
    fn on_congestion(&mut self, now: Instant, flight: usize) {
        self.inner_mut().on_congestion(now, flight)
    }
    fn on_recovery_end(&mut self, now: Instant) {
        self.inner_mut().on_recovery_end(now)
    }
    fn on_timeout(&mut self, now: Instant, flight: usize) {
        self.inner_mut().on_timeout(now, flight)
    }
}

/// True when the window was in use: only then does an ACK say the path can
/// take more (RFC 7661's spirit; an application-limited sender would
/// otherwise grow a window it never tried).
pub(crate) fn window_in_use(s: &AckSample, cwnd: usize, mss: usize) -> bool {
    s.flight_before + mss >= cwnd / 2
}

#[cfg(test)]
mod tests;
