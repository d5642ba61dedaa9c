//! The loss matrix: two stacks over the in-memory link, 100 MB each way at
//! once, under loss (0.1, 1, 5, 10 %), reordering, duplication, corruption
//! (0.1 %) and all of them together. Each direction crosses one fault stage
//! (A's end of the link; B's end is clean), with 5 ms of delay each way, in
//! virtual time.
//!
//! Asserted: every byte arrives, in order (checked at the receiver and by a
//! hash of both sides), and the connection closes in order afterwards.
//! Printed (`--nocapture`), one line a case: virtual time, real time, each
//! sender's retransmissions and timeouts, and the faults injected. Timing is
//! never asserted.
//!
//! The cases marked "gso" send with segmentation offload: packets of up
//! to 64 KiB that the link cuts into segments in software before the
//! faults, as a wire would carry them.
//!
//! The cases are independent and run on a thread each, as many at once as
//! there are cores. `LOSS_MATRIX_MB` sets the size each way (default 100).

mod sim;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rstcp::link::faults::FaultStats;
use rstcp::link::FaultConfig;
use rstcp::tcp::TcbStats;
use sim::{Flow, Sim};

/// Name, faults (5 ms of delay is added to each), and whether B sends too.
const CASES: &[(&str, &str, bool)] = &[
    ("loss1%", "loss=0.01,seed=11", true),
    ("loss5%", "loss=0.05,seed=12", true),
    ("loss10%", "loss=0.10,seed=13", true),
    ("reorder3%", "reorder=0.03,seed=14", true),
    ("dup3%", "dup=0.03,seed=15", true),
    ("corrupt0.1%", "corrupt=0.001,seed=16", true),
    (
        "mix",
        "loss=0.02,reorder=0.02,dup=0.01,corrupt=0.001,jitter=1ms,seed=17",
        true,
    ),
    // These two differ only in whether data flows both ways, so that every
    // ACK rides on a data segment: compare their timeouts.
    ("loss0.1%", "loss=0.001,seed=3", true),
    ("loss0.1%-one-way", "loss=0.001,seed=3", false),
    ("loss1%-gso", "loss=0.01,seed=11", true),
    (
        "mix-gso",
        "loss=0.02,reorder=0.02,dup=0.01,corrupt=0.001,jitter=1ms,seed=17",
        true,
    ),
];

fn megabytes() -> usize {
    std::env::var("LOSS_MATRIX_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// What one case measured.
struct Outcome {
    name: &'static str,
    megabytes: usize,
    both_ways: bool,
    virtual_time: Duration,
    real_time: Duration,
    a: TcbStats,
    b: TcbStats,
    injected: FaultStats,
}

/// One sender's recovery, as the stack counted it.
struct Sender<'a>(&'a TcbStats);

impl fmt::Display for Sender<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(
            f,
            "retransmitted {} of {} segs, ",
            s.retransmitted_segments, s.segments_sent
        )?;
        write!(f, "{} timeouts, {} fast", s.timeouts, s.fast_retransmits)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let way = if self.both_ways {
            "each way"
        } else {
            "A->B only"
        };
        write!(
            f,
            "loss_matrix: {}: {} MB {way}: ",
            self.name, self.megabytes
        )?;
        write!(f, "virtual {:.2} s, ", self.virtual_time.as_secs_f64())?;
        write!(f, "real {:.2} s; ", self.real_time.as_secs_f64())?;
        write!(f, "A->B: {}; B->A: {}; ", Sender(&self.a), Sender(&self.b))?;
        let i = &self.injected;
        write!(f, "injected: lost {}, dup {}, ", i.lost, i.duplicated)?;
        write!(f, "reordered {}, corrupted {}", i.reordered, i.corrupted)
    }
}

/// Sends `megabytes()` from A to B and, if `both_ways`, as much from B to
/// A at the same time, through `faults` (plus 5 ms of delay each way).
fn run_case(name: &'static str, faults: &str, both_ways: bool) -> Outcome {
    let mb = megabytes();
    let bytes = mb << 20;
    let faults = FaultConfig::parse(&format!("{faults},delay=5ms")).unwrap();
    let started = std::time::Instant::now();
    let tcp = rstcp::tcp::Config {
        gso_max: if name.ends_with("-gso") { 65535 } else { 0 },
        ..rstcp::tcp::Config::default()
    };
    let mut sim = Sim::with_tcp(faults, FaultConfig::default(), tcp);
    let (c, s) = sim.connect(5001);
    let t0 = sim.now;
    let mut up = Flow::new(bytes, 1);
    let mut down = Flow::new(if both_ways { bytes } else { 0 }, 2);
    // Generous: 10 % loss at a 10 ms round trip moves a few hundred kB/s.
    sim.run_until(Duration::from_secs(4 * 3600), |sim| {
        let now = sim.now;
        up.pump(now, &mut sim.a, c, &mut sim.b, s);
        down.pump(now, &mut sim.b, s, &mut sim.a, c);
        up.done() && down.done()
    });
    let outcome = Outcome {
        name,
        megabytes: mb,
        both_ways,
        virtual_time: sim.now - t0,
        real_time: started.elapsed(),
        a: sim.a.tcb(c).unwrap().stats(),
        b: sim.b.tcb(s).unwrap().stats(),
        injected: sim.la.stats(),
    };
    assert_eq!(up.sent_hash.finish(), up.received_hash.finish(), "A->B");
    assert_eq!(down.sent_hash.finish(), down.received_hash.finish(), "B->A");
    sim.close_from_a(c, s);
    outcome
}

#[test]
fn loss_matrix() {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(CASES.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(name, faults, both_ways)) = CASES.get(i) else {
                    break;
                };
                let result = std::panic::catch_unwind(|| run_case(name, faults, both_ways));
                if let Ok(outcome) = &result {
                    eprintln!("{outcome}");
                }
                results.lock().unwrap().push((i, result.is_ok()));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_unstable();
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|&(i, _)| CASES[i].0)
        .collect();
    assert!(failed.is_empty(), "cases failed: {failed:?}");
    assert_eq!(results.len(), CASES.len());
}
