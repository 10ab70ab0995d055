//! The rows of `state.db` about jobs: one record per job, the announced
//! sub-job failures, the durations of finished jobs, and the batch of
//! writes the scheduler sends. Every job row is keyed by (project,
//! service, job id).

use rusqlite::{OptionalExtension, Transaction, params};

use super::{StateError, Store, outbox};
use crate::job::{JobId, JobKey, Labels, ProjectName, Service};
use crate::policy::adaptive::Phase;
use crate::policy::server_time::Source;

/// One job as recorded. Times are Unix milliseconds (wall clock, for
/// people and for restarts; the cadence itself runs on the monotonic
/// clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    /// The job.
    pub key: JobKey,
    /// Its labels.
    pub labels: Labels,
    /// The last recorded status, in the common vocabulary (`None`: never
    /// seen).
    pub status: Option<String>,
    /// `job_type`, once seen.
    pub job_type: Option<String>,
    /// When tracking started.
    pub tracked_since: i64,
    /// When the job first answered.
    pub first_seen: Option<i64>,
    /// When the status last changed.
    pub last_change: Option<i64>,
    /// When it was last polled.
    pub last_poll: Option<i64>,
    /// When the next poll is planned.
    pub next_poll: Option<i64>,
    /// How many polls so far.
    pub polls: u64,
    /// How many transitions were recorded.
    pub transitions: u32,
    /// SUCCESS, FAIL, or announced as not found: never polled again.
    pub finished: bool,
    /// When it finished.
    pub finished_at: Option<i64>,
    /// Whether `job.timeout` was recorded.
    pub timeout_announced: bool,
}

/// One finished job's duration, for the adaptive cadence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationRow {
    /// The job's service.
    pub service: Service,
    /// Its `job_type`.
    pub job_type: String,
    /// The whole job, or a batch's tail.
    pub phase: Phase,
    /// Where the duration came from.
    pub source: Source,
    /// How long it ran, in milliseconds.
    pub duration_ms: i64,
}

/// One change to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Insert or replace the whole row.
    Job(JobRecord),
    /// Only the poll counters (the cheap, batched write).
    Polled {
        /// The job.
        key: JobKey,
        /// Total polls.
        polls: u64,
        /// When.
        last_poll: i64,
        /// Next planned poll.
        next_poll: Option<i64>,
    },
    /// An announced event that is not captured by the job row.
    Announced {
        /// The job.
        key: JobKey,
        /// The event's `event_id`.
        event_id: String,
        /// The event name.
        event: &'static str,
        /// When.
        at: i64,
    },
    /// Forget finished jobs that finished before this Unix millisecond.
    Forget {
        /// The cutoff.
        cutoff_ms: i64,
    },
    /// An event to deliver to a sink, queued in the same transaction that
    /// records the fact; ignored when this sink already has this
    /// `event_id` queued (see [`outbox`]).
    Outbox(outbox::Queued),
    /// The JSON line of a job's latest `job.transition` or
    /// `job.not_found` (kept apart from the record, which never carries
    /// it, so the scheduler holds no copy in memory).
    LastEvent {
        /// The job.
        key: JobKey,
        /// The event's JSON line.
        json: String,
    },
    /// A finished job's duration.
    Duration {
        /// The duration.
        row: DurationRow,
        /// When the job finished.
        finished_at: i64,
    },
}

const COLUMNS: &str = "project, service, job_id, labels, status, job_type, tracked_since,
    first_seen, last_change, last_poll, next_poll, polls, transitions, finished, finished_at,
    timeout_announced";

/// A row's job key, or `None` for a row no valid key can come from (only
/// a foreign hand writes those; they are skipped rather than refused).
fn key_of(project: &str, service: &str, job_id: &str) -> Option<JobKey> {
    Some(JobKey {
        project: ProjectName::parse(project).ok()?,
        service: Service::parse(service)?,
        id: JobId::parse(job_id).ok()?,
    })
}

