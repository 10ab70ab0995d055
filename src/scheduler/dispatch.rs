//! Starting calls: when the next one may start, and starting every call
//! that is due and allowed, within the slots (`max_in_flight`, narrowed by
//! the authentication gate), the throttle's spacing and the request
//! budget. A waiting permit (an SMN publish, see [`super::permits`]) takes
//! its turn before the polls.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::Scheduler;
use crate::job::JobKey;
use crate::telemetry;

impl Scheduler {
    /// When the next call may start, or `None` when none may (nothing due,
    /// all slots busy, authentication paused).
    pub(super) fn next_dispatch(&mut self, now: Instant) -> Option<Instant> {
        if self.in_flight.len() >= self.allowed_in_flight(now) {
            return None;
        }
        // A waiting permit (an SMN publish) is due at once.
        let due = if self.permit_waiting() {
            now
        } else {
            // Due times share wake-ups; the budget's and the throttle's
            // moments are kept exactly, so coalescing never slows the rate.
            let due = self.queue.next_due(&self.jobs, now)?;
            self.queue.coalesce(due, now)
        };
        Some(due.max(self.call_allowed_at(now)))
    }

    /// How many calls may run at once now (one while authentication is
    /// probed, none while it is paused).
    pub(super) fn allowed_in_flight(&mut self, now: Instant) -> usize {
        self.auth.allowed_in_flight(
            now,
            self.poller.credentials_generation(),
            self.settings.max_in_flight,
        )
    }

    /// The earliest moment the throttle and the budget allow a call.
    pub(super) fn call_allowed_at(&mut self, now: Instant) -> Instant {
        let at = self
            .throttle
            .next_allowed(now, self.budget.requests_per_second());
        self.budget_ready_at.map_or(at, |ready| at.max(ready))
    }

    /// Releases the polls due at `now` and starts as many as the slots,
    /// the throttle and the budget allow, the triage choosing which: a
    /// timer wakes the loop at most once a millisecond, so one call per
    /// wake would cap the rate near 1,000 calls per second and cost a
    /// thread wake-up per call.
    pub(super) fn dispatch_due(&mut self, now: Instant) {
        self.queue.release(&self.jobs, now);
        while self.in_flight.len() < self.allowed_in_flight(now) && self.call_allowed_at(now) <= now
        {
            // A waiting permit goes first; else the triage's pick.
            let taken = if self.permit_waiting() {
                None
            } else {
                let Some(taken) = self.queue.take(&self.jobs, now) else {
                    return;
                };
                Some(taken)
            };
            match self.budget.try_take() {
                Ok(()) => {
                    self.budget_ready_at = None;
                    if let Some(since) = self.budget_blocked_since.take() {
                        let waited = now.saturating_duration_since(since).as_secs_f64();
                        ::metrics::histogram!(telemetry::BUDGET_WAIT).record(waited);
                    }
                    match taken {
                        None => {
                            self.grant_permit(now);
                        }
                        Some((key, due)) => {
                            let due_at = self.queue.due_at(&due);
                            self.dispatch(key, due_at, now);
                        }
                    }
                }
                Err(wait) => {
                    self.budget_ready_at = Some(now + wait);
                    self.budget_blocked_since.get_or_insert(now);
                    if let Some((key, due)) = taken {
                        let seq = self.jobs.get(&key).map_or(0, |tracked| tracked.due_seq);
                        self.queue.put_back(key, seq, due);
                    }
                    return;
                }
            }
        }
    }

    pub(super) fn dispatch(&mut self, key: JobKey, due: Instant, now: Instant) {
        let Some(tracked) = self.jobs.get_mut(&key) else {
            return;
        };
        tracked.in_flight = true;
        self.throttle.on_dispatch(now);
        self.load.record(self.queue.clock(now));
        self.stats.polls.fetch_add(1, Ordering::Relaxed);
        let lag = now.saturating_duration_since(due).as_secs_f64();
        ::metrics::histogram!(telemetry::SCHEDULER_LAG).record(lag);
        let call = self.poller.poll(&key);
        self.in_flight.spawn(async move {
            let started = Instant::now();
            let result = call.await;
            let seconds = started.elapsed().as_secs_f64();
            ::metrics::histogram!(telemetry::API_REQUEST_DURATION).record(seconds);
            (key, result)
        });
    }
}
