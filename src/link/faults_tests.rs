use super::*;
use crate::link::{Pair, PairEnd};

const MS: u64 = 1000;

fn at_ms(ms: u64) -> Instant {
    Instant::from_micros(ms * MS)
}

/// A faulty sender `a` wired to a clean receiver `b`.
fn faulty_pair(config: FaultConfig) -> (Faulty<PairEnd>, PairEnd) {
    let (a, b) = Pair::new(1500);
    (Faulty::new(a, config), b)
}

fn drain(link: &mut impl Link, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(n) = link.recv(now, &mut buf).unwrap() {
        out.push(buf[..n].to_vec());
    }
    out
}

fn numbered(i: u32) -> [u8; 4] {
    i.to_be_bytes()
}

#[test]
fn no_faults_is_transparent() {
    let (mut a, mut b) = faulty_pair(FaultConfig::default());
    for i in 0..100 {
        a.send(Instant::ZERO, &numbered(i)).unwrap();
    }
    let got = drain(&mut b, Instant::ZERO);
    let want: Vec<Vec<u8>> = (0..100).map(|i| numbered(i).to_vec()).collect();
    assert_eq!(got, want);
    assert_eq!(a.next_release(), None);
}

#[test]
fn loss_rate_is_roughly_as_configured() {
    let config = FaultConfig {
        loss: 0.1,
        seed: 7,
        ..FaultConfig::default()
    };
    let (mut a, mut b) = faulty_pair(config);
    let mut received = 0;
    for i in 0..10_000 {
        a.send(Instant::ZERO, &numbered(i)).unwrap();
        received += drain(&mut b, Instant::ZERO).len();
    }
    assert!((8_700..=9_300).contains(&received), "received {received}");
    assert_eq!(a.stats().lost, 10_000 - received as u64);
}

#[test]
fn loss_applies_on_receive_too_and_is_repeatable() {
    let run = || {
        let (mut a, b) = Pair::new(1500);
        let config = FaultConfig {
            loss: 0.5,
            seed: 42,
            ..FaultConfig::default()
        };
        let mut b = Faulty::new(b, config);
        for i in 0..1000 {
            a.send(Instant::ZERO, &numbered(i)).unwrap();
        }
        drain(&mut b, Instant::ZERO)
    };
    let first = run();
    assert!((400..=600).contains(&first.len()), "{}", first.len());
    assert_eq!(first, run(), "same seed, same faults");
}

#[test]
fn duplicates_arrive_twice() {
    let config = FaultConfig {
        duplicate: 1.0,
        ..FaultConfig::default()
    };
    let (mut a, mut b) = faulty_pair(config);
    a.send(Instant::ZERO, b"hello").unwrap();
    a.send(Instant::ZERO, b"world").unwrap();
    let got = drain(&mut b, Instant::ZERO);
    assert_eq!(
        got,
        vec![
            b"hello".to_vec(),
            b"hello".to_vec(),
            b"world".to_vec(),
            b"world".to_vec()
        ]
    );

    let config = FaultConfig {
        duplicate: 0.3,
        seed: 3,
        ..FaultConfig::default()
    };
    let (mut a, mut b) = faulty_pair(config);
    let mut received = 0;
    for i in 0..10_000 {
        a.send(Instant::ZERO, &numbered(i)).unwrap();
        received += drain(&mut b, Instant::ZERO).len();
    }
    assert!((12_700..=13_300).contains(&received), "received {received}");
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let config = FaultConfig {
        corrupt: 1.0,
        seed: 11,
        ..FaultConfig::default()
    };
    let (a, mut b) = Pair::new(1500);
    let mut a = Faulty::new(a, config);
    let original: Vec<u8> = (0..200u8).collect();
    for _ in 0..500 {
        a.send(Instant::ZERO, &original).unwrap();
        let got = drain(&mut b, Instant::ZERO);
        assert_eq!(got.len(), 1);
        let flipped: u32 = got[0]
            .iter()
            .zip(&original)
            .map(|(x, y)| (x ^ y).count_ones())
            .sum();
        assert_eq!(flipped, 1);
    }
    // An empty packet has no bit to flip and passes unchanged.
    a.send(Instant::ZERO, &[]).unwrap();
    assert_eq!(drain(&mut b, Instant::ZERO), vec![Vec::<u8>::new()]);
}

#[test]
fn delayed_sends_wait_for_their_release_time() {
    let config = FaultConfig {
        delay: Duration::from_millis(10),
        ..FaultConfig::default()
    };
    let (mut a, mut b) = faulty_pair(config);
    let mut buf = [0u8; 64];
    a.send(at_ms(0), b"first").unwrap();
    a.send(at_ms(3), b"second").unwrap();
    assert_eq!(a.next_release(), Some(at_ms(10)));
    assert_eq!(a.recv(Instant::from_micros(9_999), &mut buf).unwrap(), None);
    assert!(drain(&mut b, at_ms(10)).is_empty(), "not flushed yet");
    // The runtime wakes at next_release and calls recv, which flushes.
    assert_eq!(a.recv(at_ms(10), &mut buf).unwrap(), None);
    assert_eq!(drain(&mut b, at_ms(10)), vec![b"first".to_vec()]);
    assert_eq!(a.next_release(), Some(at_ms(13)));
    // A later send flushes too.
    a.send(at_ms(20), b"third").unwrap();
    assert_eq!(drain(&mut b, at_ms(20)), vec![b"second".to_vec()]);
    assert_eq!(a.next_release(), Some(at_ms(30)));
}

