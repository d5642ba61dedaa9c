//! The stack's deadlines in a hierarchical timing wheel: O(1) to add one,
//! O(1) amortised to hand out the due ones, however many connections wait.
//!
//! Six levels of 64 slots. A slot of level 0 holds the deadlines of one
//! millisecond; a slot of level `L` covers 64^L milliseconds. A deadline goes
//! in the level of the highest 6-bit group in which its millisecond differs
//! from the wheel's current one, so every entry of a level is later than
//! every entry of the levels below: the earliest deadline is in the first
//! occupied slot of the lowest occupied level, found with one bit scan per
//! level. When time reaches a slot of a higher level, its entries move down
//! (cascade). Entries keep their exact `Instant`: one that is not due when
//! its slot is reached is put back, so nothing fires early.
//!
//! Level 0 also keeps each slot's earliest deadline, so the next deadline
//! is exact when it is less than 64 ms away; further out it is the start of
//! its slot (a wake-up that only cascades).
//!
//! Deadlines beyond the top level's reach (2^36 ms, 2.2 years) wait in an
//! overflow list that is looked at again once per turn of the top level.

use crate::time::Instant;

const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
const LEVELS: usize = 6;
/// Microseconds per tick of level 0.
const TICK_US: u64 = 1000;

fn tick_of(t: Instant) -> u64 {
    t.micros() / TICK_US
}

/// Deadlines, each with a value (the stack's: a socket).
#[derive(Debug)]
pub struct TimerWheel<T> {
    /// The tick the wheel stands at: every entry of an earlier tick was
    /// handed out.
    current: u64,
    /// `slots[level * SLOTS + slot]`.
    slots: Vec<Vec<(Instant, T)>>,
    /// Which slots of each level hold entries.
    occupied: [u64; LEVELS],
    /// The earliest deadline in each slot of level 0.
    earliest: [Option<Instant>; SLOTS],
    /// Entries too far out for the top level.
    overflow: Vec<(Instant, T)>,
    len: usize,
}

impl<T: Copy> Default for TimerWheel<T> {
    fn default() -> Self {
        TimerWheel::new()
    }
}

impl<T: Copy> TimerWheel<T> {
    /// An empty wheel at time zero.
    pub fn new() -> TimerWheel<T> {
        TimerWheel {
            current: 0,
            slots: (0..SLOTS * LEVELS).map(|_| Vec::new()).collect(),
            occupied: [0; LEVELS],
            earliest: [None; SLOTS],
            overflow: Vec::new(),
            len: 0,
        }
    }

    /// How many entries are queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `value` for `at` (a moment already past is due at once).
    pub fn insert(&mut self, at: Instant, value: T) {
        self.len += 1;
        self.place(at, value);
    }

    fn place(&mut self, at: Instant, value: T) {
        let tick = tick_of(at).max(self.current);
        // The highest 6-bit group in which `tick` differs from now.
        let differs = (tick ^ self.current) | (SLOTS as u64 - 1);
        let level = ((63 - differs.leading_zeros()) / BITS) as usize;
        if level >= LEVELS {
            self.overflow.push((at, value));
            return;
        }
        let slot = ((tick >> (BITS * level as u32)) & (SLOTS as u64 - 1)) as usize;
        self.slots[level * SLOTS + slot].push((at, value));
        self.occupied[level] |= 1 << slot;
        if level == 0 {
            let e = &mut self.earliest[slot];
            *e = Some(e.map_or(at, |e| e.min(at)));
        }
    }

