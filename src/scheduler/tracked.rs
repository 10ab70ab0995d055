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
    /// When the job was first seen doing work (any status but
    /// PENDING_PAYMENT): the origin of the adaptive cadence and of the
    /// recorded duration, monotonic and wall (Unix ms).
    pub active_since: Option<(Instant, i64)>,
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
            active_since: None,
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
            // since its first sighting.
            active_since: match &status {
                Some(Status::PendingPayment) | None => None,
                Some(_) => record.first_seen.map(|ms| (ago(Some(ms)), ms)),
            },
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
    /// past their deadline are placed adaptively.
    pub fn cadence_gap(
        &self,
        key: &JobKey,
        cadence: &Cadence,
        history: Option<&History>,
        now: Instant,
        random: f64,
    ) -> Duration {
        let elapsed = now.saturating_duration_since(self.status_since);
        let situation = match &self.status {
            Some(status) => Situation::Status(status),
            None => Situation::NotYetVisible,
        };
        if let (Some(history), Some(status), Some((active, _))) =
            (history, &self.status, self.active_since)
            && !matches!(status, Status::PendingPayment)
            && !status.is_final()
            && !cadence::timed_out(cadence, status, elapsed)
            && let Some(gap) = adaptive::next_gap(
                history,
                cadence,
                self.job_type
                    .as_deref()
                    .map(|job_type| history_key(key, job_type))
                    .as_deref(),
                now.saturating_duration_since(active),
                random,
            )
        {
            return gap;
        }
        cadence::next_gap(cadence, situation, self.streak.max(1), elapsed, random)
    }
}

/// The key of a job type in the adaptive history: a CCE `CreateCluster`
/// is not an ECS `createServer`, so the service is part of it (ECS types
/// keep their bare name).
pub fn history_key(key: &JobKey, job_type: &str) -> String {
    match key.service {
        crate::job::Service::Ecs => job_type.to_string(),
        service => format!("{service}:{job_type}"),
    }
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
