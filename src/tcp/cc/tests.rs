//! The algorithms driven by synthetic ACK clocks in virtual time.

use super::hystart::Phase;
use super::*;
use std::time::Duration;

const MSS: usize = 1000;

/// A sender that keeps its window full on a path of round-trip time `rtt`
/// (which `rtt_of_round` may vary): every round, one ACK per segment of
/// the window, spread over the round.
struct Flow<C: CongestionControl> {
    cc: C,
    now: Instant,
    snd_max: u32,
    una: u32,
}

impl<C: CongestionControl> Flow<C> {
    fn new(cc: C) -> Flow<C> {
        Flow {
            cc,
            now: Instant::from_millis(1),
            snd_max: 0,
            una: 0,
        }
    }

    fn round(&mut self, rtt: Duration) {
        let segments = (self.cc.window() / MSS).max(1);
        let flight = segments * MSS;
        self.snd_max = self.una.wrapping_add(flight as u32);
        let step = rtt / segments as u32;
        for _ in 0..segments {
            self.now = self.now + step;
            self.una = self.una.wrapping_add(MSS as u32);
            let s = AckSample {
                now: self.now,
                acked: MSS,
                flight_before: flight,
                ack: self.una,
                snd_max: self.snd_max,
                rtt: Some(rtt),
                min_rtt: Some(Duration::from_millis(10).min(rtt)),
            };
            self.cc.on_ack(&s);
        }
    }

    fn segments(&self) -> usize {
        self.cc.window() / MSS
    }
}

#[test]
fn cubic_cuts_to_seven_tenths_and_regains_the_old_maximum_after_k_seconds() {
    // At 100 segments a loss: cwnd and ssthresh become 70 (β = 0.7), and
    // K = cbrt((100 - 70) / 0.4) ≈ 4.2 s until the curve reaches 100 again.
    let mut f = Flow::new(Cubic::new(MSS, 100 * MSS, 50 * MSS));
    f.cc.on_congestion(f.now, 100 * MSS);
    f.cc.on_recovery_end(f.now);
    assert_eq!(f.cc.window(), 70 * MSS);
    assert_eq!(f.cc.ssthresh(), 70 * MSS);
    let rtt = Duration::from_millis(100);
    let start = f.now;
    let mut at_1s = 0;
    let mut at_2s = 0;
    while f.now.saturating_since(start) < Duration::from_millis(4300) {
        f.round(rtt);
        let t = f.now.saturating_since(start);
        if at_1s == 0 && t >= Duration::from_secs(1) {
            at_1s = f.segments();
        }
        if at_2s == 0 && t >= Duration::from_secs(2) {
            at_2s = f.segments();
        }
    }
    let at_k = f.segments();
    assert!((97..=103).contains(&at_k), "cwnd at K: {at_k}");
    // Concave: the first second gains more than the second one.
    assert!(at_1s - 70 > at_2s - at_1s, "{at_1s} {at_2s}");
    // Past K the curve is convex: it probes ever faster.
    let mut prev = at_k;
    let mut gains = Vec::new();
    for _ in 0..3 {
        for _ in 0..10 {
            f.round(rtt);
        }
        gains.push(f.segments() - prev);
        prev = f.segments();
    }
    assert!(gains[0] < gains[1] && gains[1] < gains[2], "{gains:?}");
}

/// CUBIC and Reno flows right after the same loss at `segments`.
fn after_loss(segments: usize) -> (Flow<Cubic>, Flow<Reno>) {
    let w = segments * MSS;
    let mut cubic = Flow::new(Cubic::new(MSS, w, w / 2));
    let mut reno = Flow::new(Reno::new(MSS, w, w / 2));
    cubic.cc.on_congestion(cubic.now, w);
    cubic.cc.on_recovery_end(cubic.now);
    reno.cc.on_congestion(reno.now, w);
    reno.cc.on_recovery_end(reno.now);
    (cubic, reno)
}

#[test]
fn cubic_grows_faster_than_reno_towards_a_large_window() {
    // A long fat path (100 ms): after a loss at 1000 segments Reno needs
    // one round per segment; CUBIC is back near the old window in K ≈ 9 s.
    let (mut cubic, mut reno) = after_loss(1000);
    for _ in 0..100 {
        cubic.round(Duration::from_millis(100));
        reno.round(Duration::from_millis(100));
    }
    assert!(reno.segments() < 620, "reno {}", reno.segments());
    assert!(cubic.segments() > 950, "cubic {}", cubic.segments());
}