fn record_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<JobRecord>> {
    let project: String = row.get(0)?;
    let service: String = row.get(1)?;
    let job_id: String = row.get(2)?;
    let labels: String = row.get(3)?;
    let Some(key) = key_of(&project, &service, &job_id) else {
        return Ok(None);
    };
    Ok(Some(JobRecord {
        key,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        status: row.get(4)?,
        job_type: row.get(5)?,
        tracked_since: row.get(6)?,
        first_seen: row.get(7)?,
        last_change: row.get(8)?,
        last_poll: row.get(9)?,
        next_poll: row.get(10)?,
        polls: row.get::<_, i64>(11)?.max(0) as u64,
        transitions: row.get::<_, i64>(12)?.clamp(0, i64::from(u32::MAX)) as u32,
        finished: row.get(13)?,
        finished_at: row.get(14)?,
        timeout_announced: row.get(15)?,
    }))
}

fn key_params(key: &JobKey) -> [&str; 3] {
    [key.project.as_str(), key.service.as_str(), key.id.as_str()]
}

impl Store {
    /// Every recorded job.
    pub fn load_jobs(&self) -> Result<Vec<JobRecord>, StateError> {
        let sql = format!("SELECT {COLUMNS} FROM jobs ORDER BY project, service, job_id");
        let mut statement = self.conn.prepare(&sql).map_err(|e| self.sqlite(e))?;
        let rows = statement
            .query_map([], record_of)
            .map_err(|e| self.sqlite(e))?;
        let mut jobs = Vec::new();
        for row in rows {
            if let Some(record) = row.map_err(|e| self.sqlite(e))? {
                jobs.push(record);
            }
        }
        Ok(jobs)
    }

    /// One job's record.
    pub fn job(&self, key: &JobKey) -> Result<Option<JobRecord>, StateError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE project = ?1 AND service = ?2 AND job_id = ?3"
        );
        self.conn
            .query_row(&sql, key_params(key), record_of)
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.sqlite(e))
    }

    /// The JSON line of a job's latest `job.transition` or `job.not_found`.
    pub fn last_event(&self, key: &JobKey) -> Result<Option<String>, StateError> {
        self.conn
            .query_row(
                "SELECT last_event FROM jobs WHERE project = ?1 AND service = ?2 AND job_id = ?3",
                key_params(key),
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.sqlite(e))
    }

    /// The event ids announced for a job (sub-job events), oldest first.
    pub fn announced(&self, key: &JobKey) -> Result<Vec<String>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT event_id FROM announced WHERE project = ?1 AND service = ?2 AND job_id = ?3
                 ORDER BY at",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = statement
            .query_map(key_params(key), |row| row.get(0))
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.sqlite(e))
    }

    /// Every announced event id of unfinished jobs, with its job.
    pub fn announced_for_unfinished(&self) -> Result<Vec<(JobKey, String)>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT a.project, a.service, a.job_id, a.event_id FROM announced a
                 JOIN jobs j ON j.project = a.project AND j.service = a.service
                    AND j.job_id = a.job_id
                 WHERE j.finished = 0 ORDER BY a.project, a.service, a.job_id, a.at",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (project, service, job_id, event_id) = row.map_err(|e| self.sqlite(e))?;
            if let Some(key) = key_of(&project, &service, &job_id) {
                out.push((key, event_id));
            }
        }
        Ok(out)
    }

    /// Recorded durations of finished jobs, per service and `job_type`,
    /// oldest first, at most `per_type` (the newest) of each.
    pub fn durations(&self, per_type: usize) -> Result<Vec<DurationRow>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT service, job_type, phase, source, duration_ms FROM (
                    SELECT service, job_type, phase, source, duration_ms, finished_at,
                           ROW_NUMBER() OVER (PARTITION BY service, job_type, phase
                                              ORDER BY finished_at DESC) AS n
                    FROM durations)
                 WHERE n <= ?1 ORDER BY service, job_type, phase, finished_at",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = statement
            .query_map([per_type as i64], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (service, job_type, phase, source, duration_ms) =
                row.map_err(|e| self.sqlite(e))?;
            if let Some(service) = Service::parse(&service) {
                out.push(DurationRow {
                    service,
                    job_type,
                    phase: Phase::parse(&phase),
                    source: Source::parse(&source),
                    duration_ms,
                });
            }
        }
        Ok(out)
    }

    /// Applies a batch in one transaction: all of it or none of it.
    pub fn apply(&mut self, batch: &[Write]) -> Result<(), StateError> {
        let path = self.path.clone();
        let sqlite = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sqlite)?;
        for write in batch {
            apply_one(&tx, write).map_err(sqlite)?;
        }
        tx.commit().map_err(sqlite)
    }

    /// Forgets finished jobs that finished before `cutoff_ms`, and old
    /// durations beyond the newest 1,000 per type. Returns how many jobs.
    pub fn forget_finished_before(&mut self, cutoff_ms: i64) -> Result<usize, StateError> {
        let path = self.path.clone();
        let sqlite = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sqlite)?;
        let forgotten = forget(&tx, cutoff_ms).map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        Ok(forgotten)
    }
}

