//! What the scheduler keeps about one job between polls, and how that is
//! recorded in and restored from the state store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::job::{JobKey, Labels, Status};
use crate::policy::adaptive::{self, History};
use crate::policy::cadence::{self, Cadence, Situation};
use crate::store::JobRecord;

/// One tracked job.
#[derive(Debug)]
pub struct Tracked {
    /// Its labels (shared between jobs with equal labels).
    pub labels: Arc<Labels>,
    /// The last recorded status (`None`: never seen).
    pub status: Option<Status>,
    /// Its `job_type`, once seen.
    pub job_type: Option<Arc<str>>,
    /// When tracking started (monotonic).
    pub tracked_since: Instant,
    /// When the status last changed (monotonic).
    pub status_since: Instant,
    /// When the job was first and last seen at work (INIT, RUNNING or a
    /// service's own word), Unix ms: the sightings its age and duration
    /// fall back on when the server's times are missing or absurd.
    pub first_at_work_ms: Option<i64>,
    /// See `first_at_work_ms`.
    pub last_at_work_ms: Option<i64>,
    /// Whether the job was ever seen in PENDING_PAYMENT (its `begin_time`
    /// is then the order's).
    pub was_pending: bool,
    /// For a batch: how many sub-jobs were final at the last answer, and
    /// the job's age when that count first showed.
    pub batch_seen: Option<(u32, Duration)>,
    /// The chance that the next poll finds the job done (the triage's
    /// score under a short budget), when history knows its type.
    pub chance: Option<f32>,
    /// Polls since the last change (the plain cadence grows with it).
    pub streak: u32,
    /// Failed calls in a row (the retry backoff grows with them).
    pub failures: u32,
    /// A call is under way.
    pub in_flight: bool,
    /// The sequence number of its valid queue entry.
    pub due_seq: u64,
    /// The `event_id`s of the sub-job failures announced so far.
    pub subjobs_announced: Vec<Box<str>>,
    /// What is recorded besides the status.
    pub record: Counters,
}

/// What is recorded of a job besides its status.
#[derive(Clone, Debug)]
pub struct Counters {
    /// When tracking started (Unix ms).
    pub tracked_since_ms: i64,
    /// When the job first answered.
    pub first_seen_ms: Option<i64>,
    /// When its status last changed.
    pub last_change_ms: Option<i64>,
    /// When it was last polled.
    pub last_poll_ms: Option<i64>,
    /// When the next poll is planned.
    pub next_poll_ms: Option<i64>,
    /// Polls so far.
    pub polls: u64,
    /// Transitions recorded.
    pub transitions: u32,
    /// Whether `job.timeout` was announced.
    pub timeout_announced: bool,
}

impl Tracked {
    /// A job that starts being tracked now.
    pub fn new(labels: Arc<Labels>, now: Instant, wall: i64) -> Tracked {
        Tracked {
            labels,
            status: None,
            job_type: None,
            tracked_since: now,
            status_since: now,
            first_at_work_ms: None,
            last_at_work_ms: None,
            was_pending: false,
            batch_seen: None,
            chance: None,
            streak: 0,
            failures: 0,
            in_flight: false,
            due_seq: 0,
            subjobs_announced: Vec::new(),
            record: Counters {
                tracked_since_ms: wall,
                first_seen_ms: None,
                last_change_ms: None,
                last_poll_ms: None,
                next_poll_ms: None,
                polls: 0,
                transitions: 0,
                timeout_announced: false,
            },
        }
    }

    /// Rebuilds a job from its record: monotonic instants are placed as far
    /// in the past as the wall clock says, never in the future.
    pub fn from_record(
        record: &JobRecord,
        labels: Arc<Labels>,
        now: Instant,
        wall: i64,
    ) -> Tracked {
        let ago = |ms: Option<i64>| {
            let elapsed = ms.map_or(0, |ms| (wall - ms).max(0)) as u64;
            now.checked_sub(Duration::from_millis(elapsed))
                .unwrap_or(now)
        };
        let status = record.status.as_deref().map(Status::parse);
        Tracked {
            labels,
            job_type: record.job_type.as_deref().map(Arc::from),
            tracked_since: ago(Some(record.tracked_since)),
            status_since: ago(record.last_change),
            // Not recorded: a job that was working is taken to have worked
            // since its first sighting (its next answer's `begin_time`
            // usually says better).
            first_at_work_ms: match &status {
                Some(Status::PendingPayment) | None => None,
                Some(_) => record.first_seen,
            },
            last_at_work_ms: None,
            was_pending: status == Some(Status::PendingPayment),
            batch_seen: None,
            chance: None,
            status,
            streak: 0,
            failures: 0,
            in_flight: false,
            due_seq: 0,
            subjobs_announced: Vec::new(),
            record: Counters {
                tracked_since_ms: record.tracked_since,
                first_seen_ms: record.first_seen,
                last_change_ms: record.last_change,
                last_poll_ms: record.last_poll,
                next_poll_ms: record.next_poll,
                polls: record.polls,
                transitions: record.transitions,
                timeout_announced: record.timeout_announced,
            },
        }
    }

