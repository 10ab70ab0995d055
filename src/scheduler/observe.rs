//! The scheduler's decisions, without I/O: what an answer of the API means
//! for one tracked job. Each function takes the job's in-memory record,
//! what the API said and a [`Context`] (the time, a random number, the
//! policies), updates the record, and returns an [`Observation`]: the
//! events to announce, in order, what to write to the store, and when to
//! poll next. The scheduler (`super`) is the edge that announces, records
//! and schedules.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::tracked::{Tracked, history_key};
use crate::job::{JobKey, JobView, Service, Status};
use crate::output::event::{self, Event, JobRef, TransitionContext};
use crate::policy::adaptive::History;
use crate::policy::cadence::{self, Cadence, Situation};

/// What events say about a job's project.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProjectInfo {
    /// The project id.
    pub project_id: Arc<str>,
    /// The region, when known.
    pub region: Option<Arc<str>>,
}

/// Everything a decision needs beyond the job.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The job.
    pub key: &'a JobKey,
    /// Its project.
    pub project: &'a ProjectInfo,
    /// The per-job cadence.
    pub cadence: &'a Cadence,
    /// The adaptive history, when the adaptive cadence is on.
    pub history: Option<&'a History>,
    /// Whether the store records what is announced; while it does not,
    /// nothing is announced (the fact is seen again at a later poll).
    pub store_healthy: bool,
    /// Now, monotonic.
    pub now: Instant,
    /// Now, Unix ms.
    pub wall_ms: i64,
    /// A number in `[0, 1)` for jitter.
    pub random: f64,
}

/// When to poll the job next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// After this gap.
    Poll(Duration),
    /// Never: the job is done (final status, or not found).
    Finish,
}

/// What the store must learn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// The whole record (a change, a timeout, a sub-job failure).
    Full,
    /// Only the poll counters (cheap, batched).
    Counters,
    /// Nothing (the answer was not taken in).
    Nothing,
}

/// The outcome of a decision.
#[derive(Debug, PartialEq)]
pub struct Observation {
    /// The events to announce, in this order.
    pub events: Vec<Event>,
    /// The `event_id`s of announced sub-job failures to record.
    pub announced: Vec<String>,
    /// How the record changes.
    pub record: Record,
    /// A duration to learn (service, `job_type`, milliseconds): the job
    /// has just finished.
    pub duration: Option<(Service, Arc<str>, i64)>,
    /// When to poll next.
    pub next: Next,
}

impl Observation {
    /// Nothing to announce: poll again after `gap`, recording `record`.
    pub fn poll(gap: Duration, record: Record) -> Observation {
        Observation {
            events: Vec::new(),
            announced: Vec::new(),
            record,
            duration: None,
            next: Next::Poll(gap),
        }
    }
}

/// The job as events name it.
pub fn job_ref(tracked: &Tracked, context: &Context<'_>) -> JobRef {
    JobRef {
        key: context.key.clone(),
        project_id: context.project.project_id.clone(),
        region: context.project.region.clone(),
        labels: tracked.labels.clone(),
    }
}

/// The wait while announcements are held back for the store.
fn hold_back(cadence: &Cadence) -> Duration {
    cadence.initial_interval.max(Duration::from_secs(1))
}