fn forget(tx: &Transaction<'_>, cutoff_ms: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM announced WHERE (project, service, job_id) IN
            (SELECT project, service, job_id FROM jobs WHERE finished = 1 AND finished_at < ?1)",
        [cutoff_ms],
    )?;
    let forgotten = tx.execute(
        "DELETE FROM jobs WHERE finished = 1 AND finished_at < ?1",
        [cutoff_ms],
    )?;
    tx.execute(
        "DELETE FROM durations WHERE rowid IN (
            SELECT rowid FROM (
                SELECT rowid, ROW_NUMBER() OVER (PARTITION BY service, job_type, phase
                                                 ORDER BY finished_at DESC) AS n
                FROM durations) WHERE n > 1000)",
        [],
    )?;
    Ok(forgotten)
}

fn apply_one(tx: &Transaction<'_>, write: &Write) -> rusqlite::Result<()> {
    match write {
        Write::Job(record) => {
            let labels = serde_json::to_string(&record.labels).unwrap_or_else(|_| "{}".into());
            let [project, service, job_id] = key_params(&record.key);
            tx.prepare_cached(&format!(
                "INSERT INTO jobs ({COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                 ON CONFLICT (project, service, job_id) DO UPDATE SET labels = excluded.labels,
                    status = excluded.status, job_type = excluded.job_type,
                    tracked_since = excluded.tracked_since, first_seen = excluded.first_seen,
                    last_change = excluded.last_change, last_poll = excluded.last_poll,
                    next_poll = excluded.next_poll, polls = excluded.polls,
                    transitions = excluded.transitions, finished = excluded.finished,
                    finished_at = excluded.finished_at,
                    timeout_announced = excluded.timeout_announced"
            ))?
            .execute(params![
                project,
                service,
                job_id,
                labels,
                record.status,
                record.job_type,
                record.tracked_since,
                record.first_seen,
                record.last_change,
                record.last_poll,
                record.next_poll,
                record.polls as i64,
                i64::from(record.transitions),
                record.finished,
                record.finished_at,
                record.timeout_announced,
            ])?;
        }
        Write::Polled {
            key,
            polls,
            last_poll,
            next_poll,
        } => {
            let [project, service, job_id] = key_params(key);
            tx.prepare_cached(
                "UPDATE jobs SET polls = ?4, last_poll = ?5, next_poll = ?6
                 WHERE project = ?1 AND service = ?2 AND job_id = ?3",
            )?
            .execute(params![
                project,
                service,
                job_id,
                *polls as i64,
                last_poll,
                next_poll
            ])?;
        }
        Write::Announced {
            key,
            event_id,
            event,
            at,
        } => {
            let [project, service, job_id] = key_params(key);
            tx.prepare_cached(
                "INSERT OR IGNORE INTO announced (event_id, project, service, job_id, event, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![event_id, project, service, job_id, event, at])?;
        }
        Write::Forget { cutoff_ms } => {
            forget(tx, *cutoff_ms)?;
        }
        Write::Duration { row, finished_at } => {
            tx.prepare_cached(
                "INSERT INTO durations (service, job_type, phase, source, duration_ms, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                row.service.as_str(),
                row.job_type,
                row.phase.as_str(),
                row.source.as_str(),
                row.duration_ms,
                finished_at
            ])?;
        }
        Write::LastEvent { key, json } => {
            let [project, service, job_id] = key_params(key);
            tx.prepare_cached(
                "UPDATE jobs SET last_event = ?4 WHERE project = ?1 AND service = ?2 AND job_id = ?3",
            )?
            .execute(params![project, service, job_id, json])?;
        }
        Write::Outbox(queued) => outbox::queue(tx, queued)?,
    }
    Ok(())
}