#[test]
fn cubic_follows_the_reno_friendly_estimate_on_a_short_path() {
    // RTT 1 ms, small window: the curve would take K ≈ 2 s to regain 10
    // segments, still below 8 after 0.2 s. The Reno-friendly region (RFC
    // 9438, 4.3) grows like Reno instead: α = 0.53 from 7 segments until
    // the old maximum, then one segment per round — neck and neck with
    // Reno (cut to 5, +1 per round: 205 after 200 rounds).
    let (mut cubic, mut reno) = after_loss(10);
    for _ in 0..200 {
        cubic.round(Duration::from_millis(1));
        reno.round(Duration::from_millis(1));
    }
    assert!(
        (190..=210).contains(&cubic.segments()),
        "cubic {}",
        cubic.segments()
    );
    assert!(reno.segments().abs_diff(cubic.segments()) < 10);
}

#[test]
fn cubic_fast_convergence_lowers_the_maximum_after_a_second_loss_below_it() {
    let mut c = Cubic::new(MSS, 100 * MSS, 50 * MSS);
    let now = Instant::from_millis(1);
    c.on_congestion(now, 100 * MSS);
    c.on_recovery_end(now);
    // A second loss at 70 (below W_max = 100): W_max = 70 · 1.7 / 2 = 59.5,
    // so the curve plateaus below the old level, leaving room to others.
    c.on_congestion(now, 70 * MSS);
    assert_eq!(c.window(), 49 * MSS);
    let mut f = Flow::new(c);
    f.now = now;
    f.cc.on_recovery_end(f.now);
    for _ in 0..12 {
        f.round(Duration::from_millis(100));
    }
    // K = cbrt((59.5 - 49) / 0.4) ≈ 3 s; at 1.2 s it is close under 59.5.
    assert!((55..=60).contains(&f.segments()), "{}", f.segments());
}

#[test]
fn cubic_timeout_goes_to_one_segment_and_slow_starts_to_the_new_threshold() {
    let mut f = Flow::new(Cubic::new(MSS, 40 * MSS, usize::MAX));
    f.cc.on_timeout(f.now, 40 * MSS);
    assert_eq!(f.cc.window(), MSS);
    assert_eq!(f.cc.ssthresh(), 28 * MSS);
    for _ in 0..5 {
        f.round(Duration::from_millis(10));
    }
    assert_eq!(f.segments(), 28);
}

#[test]
fn hystart_leaves_slow_start_when_the_round_trip_time_climbs() {
    // The first rounds at 20 ms; then a queue builds and every round is
    // 10 ms slower. HyStart++ goes to conservative slow start, then to
    // congestion avoidance, with no loss at all.
    let mut f = Flow::new(Cubic::new(MSS, 10 * MSS, usize::MAX));
    let mut rtt = Duration::from_millis(20);
    let mut rounds = 0;
    while f.cc.ssthresh() == usize::MAX {
        f.round(rtt);
        rounds += 1;
        if rounds >= 3 {
            rtt += Duration::from_millis(10);
        }
        assert!(
            rounds < 20,
            "still in slow start at {} segments",
            f.segments()
        );
    }
    // Without HyStart++ the window would have doubled every round: 10·2^n.
    assert!(
        f.segments() < 10 << rounds,
        "{} after {rounds}",
        f.segments()
    );
    assert_eq!(f.cc.window(), f.cc.ssthresh());
}

#[test]
fn hystart_keeps_slow_start_on_a_steady_path_and_resumes_after_a_blip() {
    let mut h = HyStart::default();
    let mut una = 0u32;
    let mut now = Instant::ZERO;
    let mut round = |h: &mut HyStart, rtt_ms: u64| {
        let snd_max = una.wrapping_add(20_000);
        let mut phase = Phase::SlowStart;
        for _ in 0..20 {
            una = una.wrapping_add(1000);
            now = now + Duration::from_millis(1);
            phase = h.on_ack(&AckSample {
                now,
                acked: 1000,
                flight_before: 20_000,
                ack: una,
                snd_max,
                rtt: Some(Duration::from_millis(rtt_ms)),
                min_rtt: None,
            });
        }
        phase
    };
    for _ in 0..10 {
        assert_eq!(round(&mut h, 20), Phase::SlowStart);
    }
    // One slow round (+8 ms ≥ the 4 ms threshold): conservative…
    assert_eq!(round(&mut h, 28), Phase::Conservative);
    // …and a round back at the old RTT returns to slow start.
    assert_eq!(round(&mut h, 20), Phase::SlowStart);
}

#[test]
fn names_are_linux_names() {
    assert_eq!(Algorithm::from_name("cubic"), Some(Algorithm::Cubic));
    assert_eq!(Algorithm::from_name("reno"), Some(Algorithm::Reno));
    assert_eq!(Algorithm::from_name("bbr"), None);
    assert_eq!(Algorithm::default().name(), "cubic");
    let c = Controller::new(Algorithm::Reno, MSS, 10 * MSS, usize::MAX);
    assert_eq!(c.name(), "reno");
}
