//! When each job is polled next, and which due poll gets the next call.
//!
//! Two stages. The timer heap holds every job's next due time as
//! `(due, seq, key)`: rescheduling is a push, and an entry whose `seq` no
//! longer matches the job's is stale and skipped. When a poll falls due it
//! moves into the [`Triage`], whose lanes decide the order when more polls
//! are due than the budget grants (first sightings, then the working jobs
//! most likely to have finished, then PENDING_PAYMENT; none waits longer
//! than the triage's bound). With budget to spare the triage holds a poll
//! only for the moment between its release and its call.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::tracked::Tracked;
use crate::job::{JobKey, Status};
use crate::policy::triage::{self, Due, Lane, Triage};

/// How far apart the scheduler's timer wake-ups are at least: due times
/// are rounded up to a multiple of this (see [`Queue::coalesce`]).
pub const WAKE_GRANULE: Duration = Duration::from_millis(50);

/// The two stages of due polls.
pub struct Queue {
    origin: Instant,
    timers: BinaryHeap<Reverse<(Instant, u64, JobKey)>>,
    next_seq: u64,
    triage: Triage<(JobKey, u64)>,
}

impl Queue {
    /// An empty queue; `origin` is the clock's zero for the triage.
    pub fn new(origin: Instant) -> Queue {
        Queue {
            origin,
            timers: BinaryHeap::new(),
            next_seq: 0,
            triage: Triage::new(triage::Settings::default()),
        }
    }

    /// `due`, when later than `now`, rounded up to the next multiple of
    /// [`WAKE_GRANULE`] since the origin: polls that fall due within one
    /// granule share one wake-up of the scheduler (and one turn of the
    /// event loop), which is what a poll costs most at everyday rates. A
    /// poll is at most one granule late; one already due (waiting for a
    /// free slot) is not held back.
    pub fn coalesce(&self, due: Instant, now: Instant) -> Instant {
        if due <= now {
            return due;
        }
        let step = WAKE_GRANULE.as_nanos();
        let since = self.clock(due).as_nanos();
        let rounded = since.div_ceil(step).saturating_mul(step);
        self.origin + Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX))
    }

    /// Time since the origin, the triage's clock.
    pub fn clock(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.origin)
    }

    /// Plans the job's next poll at `due`; any earlier plan is void.
    pub fn schedule(&mut self, key: &JobKey, tracked: &mut Tracked, due: Instant) {
        self.next_seq += 1;
        tracked.due_seq = self.next_seq;
        self.timers.push(Reverse((due, self.next_seq, key.clone())));
    }

    /// When the next call is wanted: now when a released poll waits, else
    /// the earliest valid timer (stale ones are dropped on the way).
    pub fn next_due(&mut self, jobs: &HashMap<JobKey, Tracked>, now: Instant) -> Option<Instant> {
        if !self.triage.is_empty() {
            return Some(now);
        }
        while let Some(Reverse((due, seq, key))) = self.timers.peek() {
            match jobs.get(key) {
                Some(tracked) if tracked.due_seq == *seq && !tracked.in_flight => {
                    return Some(*due);
                }
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    /// Moves every valid timer due at `now` into the triage, in its lane
    /// with its chance.
    pub fn release(&mut self, jobs: &HashMap<JobKey, Tracked>, now: Instant) {
        while let Some(Reverse((due, seq, key))) = self.timers.peek() {
            if *due > now {
                return;
            }
            let (due, seq, key) = (*due, *seq, key.clone());
            self.timers.pop();
            let Some(tracked) = jobs.get(&key) else {
                continue;
            };
            if tracked.due_seq != seq || tracked.in_flight {
                continue;
            }
            let lane = match &tracked.status {
                None => Lane::FirstSight,
                Some(Status::PendingPayment) => Lane::PendingPayment,
                Some(_) => Lane::Working,
            };
            self.triage.push(Due {
                item: (key, seq),
                lane,
                due: self.clock(due),
                chance: tracked.chance.map(f64::from),
            });
        }
    }

    /// The released poll to make now, skipping any whose plan changed
    /// since it was released; `None` when none waits.
    pub fn take(
        &mut self,
        jobs: &HashMap<JobKey, Tracked>,
        now: Instant,
    ) -> Option<(JobKey, Due<()>)> {
        let at = self.clock(now);
        while let Some(due) = self.triage.pop(at) {
            let (key, seq) = &due.item;
            if jobs
                .get(key)
                .is_some_and(|tracked| tracked.due_seq == *seq && !tracked.in_flight)
            {
                let rest = Due {
                    item: (),
                    lane: due.lane,
                    due: due.due,
                    chance: due.chance,
                };
                return Some((due.item.0, rest));
            }
        }
        None
    }

    /// Puts a taken poll back (the budget refused it after all); it keeps
    /// its due time, so its place.
    pub fn put_back(&mut self, key: JobKey, seq: u64, due: Due<()>) {
        self.triage.push(Due {
            item: (key, seq),
            lane: due.lane,
            due: due.due,
            chance: due.chance,
        });
    }

    /// When a poll fell due, on the monotonic clock.
    pub fn due_at(&self, due: &Due<()>) -> Instant {
        self.origin + due.due
    }
}
