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

use super::tracked::{Placement, Tracked};
use crate::job::{JobKey, JobView, Status};
use crate::output::event::{self, Event, JobRef, TransitionContext};
use crate::policy::adaptive::{self, History, Phase};
use crate::policy::cadence::{self, Cadence, Situation};
use crate::policy::server_time::{self, ServerTimes, Sightings};
use crate::store::DurationRow;

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
    /// The server's clock at the answer (its `Date`), Unix ms.
    pub server_now_ms: Option<i64>,
    /// The adaptive spacing (wider under a loaded budget).
    pub spacing: Duration,
    /// A number in `[0, 1)` for jitter.
    pub random: f64,
}

impl Context<'_> {
    /// Placing a poll of a job of this `age` with this `batch`.
    fn placement<'a>(&'a self, age: Duration, batch: Option<adaptive::Batch<'a>>) -> Placement<'a> {
        Placement {
            cadence: self.cadence,
            history: self.history,
            now: self.now,
            age,
            batch,
            spacing: self.spacing,
            random: self.random,
        }
    }
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
    /// Durations to learn: the job has just finished.
    pub durations: Vec<DurationRow>,
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
            durations: Vec::new(),
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
    let record = if changed || timeout || !announced.is_empty() {
        Record::Full
    } else {
        Record::Counters
    };
    let server = ServerTimes {
        begin_ms: view.begin_ms,
        end_ms: view.end_ms,
        server_now_ms: context.server_now_ms,
    };
    let seen = Sightings {
        now_ms: wall,
        first_at_work_ms: tracked.first_at_work_ms,
        last_at_work_ms: tracked.last_at_work_ms,
        was_pending: tracked.was_pending,
    };

    if status.is_final() {
        let durations = learned(context.key, tracked, view, server, seen);
        return Observation {
            events,
            announced,
            record,
            durations,
            next: Next::Finish,
        };
    }
    if *status == Status::PendingPayment {
        tracked.was_pending = true;
    } else {
        tracked.first_at_work_ms.get_or_insert(wall);
        tracked.last_at_work_ms = Some(wall);
    }
    let age = server_time::running_age(
        ServerTimes {
            end_ms: None,
            ..server
        },
        Sightings {
            first_at_work_ms: tracked.first_at_work_ms,
            ..seen
        },
    )
    .value;
    let batch = batch(tracked, view, age);
    let gap = tracked.next_gap(context.key, &context.placement(age, batch));
    Observation {
        events,
        announced,
        record,
        durations: Vec::new(),
        next: Next::Poll(gap),
    }
}

/// How many sub-jobs a job has: `sub_jobs_total`, else those listed.
fn batch_size(view: &JobView) -> usize {
    view.sub_jobs_total.map_or(view.sub_jobs.len(), |total| {
        usize::try_from(total).unwrap_or(usize::MAX)
    })
}

/// A batch's progress for the placement (at least two sub-jobs), noting
/// when the count of finished sub-jobs last changed.
fn batch<'a>(
    tracked: &mut Tracked,
    view: &'a JobView,
    age: Duration,
) -> Option<adaptive::Batch<'a>> {
    let total = batch_size(view);
    if total < 2 {
        tracked.batch_seen = None;
        return None;
    }
    let finished = u32::try_from(view.sub_jobs_finished()).unwrap_or(u32::MAX);
    let since = match tracked.batch_seen {
        Some((count, since)) if count == finished => since,
        _ => age,
    };
    tracked.batch_seen = Some((finished, since));
    Some(adaptive::Batch {
        total: u32::try_from(total).unwrap_or(u32::MAX),
        finished,
        last_finished_age: Some(since),
        sub_job_type: view.sub_jobs.iter().find_map(|sub| sub.job_type.as_deref()),
    })
}

/// What a finished job teaches the adaptive cadence: its whole duration
/// (the server's `end_time - begin_time` when sane, else our sightings),
/// and for a batch seen with every sub-job done before its end, the tail
/// after the last sub-job.
fn learned(
    key: &JobKey,
    tracked: &Tracked,
    view: &JobView,
    server: ServerTimes,
    seen: Sightings,
) -> Vec<DurationRow> {
    let Some(job_type) = tracked.job_type.as_deref().or(view.job_type.as_deref()) else {
        return Vec::new();
    };
    let mut durations = Vec::new();
    let Some(whole) = server_time::finished_duration(server, seen) else {
        return durations;
    };
    let row = |phase, source, value: Duration| DurationRow {
        service: key.service,
        job_type: job_type.to_string(),
        phase,
        source,
        duration_ms: i64::try_from(value.as_millis()).unwrap_or(i64::MAX),
    };
    durations.push(row(Phase::Whole, whole.source, whole.value));
    let total = batch_size(view);
    if let Some((finished, since)) = tracked.batch_seen
        && total >= 2
        && finished as usize >= total
        && whole.value > since
    {
        durations.push(row(Phase::Tail, whole.source, whole.value - since));
    }
    durations
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
        durations: Vec::new(),
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
    let age = tracked.sighted_age(context.wall_ms);
    let placement = Placement {
        random: random_gap,
        ..context.placement(age, None)
    };
    let gap = tracked.next_gap(context.key, &placement);
    cadence::retry_delay(tracked.failures, gap, context.random)
}

#[cfg(test)]
mod tests;