    /// The next slot to visit: (level, slot, its first tick); the overflow
    /// list is level `LEVELS`, visited when the top level's turn ends.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        let wheel = (0..LEVELS).find_map(|level| {
            let occupied = self.occupied[level];
            if occupied == 0 {
                return None;
            }
            let shift = BITS * level as u32;
            let now = ((self.current >> shift) & (SLOTS as u64 - 1)) as u32;
            let slot = (now + occupied.rotate_right(now).trailing_zeros()) as usize % SLOTS;
            // The start of this level's current turn, then of the slot (in
            // the next turn when it lies behind).
            let turn = 1u64 << (shift + BITS);
            let mut start = (self.current & !(turn - 1)) + ((slot as u64) << shift);
            if (slot as u32) < now {
                start += turn;
            }
            Some((level, slot, start.max(self.current)))
        });
        if wheel.is_some() || self.overflow.is_empty() {
            return wheel;
        }
        let reach = 1u64 << (BITS * LEVELS as u32);
        Some((LEVELS, 0, (self.current | (reach - 1)) + 1))
    }

    /// The earliest moment `expire` may hand something out: exact within
    /// 64 ms, else the start of the slot to cascade then.
    pub fn next_deadline(&self) -> Option<Instant> {
        let (level, slot, start) = self.next_slot()?;
        if level == 0 {
            return self.earliest[slot];
        }
        Some(Instant::from_micros(start * TICK_US))
    }

    /// Moves every entry due at `now` into `out` (in no particular order).
    pub fn expire(&mut self, now: Instant, out: &mut Vec<(Instant, T)>) {
        let target = tick_of(now);
        while let Some((level, slot, start)) = self.next_slot() {
            if start > target {
                break;
            }
            self.current = start;
            if level == LEVELS {
                for (at, value) in std::mem::take(&mut self.overflow) {
                    self.place(at, value);
                }
                continue;
            }
            let index = level * SLOTS + slot;
            let mut entries = std::mem::take(&mut self.slots[index]);
            self.occupied[level] &= !(1 << slot);
            if level == 0 {
                self.earliest[slot] = None;
            }
            for (at, value) in entries.drain(..) {
                if at <= now {
                    self.len -= 1;
                    out.push((at, value));
                } else {
                    self.place(at, value);
                }
            }
            // Keep the slot's storage for the next time it fills.
            if self.slots[index].is_empty() {
                self.slots[index] = entries;
            }
            if level == 0 && start == target {
                // What stays here is due later within this millisecond.
                break;
            }
        }
        self.current = self.current.max(target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::faults::SplitMix64;

    #[test]
    fn hands_out_each_deadline_once_never_early_and_at_the_first_chance() {
        for seed in 1..=30u64 {
            let mut r = SplitMix64(seed);
            let mut wheel = TimerWheel::new();
            let mut pending: Vec<(Instant, u32)> = Vec::new();
            let mut now = Instant::from_micros(r.next_u64() % 1_000_000_000);
            let mut out = Vec::new();
            for id in 0..3000u32 {
                // Spans from microseconds to days, some already past.
                let spans = [
                    1_000,
                    70_000,
                    5_000_000,
                    300_000_000,
                    100_000_000_000,
                    1 << 50,
                ];
                let span = spans[id as usize % 6];
                let at =
                    Instant::from_micros((now.micros() + r.next_u64() % span).saturating_sub(500));
                wheel.insert(at, id);
                pending.push((at, id));
                if r.below(4) == 0 {
                    // Jump to the next deadline the wheel names, or a bit on.
                    let next = wheel.next_deadline().unwrap();
                    let truth = pending.iter().map(|p| p.0).min().unwrap();
                    assert!(
                        next <= truth.max(now),
                        "seed {seed}: {next:?} after {truth:?}"
                    );
                    now = if r.below(2) == 0 {
                        next.max(now)
                    } else {
                        Instant::from_micros(now.micros() + r.next_u64() % 200_000)
                    };
                    out.clear();
                    wheel.expire(now, &mut out);
                    let mut due: Vec<_> = pending.iter().copied().filter(|p| p.0 <= now).collect();
                    pending.retain(|p| p.0 > now);
                    out.sort_by_key(|e| e.1);
                    due.sort_by_key(|e| e.1);
                    assert_eq!(out, due, "seed {seed} at {now:?}");
                    assert_eq!(wheel.len(), pending.len());
                    // Nothing due is left behind, and the next deadline is
                    // exact when it is near.
                    if let Some(truth) = pending.iter().map(|p| p.0).min() {
                        let next = wheel.next_deadline().unwrap();
                        assert!(next > now && next <= truth, "seed {seed}");
                        if tick_of(truth) >> BITS == tick_of(now) >> BITS {
                            assert_eq!(next, truth, "seed {seed}: within level 0, exact");
                        }
                    }
                }
            }
            // Run it dry by following next_deadline: each wake-up makes progress.
            let mut wakes = 0;
            while let Some(next) = wheel.next_deadline() {
                now = next.max(now);
                out.clear();
                wheel.expire(now, &mut out);
                wakes += 1;
                assert!(wakes < 8 * 3000, "seed {seed}: no progress");
            }
            assert!(wheel.is_empty());
        }
    }

    #[test]
    fn a_near_deadline_is_named_exactly() {
        let mut wheel = TimerWheel::new();
        wheel.insert(Instant::from_micros(5_300), 1u8);
        wheel.insert(Instant::from_micros(5_200), 2u8);
        wheel.insert(Instant::from_micros(900_000), 3u8);
        assert_eq!(wheel.next_deadline(), Some(Instant::from_micros(5_200)));
        let mut out = Vec::new();
        wheel.expire(Instant::from_micros(5_250), &mut out);
        assert_eq!(out, [(Instant::from_micros(5_200), 2)]);
        // The other one shares the millisecond: still exact, still there.
        assert_eq!(wheel.next_deadline(), Some(Instant::from_micros(5_300)));
        out.clear();
        wheel.expire(Instant::from_micros(5_300), &mut out);
        assert_eq!(out, [(Instant::from_micros(5_300), 1)]);
        // The far one: a cascade first, then its exact moment.
        let first = wheel.next_deadline().unwrap();
        assert!(first <= Instant::from_micros(900_000));
        out.clear();
        wheel.expire(first, &mut out);
        assert!(out.is_empty() || first == Instant::from_micros(900_000));
        let mut now = first;
        while out.is_empty() {
            now = wheel.next_deadline().unwrap();
            wheel.expire(now, &mut out);
        }
        assert_eq!(out, [(Instant::from_micros(900_000), 3)]);
        assert_eq!(now, Instant::from_micros(900_000));
    }
}
