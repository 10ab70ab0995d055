//! A short budget: which due poll gets the next call when more polls are
//! due than the budget grants, and how far apart to place polls while it
//! lasts.
//!
//! A pure queue ([`Triage`]) the scheduler pushes a poll into when its time
//! comes and pops from each time the budget grants a call. Polls wait in
//! three lanes, served in this order:
//!
//! 1. **Overdue**, any lane: a poll that has waited [`Settings::max_wait`]
//!    is served before every poll that has not, the longest-due first.
//!    This is the bound on waiting: once overdue, a poll is behind only the
//!    polls that fell due before it, so no job starves, whatever the scores.
//! 2. **First sight** ([`Lane::FirstSight`]): jobs not yet seen (no answer,
//!    or 404 within the grace), earliest due first. Their first answer is
//!    what tells their type and age, without which nothing ranks them.
//! 3. **Working** ([`Lane::Working`]): jobs at work, the most likely to
//!    have finished first: each poll's score is the probability that it
//!    finds the job done ([`crate::policy::adaptive::chance`], taken when
//!    the poll was placed), plus one per [`Settings::aging`] it has waited,
//!    so that a poll unlikely to find anything yields to likelier ones for
//!    a while, never for ever. A poll whose type has no history scores
//!    [`Settings::unknown_chance`].
//! 4. **PENDING_PAYMENT** ([`Lane::PendingPayment`]): the slow lane (only a
//!    person's payment moves such a job), earliest due first, served only
//!    when nothing else waits or once overdue.
//!
//! The aging is linear in the wait, so the order of two working polls does
//! not change with time: each is filed once under `chance - due / aging`,
//! and every operation is `O(log n)`.
//!
//! As the budget fills, the cadence should ask for fewer calls: a
//! [`LoadMeter`] measures the share of the budget used over the last
//! [`LOAD_WINDOW`], and [`loaded_spacing`] widens the adaptive spacing with
//! it, so that polls aim at likelier moments (and a job's first poll is
//! placed from its service's history:
//! [`crate::policy::adaptive::first_gap`]) and the backlog never builds.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

/// The lane of a due poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Not yet seen: no answer yet, or 404 within the grace.
    FirstSight,
    /// At work: INIT, RUNNING or a service's own non-final status.
    Working,
    /// PENDING_PAYMENT.
    PendingPayment,
}

/// The knobs of the triage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// The wait after which a poll is served before every poll that has
    /// not waited as long.
    pub max_wait: Duration,
    /// The wait that is worth a probability of one in the working lane.
    pub aging: Duration,
    /// The score of a working poll whose type has no history.
    pub unknown_chance: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_wait: Duration::from_secs(60),
            aging: Duration::from_secs(30),
            unknown_chance: 0.2,
        }
    }
}

/// A poll that is due.
#[derive(Clone, Debug, PartialEq)]
pub struct Due<T> {
    /// What the caller needs to make the call (a job key).
    pub item: T,
    /// Its lane.
    pub lane: Lane,
    /// When it fell due, on the caller's monotonic clock (time since any
    /// fixed origin, the same for every poll).
    pub due: Duration,
    /// For the working lane: [`crate::policy::adaptive::chance`] of the
    /// poll at its due time, `None` when its type has no history.
    pub chance: Option<f64>,
}

/// Identifies a pushed poll, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

/// A working poll's place: higher scores first, then earlier pushes.
#[derive(Clone, Copy, Debug)]
struct Score(f64, Reverse<u64>);

impl PartialEq for Score {
    fn eq(&self, other: &Score) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Score) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Score) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Due polls in their lanes; see the module's documentation for the order.
#[derive(Clone, Debug)]
pub struct Triage<T> {
    settings: Settings,
    next: u64,
    live: HashMap<u64, Due<T>>,
    by_due: BinaryHeap<Reverse<(Duration, u64)>>,
    first_sight: BinaryHeap<Reverse<(Duration, u64)>>,
    working: BinaryHeap<Score>,
    pending: BinaryHeap<Reverse<(Duration, u64)>>,
}

impl<T> Triage<T> {
    /// An empty triage.
    pub fn new(settings: Settings) -> Triage<T> {
        Triage {
            settings,
            next: 0,
            live: HashMap::new(),
            by_due: BinaryHeap::new(),
            first_sight: BinaryHeap::new(),
            working: BinaryHeap::new(),
            pending: BinaryHeap::new(),
        }
    }

    /// How many polls wait.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no poll waits.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Files a poll whose time has come.
    pub fn push(&mut self, poll: Due<T>) -> Ticket {
        let seq = self.next;
        self.next += 1;
        self.by_due.push(Reverse((poll.due, seq)));
        match poll.lane {
            Lane::FirstSight => self.first_sight.push(Reverse((poll.due, seq))),
            Lane::PendingPayment => self.pending.push(Reverse((poll.due, seq))),
            Lane::Working => {
                let chance = poll
                    .chance
                    .unwrap_or(self.settings.unknown_chance)
                    .clamp(0.0, 1.0);
                let aging = self.settings.aging.as_secs_f64().max(1e-3);
                let key = chance - poll.due.as_secs_f64() / aging;
                self.working.push(Score(key, Reverse(seq)));
            }
        }
        self.live.insert(seq, poll);
        self.compact();
        Ticket(seq)
    }

    /// Withdraws a waiting poll (its job left the watch list, or was
    /// polled another way); `None` when it is not waiting.
    pub fn cancel(&mut self, ticket: Ticket) -> Option<Due<T>> {
        let poll = self.live.remove(&ticket.0);
        self.compact();
        poll
    }