    /// The record of this job (unfinished).
    pub fn to_record(&self, key: &JobKey) -> JobRecord {
        JobRecord {
            key: key.clone(),
            labels: (*self.labels).clone(),
            status: self.status.as_ref().map(|s| s.as_str().to_string()),
            job_type: self.job_type.as_deref().map(str::to_string),
            tracked_since: self.record.tracked_since_ms,
            first_seen: self.record.first_seen_ms,
            last_change: self.record.last_change_ms,
            last_poll: self.record.last_poll_ms,
            next_poll: self.record.next_poll_ms,
            polls: self.record.polls,
            transitions: self.record.transitions,
            finished: false,
            finished_at: None,
            timeout_announced: self.record.timeout_announced,
        }
    }

    /// The gap before the next poll: the adaptive placement when
    /// `history` is given and knows this job's type, else the plain
    /// cadence. Only working jobs (INIT, RUNNING, unknown statuses) not yet
    /// past their deadline are placed adaptively. Sets the poll's chance
    /// (the triage's score).
    pub fn next_gap(&mut self, key: &JobKey, place: &Placement<'_>) -> Duration {
        let elapsed = place.now.saturating_duration_since(self.status_since);
        self.chance = None;
        if let (Some(history), Some(status), Some(job_type)) =
            (place.history, &self.status, self.job_type.as_deref())
            && !matches!(status, Status::PendingPayment)
            && !status.is_final()
            && !cadence::timed_out(place.cadence, status, elapsed)
        {
            let observation = adaptive::Observation {
                service: key.service,
                job_type,
                age: place.age,
                batch: place.batch,
            };
            if let Some(gap) = adaptive::place(
                history,
                place.cadence,
                &observation,
                place.spacing,
                place.random,
            ) {
                self.chance =
                    adaptive::chance(history, &observation, gap).map(|chance| chance as f32);
                return gap;
            }
        }
        let situation = match &self.status {
            Some(status) => Situation::Status(status),
            None => Situation::NotYetVisible,
        };
        cadence::next_gap(
            place.cadence,
            situation,
            self.streak.max(1),
            elapsed,
            place.random,
        )
    }

    /// The job's age by our own sightings (when no answer says better).
    pub fn sighted_age(&self, now_ms: i64) -> Duration {
        self.first_at_work_ms.map_or(Duration::ZERO, |first| {
            Duration::from_millis(now_ms.saturating_sub(first).max(0) as u64)
        })
    }
}

/// What placing the next poll needs beyond the job.
#[derive(Clone, Copy, Debug)]
pub struct Placement<'a> {
    /// The per-job cadence.
    pub cadence: &'a Cadence,
    /// The adaptive history, when the adaptive cadence is on.
    pub history: Option<&'a History>,
    /// Now, monotonic.
    pub now: Instant,
    /// The job's age at work.
    pub age: Duration,
    /// Its sub-jobs' progress.
    pub batch: Option<adaptive::Batch<'a>>,
    /// The adaptive spacing (wider under a loaded budget).
    pub spacing: Duration,
    /// A number in `[0, 1)` for jitter.
    pub random: f64,
}

/// One `Arc` for equal label sets: the jobs of a watch file mostly carry
/// the same few, and a label map costs hundreds of bytes.
pub fn share_labels(pool: &mut HashMap<Labels, Arc<Labels>>, labels: &Labels) -> Arc<Labels> {
    if let Some(shared) = pool.get(labels) {
        return shared.clone();
    }
    let shared = Arc::new(labels.clone());
    pool.insert(labels.clone(), shared.clone());
    shared
}