/// An answer with the job's state: compares it with what is recorded,
/// and decides the events, the record and the next poll.
pub fn observe(tracked: &mut Tracked, view: &JobView, context: &Context<'_>) -> Observation {
    let status = &view.status;
    let now = context.now;
    let wall = context.wall_ms;
    tracked.failures = 0;
    tracked.record.polls += 1;
    tracked.record.last_poll_ms = Some(wall);

    // A job that ends gets its sub-job failures announced first (they
    // happened before); otherwise its status comes first.
    let mut events = Vec::new();
    let mut announced = Vec::new();
    for sub_job in view
        .sub_jobs
        .iter()
        .filter(|sub| sub.status == Status::Fail)
    {
        let event_id = event::subjob_failed_id(context.key, &sub_job.key);
        if tracked
            .subjobs_announced
            .iter()
            .any(|known| **known == *event_id)
        {
            continue;
        }
        events.push(event::job_subjob_failed(job_ref(tracked, context), sub_job));
        announced.push(event_id);
    }
    let changed = tracked.status.as_ref() != Some(status);
    if changed {
        let transition = event::job_transition(
            job_ref(tracked, context),
            TransitionContext {
                previous: tracked.status.as_ref(),
                sequence: tracked.record.transitions,
            },
            view,
        );
        if status.is_final() {
            events.push(transition);
        } else {
            events.insert(0, transition);
        }
    }
    let elapsed = if changed {
        Duration::ZERO
    } else {
        now.saturating_duration_since(tracked.status_since)
    };
    let timeout =
        !tracked.record.timeout_announced && cadence::timed_out(context.cadence, status, elapsed);
    if timeout {
        events.push(event::job_timeout(
            job_ref(tracked, context),
            status,
            elapsed.as_secs(),
        ));
    }

    if !events.is_empty() && !context.store_healthy {
        // Nothing is announced that cannot be recorded; the same facts
        // will be seen again at the next poll.
        return Observation::poll(hold_back(context.cadence), Record::Nothing);
    }

    if changed {
        tracked.status = Some(status.clone());
        tracked.status_since = now;
        tracked.streak = 0;
        tracked.record.transitions = tracked.record.transitions.saturating_add(1);
        tracked.record.last_change_ms = Some(wall);
        if tracked.record.first_seen_ms.is_none() {
            tracked.record.first_seen_ms = Some(wall);
        }
        if let Some(job_type) = &view.job_type
            && tracked.job_type.as_deref() != Some(job_type.as_str())
        {
            tracked.job_type = Some(Arc::from(job_type.as_str()));
        }
    }
    if timeout {
        tracked.record.timeout_announced = true;
    }
    for event_id in &announced {
        tracked
            .subjobs_announced
            .push(event_id.clone().into_boxed_str());
    }
    tracked.streak = tracked.streak.saturating_add(1);
    if tracked.active_since.is_none() && *status != Status::PendingPayment {
        tracked.active_since = Some((now, wall));
    }
    let record = if changed || timeout || !announced.is_empty() {
        Record::Full
    } else {
        Record::Counters
    };

    if status.is_final() {
        // How long the job worked, for the adaptive cadence: from its first
        // sighting at work to its end, so time spent waiting for payment
        // does not count.
        let duration = match (&tracked.job_type, tracked.active_since) {
            (Some(job_type), Some((_, since))) => {
                Some((context.key.service, job_type.clone(), wall - since))
            }
            _ => None,
        };
        return Observation {
            events,
            announced,
            record,
            duration,
            next: Next::Finish,
        };
    }
    let gap = tracked.cadence_gap(
        context.key,
        context.cadence,
        context.history,
        now,
        context.random,
    );
    Observation {
        events,
        announced,
        record,
        duration: None,
        next: Next::Poll(gap),
    }
}

/// A "no such job" answer: never seen and still within the grace, poll
/// again; seen before, or past the grace, `job.not_found` and done.
pub fn not_found(tracked: &mut Tracked, context: &Context<'_>) -> Observation {
    tracked.failures = 0;
    tracked.record.polls += 1;
    tracked.record.last_poll_ms = Some(context.wall_ms);
    let seen_before = tracked.status.is_some();
    let expired = cadence::not_found_expired(
        context.cadence,
        context.now.saturating_duration_since(tracked.tracked_since),
    );
    if !seen_before && !expired {
        tracked.streak = tracked.streak.saturating_add(1);
        let gap = cadence::next_gap(
            context.cadence,
            Situation::NotYetVisible,
            tracked.streak,
            Duration::ZERO,
            context.random,
        );
        return Observation::poll(gap, Record::Counters);
    }
    if !context.store_healthy {
        return Observation::poll(hold_back(context.cadence), Record::Nothing);
    }
    let event = event::job_not_found(job_ref(tracked, context), tracked.status.as_ref());
    Observation {
        events: vec![event],
        announced: Vec::new(),
        record: Record::Full,
        duration: None,
        next: Next::Finish,
    }
}

/// A failed call (server error, refused request, timeout, no connection,
/// unreadable answer): the next try, with backoff, never sooner than the
/// cadence would poll. `random_gap` jitters the cadence, `context.random`
/// the backoff.
pub fn retry(tracked: &mut Tracked, context: &Context<'_>, random_gap: f64) -> Duration {
    tracked.record.polls += 1;
    tracked.record.last_poll_ms = Some(context.wall_ms);
    tracked.failures = tracked.failures.saturating_add(1);
    let gap = tracked.cadence_gap(
        context.key,
        context.cadence,
        context.history,
        context.now,
        random_gap,
    );
    cadence::retry_delay(tracked.failures, gap, context.random)
}

/// The key under which a duration is learned (see [`history_key`]).
pub fn learned_key(key: &JobKey, job_type: &str) -> String {
    history_key(key, job_type)
}

#[cfg(test)]
mod tests;