    /// The poll to serve with the call the budget just granted at `now`
    /// (the same clock as [`Due::due`]), or `None` when none waits.
    pub fn pop(&mut self, now: Duration) -> Option<Due<T>> {
        let overdue = now.saturating_sub(self.settings.max_wait);
        if let Some(seq) = peek(&mut self.by_due, &self.live, |e| e.0.1)
            && self.live.get(&seq).is_some_and(|p| p.due <= overdue)
        {
            return self.take(seq);
        }
        if let Some(seq) = peek(&mut self.first_sight, &self.live, |e| e.0.1) {
            return self.take(seq);
        }
        if let Some(seq) = peek(&mut self.working, &self.live, |e| e.1.0) {
            return self.take(seq);
        }
        if let Some(seq) = peek(&mut self.pending, &self.live, |e| e.0.1) {
            return self.take(seq);
        }
        None
    }

    fn take(&mut self, seq: u64) -> Option<Due<T>> {
        let poll = self.live.remove(&seq);
        self.compact();
        poll
    }

    /// Rebuilds the heaps when stale entries (served or cancelled through
    /// another heap) outnumber the live ones, so memory stays `O(live)`.
    fn compact(&mut self) {
        let stale =
            self.by_due.len() + self.first_sight.len() + self.working.len() + self.pending.len();
        if stale <= 4 * self.live.len() + 64 {
            return;
        }
        let live = &self.live;
        self.by_due.retain(|e| live.contains_key(&e.0.1));
        self.first_sight.retain(|e| live.contains_key(&e.0.1));
        self.working.retain(|e| live.contains_key(&e.1.0));
        self.pending.retain(|e| live.contains_key(&e.0.1));
    }
}

/// The sequence number atop `heap` that is still live, dropping stale ones.
fn peek<E: Ord, T>(
    heap: &mut BinaryHeap<E>,
    live: &HashMap<u64, Due<T>>,
    seq: impl Fn(&E) -> u64,
) -> Option<u64> {
    while let Some(top) = heap.peek() {
        let s = seq(top);
        if live.contains_key(&s) {
            return Some(s);
        }
        heap.pop();
    }
    None
}

/// The span over which [`LoadMeter`] measures the budget's use.
pub const LOAD_WINDOW: Duration = Duration::from_secs(20);
/// The share of the budget below which the spacing stays as it is.
pub const LOAD_THRESHOLD: f64 = 0.2;
/// How steeply the spacing widens past the threshold.
pub const LOAD_EXPONENT: f64 = 2.0;
/// The widest the spacing grows under load, as a multiple of the base.
pub const MAX_LOAD_FACTOR: f64 = 50.0;

/// How many times the base spacing to place polls with when `utilisation`
/// of the budget (0 to 1, [`LoadMeter::utilisation`]) is in use:
/// 1 up to [`LOAD_THRESHOLD`], then `(1 / (1 - x))^LOAD_EXPONENT` where
/// `x` is how far the use is from the threshold to the whole budget, at
/// most [`MAX_LOAD_FACTOR`]. A call costs more as the budget fills, so the
/// cadence asks for fewer: half the budget in use doubles the spacing
/// and more (2.56 times), 80 % gives 16 times.
pub fn load_factor(utilisation: f64) -> f64 {
    if utilisation.is_nan() || utilisation <= LOAD_THRESHOLD {
        return 1.0;
    }
    let x = ((utilisation - LOAD_THRESHOLD) / (1.0 - LOAD_THRESHOLD)).min(0.999);
    (1.0 / (1.0 - x)).powf(LOAD_EXPONENT).min(MAX_LOAD_FACTOR)
}

/// The adaptive spacing under a load: `base` times [`load_factor`].
pub fn loaded_spacing(base: Duration, utilisation: f64) -> Duration {
    base.mul_f64(load_factor(utilisation))
}

/// Counts the calls made over the last [`LOAD_WINDOW`], in one-second
/// buckets (constant memory whatever the rate).
#[derive(Clone, Debug)]
pub struct LoadMeter {
    /// Per bucket: the whole second it counts, and its calls.
    buckets: Vec<(u64, u32)>,
}

impl Default for LoadMeter {
    fn default() -> LoadMeter {
        LoadMeter::new()
    }
}

impl LoadMeter {
    /// A meter that has seen no call.
    pub fn new() -> LoadMeter {
        LoadMeter {
            buckets: vec![(u64::MAX, 0); LOAD_WINDOW.as_secs() as usize],
        }
    }

    /// Counts a call made at `at` (the caller's monotonic clock).
    pub fn record(&mut self, at: Duration) {
        let second = at.as_secs();
        let len = self.buckets.len() as u64;
        let slot = &mut self.buckets[(second % len) as usize];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 = slot.1.saturating_add(1);
    }

    /// The share of a budget of `rate` calls per second used over the
    /// window that ends at `now`, from 0 to 1.
    pub fn utilisation(&self, now: Duration, rate: f64) -> f64 {
        if rate.is_nan() || rate <= 0.0 {
            return 0.0;
        }
        let second = now.as_secs();
        let len = self.buckets.len() as u64;
        let calls: u64 = self
            .buckets
            .iter()
            .filter(|(s, _)| *s != u64::MAX && *s <= second && second - *s < len)
            .map(|(_, n)| u64::from(*n))
            .sum();
        (calls as f64 / (rate * len as f64)).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests;