#[test]
fn delayed_receives_wait_for_their_release_time() {
    let config = FaultConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(2),
        seed: 5,
        ..FaultConfig::default()
    };
    let (mut a, b) = Pair::new(1500);
    let mut b = Faulty::new(b, config);
    let mut buf = [0u8; 64];
    a.send(at_ms(0), b"late").unwrap();
    assert_eq!(b.next_release(), None, "nothing read from the wire yet");
    assert_eq!(b.recv(at_ms(0), &mut buf).unwrap(), None);
    let release = b.next_release().expect("held packet");
    assert!(release >= at_ms(10) && release <= at_ms(12), "{release:?}");
    assert_eq!(
        b.recv(Instant::from_micros(release.micros() - 1), &mut buf)
            .unwrap(),
        None
    );
    assert_eq!(b.recv(release, &mut buf).unwrap(), Some(4));
    assert_eq!(&buf[..4], b"late");
    assert_eq!(b.next_release(), None);
}

#[test]
fn jitter_stays_within_bounds() {
    let config = FaultConfig {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(2),
        seed: 9,
        ..FaultConfig::default()
    };
    let (a, _b) = Pair::new(1500);
    let mut a = Faulty::new(a, config);
    let mut releases = Vec::new();
    for _ in 0..1000 {
        a.send(at_ms(0), b"x").unwrap();
    }
    while let Some(t) = a.next_release() {
        releases.push(t);
        a.recv(t, &mut [0u8; 8]).unwrap();
    }
    assert_eq!(
        releases.first().copied().map(|t| t >= at_ms(10)),
        Some(true)
    );
    assert_eq!(releases.last().copied().map(|t| t <= at_ms(12)), Some(true));
    assert!(releases.len() > 100, "jitter should spread release times");
}

#[test]
fn reorder_swaps_with_the_next_packet() {
    let config = FaultConfig {
        reorder: 1.0,
        ..FaultConfig::default()
    };
    let (mut a, mut b) = faulty_pair(config);
    for i in 1..=4 {
        a.send(Instant::ZERO, &numbered(i)).unwrap();
    }
    let got: Vec<Vec<u8>> = drain(&mut b, Instant::ZERO);
    let want: Vec<Vec<u8>> = [2, 1, 4, 3].iter().map(|&i| numbered(i).to_vec()).collect();
    assert_eq!(got, want);
}

#[test]
fn a_lone_reordered_packet_is_released_after_the_max_hold() {
    let config = FaultConfig {
        reorder: 1.0,
        ..FaultConfig::default()
    };
    let (mut a, b) = Pair::new(1500);
    let mut b = Faulty::new(b, config);
    let mut buf = [0u8; 64];
    a.send(at_ms(1), b"alone").unwrap();
    assert_eq!(b.recv(at_ms(1), &mut buf).unwrap(), None);
    assert_eq!(b.next_release(), Some(at_ms(1) + REORDER_MAX_HOLD));
    assert_eq!(b.recv(at_ms(2), &mut buf).unwrap(), None);
    assert_eq!(b.recv(at_ms(6), &mut buf).unwrap(), Some(5));
    assert_eq!(b.next_release(), None);
}

#[test]
fn works_through_a_boxed_link() {
    let (a, mut b) = Pair::new(1500);
    let boxed: Box<dyn Link> = Box::new(a);
    let config = FaultConfig {
        delay: Duration::from_millis(1),
        ..FaultConfig::default()
    };
    let mut a: Box<dyn Link> = Box::new(Faulty::new(boxed, config));
    a.send(at_ms(0), b"boxed").unwrap();
    assert_eq!(a.next_release(), Some(at_ms(1)));
    assert_eq!(a.mtu(), 1500);
    assert!(a.readable_fd().is_some());
    a.recv(at_ms(1), &mut [0u8; 8]).unwrap();
    assert_eq!(drain(&mut b, at_ms(1)), vec![b"boxed".to_vec()]);
}

#[test]
fn parse_accepts_the_documented_syntax() {
    let c = FaultConfig::parse(
        "loss=0.02,dup=0.01,reorder=0.05,corrupt=0.01,delay=10ms,jitter=2ms,seed=7",
    )
    .unwrap();
    assert_eq!(
        c,
        FaultConfig {
            loss: 0.02,
            duplicate: 0.01,
            reorder: 0.05,
            corrupt: 0.01,
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(2),
            seed: 7,
        }
    );
    assert!(c.is_active());
    assert_eq!(FaultConfig::parse(&c.to_string()).unwrap(), c);
    assert_eq!(FaultConfig::parse("").unwrap(), FaultConfig::default());
    assert!(!FaultConfig::parse("seed=3").unwrap().is_active());
    let c = FaultConfig::parse(" delay = 1s , jitter=250us, duplicate=1 ,").unwrap();
    assert_eq!(c.delay, Duration::from_secs(1));
    assert_eq!(c.jitter, Duration::from_micros(250));
    assert_eq!(c.duplicate, 1.0);
    assert_eq!(FaultConfig::parse("delay=0").unwrap().delay, Duration::ZERO);
}

#[test]
fn parse_errors_name_the_problem() {
    let cases = [
        ("loss", "not of the form key=value"),
        ("speed=3", "unknown fault `speed`"),
        ("loss=high", "loss=high: not a number"),
        ("loss=1.5", "between 0 and 1"),
        ("dup=-0.1", "between 0 and 1"),
        ("corrupt=NaN", "between 0 and 1"),
        ("delay=10", "expected a duration"),
        ("delay=10min", "expected a duration"),
        ("jitter=-1ms", "expected a duration"),
        ("delay=ms", "expected a duration"),
        ("seed=-1", "seed=-1: not an unsigned integer"),
    ];
    for (input, expected) in cases {
        let err = FaultConfig::parse(input).unwrap_err();
        assert!(err.contains(expected), "{input:?} gave {err:?}");
    }
}
