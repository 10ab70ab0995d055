//! The state store: one SQLite database, `state.dir/state.db`, in WAL mode.
//!
//! It remembers every tracked job (status, labels, counters, whether it is
//! finished) and the ids of announced sub-job events, so that a restart
//! resumes where the daemon stopped and announces nothing twice except a
//! fact whose recording a crash interrupted (then with the same
//! `event_id`). Writes come in batches, one transaction each, from the
//! scheduler through [`Writer`], a thread of its own, so the scheduler
//! never waits for the disk. A second daemon on the same directory is
//! refused by an exclusive lock on `state.dir/state.lock`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::job::id::JobId;
use crate::watch::Labels;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

const MIGRATIONS: &[&str] = &[
    // Version 1.
    "CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        status TEXT,
        job_type TEXT,
        tracked_since INTEGER NOT NULL,
        first_seen INTEGER,
        last_change INTEGER,
        last_poll INTEGER,
        next_poll INTEGER,
        polls INTEGER NOT NULL DEFAULT 0,
        transitions INTEGER NOT NULL DEFAULT 0,
        finished INTEGER NOT NULL DEFAULT 0,
        finished_at INTEGER,
        timeout_announced INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX jobs_finished ON jobs (finished, finished_at);
    CREATE TABLE announced (
        event_id TEXT PRIMARY KEY NOT NULL,
        job_id TEXT NOT NULL,
        event TEXT NOT NULL,
        at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX announced_job ON announced (job_id);
    CREATE TABLE durations (
        job_type TEXT NOT NULL,
        duration_ms INTEGER NOT NULL,
        finished_at INTEGER NOT NULL
    );
    CREATE INDEX durations_type ON durations (job_type, finished_at);",
    // Version 2: the webhook outbox (see `crate::output::webhook`). A fact is
    // queued once per sink, however often it is announced.
    "CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sink TEXT NOT NULL,
        event_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT
    );
    CREATE INDEX outbox_sink ON outbox (sink, id);
    CREATE UNIQUE INDEX outbox_fact ON outbox (sink, event_id);",
];

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory is missing, or not a directory.
    #[error("state directory {0} does not exist or is not a directory")]
    MissingDir(PathBuf),
    /// Another process holds the lock.
    #[error("state directory {0} is in use by another ecs-jobwatch (lock {0}/state.lock is held)")]
    Locked(PathBuf),
    /// A file system error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// SQLite refused.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// The database was written by a newer version.
    #[error(
        "state database {path} has schema version {found}, this build knows up to {SCHEMA_VERSION}"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
}

/// One job as recorded. Times are Unix milliseconds (wall clock, for
/// people and for restarts; the cadence itself runs on the monotonic
/// clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    /// The job.
    pub job_id: JobId,
    /// Its labels.
    pub labels: Labels,
    /// The last recorded status (`None`: never seen).
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

/// One change to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Insert or replace the whole row.
    Job(JobRecord),
    /// Only the poll counters (the cheap, batched write).
    Polled {
        /// The job.
        job_id: JobId,
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
        job_id: JobId,
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
    /// An event to deliver to a webhook sink, queued in the same
    /// transaction that records the fact; ignored when this sink already
    /// has this `event_id` queued.
    Outbox {
        /// The sink (its URL).
        sink: String,
        /// The event's `event_id`.
        event_id: String,
        /// The request body: the event's JSON line.
        body: String,
        /// When it was announced (Unix ms).
        created_at: i64,
    },
    /// A finished job's duration, for the adaptive cadence.
    Duration {
        /// Its `job_type`.
        job_type: String,
        /// How long it ran, in milliseconds.
        duration_ms: i64,
        /// When it finished.
        finished_at: i64,
    },
}

/// The opened store: the connection and the lock that guards it.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    _lock: Option<File>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// How many times (100 ms apart) a held lock is tried again before the
/// store is refused as in use.
const LOCK_ATTEMPTS: u32 = 10;

/// How much the start-up probe writes: enough to notice a full disk,
/// which an empty SQLite transaction would not.
const PROBE_BYTES: usize = 64 * 1024;

/// Writes, syncs and removes a small file, so that a read-only or full
/// file system is refused at start with a clear error instead of at the
/// first transition.
fn probe_writable(dir: &Path) -> Result<(), StateError> {
    use std::io::Write as _;
    let path = dir.join(".write-probe");
    let result = File::create(&path).and_then(|mut file| {
        file.write_all(&[0u8; PROBE_BYTES])?;
        file.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    result.map_err(|source| StateError::Io { path, source })
}

/// The path of the database in a state directory.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("state.db")
}

impl Store {
    /// Opens (creating if needed) the store in `dir` for the daemon: takes
    /// the lock, switches to WAL, migrates.
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        if !dir.is_dir() {
            return Err(StateError::MissingDir(dir.to_path_buf()));
        }
        let lock_path = dir.join("state.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StateError::Io {
                path: lock_path.clone(),
                source,
            })?;
        // A lock held for a moment longer (a previous daemon still exiting,
        // a forked child that has not reached exec yet) is waited for
        // briefly; a lock held by a running daemon is refused.
        let mut attempts = 0;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if attempts < LOCK_ATTEMPTS => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StateError::Locked(dir.to_path_buf()));
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(StateError::Io {
                        path: lock_path,
                        source,
                    });
                }
            }
        }
        probe_writable(dir)?;
        let path = db_path(dir);
        let sqlite = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sqlite)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        let mut store = Store {
            conn,
            path: path.clone(),
            _lock: Some(lock),
        };
        store.migrate()?;
        // Prove now, not at the first transition, that the disk takes writes.
        store
            .conn
            .execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .map_err(sqlite)?;
        Ok(store)
    }

    /// Opens the store read-only (for `status`), without the lock, while
    /// the daemon may be running.
    pub fn open_read_only(dir: &Path) -> Result<Store, StateError> {
        let path = db_path(dir);
        if !path.is_file() {
            return Err(StateError::MissingDir(dir.to_path_buf()));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StateError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let _ = conn.busy_timeout(Duration::from_secs(5));
        Ok(Store {
            conn,
            path,
            _lock: None,
        })
    }

    fn sqlite(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), StateError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| self.sqlite(e))?;
        if version > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path: self.path.clone(),
                found: version,
            });
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let next = index as i64 + 1;
            let tx = self.conn.transaction().map_err(|e| StateError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
            tx.execute_batch(migration)
                .and_then(|()| tx.pragma_update(None, "user_version", next))
                .and_then(|()| tx.commit())
                .map_err(|source| StateError::Sqlite {
                    path: self.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Every recorded job.
    pub fn load_jobs(&self) -> Result<Vec<JobRecord>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT job_id, labels, status, job_type, tracked_since, first_seen, last_change,
                        last_poll, next_poll, polls, transitions, finished, finished_at,
                        timeout_announced
                 FROM jobs ORDER BY job_id",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = statement
            .query_map([], |row| {
                let id: String = row.get(0)?;
                let labels: String = row.get(1)?;
                Ok((id, labels, row_tail(row)?))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut jobs = Vec::new();
        for row in rows {
            let (id, labels, tail) = row.map_err(|e| self.sqlite(e))?;
            // A row that does not hold a valid id can only come from a
            // foreign hand; skip it rather than refuse to start.
            let Ok(job_id) = JobId::parse(&id) else {
                continue;
            };
            let labels: Labels = serde_json::from_str(&labels).unwrap_or_default();
            jobs.push(tail.into_record(job_id, labels));
        }
        Ok(jobs)
    }

    /// The event ids announced for `job_id` (sub-job events).
    pub fn announced(&self, job_id: &JobId) -> Result<Vec<String>, StateError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT event_id FROM announced WHERE job_id = ?1 ORDER BY at")
            .map_err(|e| self.sqlite(e))?;
        let rows = statement
            .query_map([job_id.as_str()], |row| row.get(0))
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.sqlite(e))
    }

    /// Every announced event id of unfinished jobs, grouped by job.
    pub fn announced_for_unfinished(&self) -> Result<Vec<(JobId, String)>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT a.job_id, a.event_id FROM announced a JOIN jobs j ON j.job_id = a.job_id
                 WHERE j.finished = 0 ORDER BY a.job_id, a.at",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, event_id) = row.map_err(|e| self.sqlite(e))?;
            if let Ok(id) = JobId::parse(&id) {
                out.push((id, event_id));
            }
        }
        Ok(out)
    }

    /// One job's record.
    pub fn job(&self, job_id: &JobId) -> Result<Option<JobRecord>, StateError> {
        self.conn
            .query_row(
                "SELECT job_id, labels, status, job_type, tracked_since, first_seen, last_change,
                        last_poll, next_poll, polls, transitions, finished, finished_at,
                        timeout_announced
                 FROM jobs WHERE job_id = ?1",
                [job_id.as_str()],
                |row| {
                    let labels: String = row.get(1)?;
                    Ok((labels, row_tail(row)?))
                },
            )
            .optional()
            .map_err(|e| self.sqlite(e))
            .map(|found| {
                found.map(|(labels, tail)| {
                    tail.into_record(
                        job_id.clone(),
                        serde_json::from_str(&labels).unwrap_or_default(),
                    )
                })
            })
    }

    /// Recorded durations of finished jobs, per `job_type`, newest last,
    /// at most `per_type` each.
    pub fn durations(&self, per_type: usize) -> Result<Vec<(String, i64)>, StateError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT job_type, duration_ms FROM (
                    SELECT job_type, duration_ms, finished_at,
                           ROW_NUMBER() OVER (PARTITION BY job_type ORDER BY finished_at DESC) AS n
                    FROM durations)
                 WHERE n <= ?1 ORDER BY job_type, finished_at",
            )
            .map_err(|e| self.sqlite(e))?;
        let rows = statement
            .query_map([per_type as i64], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.sqlite(e))
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

    /// `PRAGMA integrity_check`: `ok` when the database is sound.
    pub fn integrity_check(&self) -> Result<String, StateError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .map_err(|e| self.sqlite(e))
    }
}

/// The columns after `labels`, read in one place.
struct Tail {
    status: Option<String>,
    job_type: Option<String>,
    tracked_since: i64,
    first_seen: Option<i64>,
    last_change: Option<i64>,
    last_poll: Option<i64>,
    next_poll: Option<i64>,
    polls: i64,
    transitions: i64,
    finished: bool,
    finished_at: Option<i64>,
    timeout_announced: bool,
}

fn row_tail(row: &rusqlite::Row<'_>) -> rusqlite::Result<Tail> {
    Ok(Tail {
        status: row.get(2)?,
        job_type: row.get(3)?,
        tracked_since: row.get(4)?,
        first_seen: row.get(5)?,
        last_change: row.get(6)?,
        last_poll: row.get(7)?,
        next_poll: row.get(8)?,
        polls: row.get(9)?,
        transitions: row.get(10)?,
        finished: row.get(11)?,
        finished_at: row.get(12)?,
        timeout_announced: row.get(13)?,
    })
}

impl Tail {
    fn into_record(self, job_id: JobId, labels: Labels) -> JobRecord {
        JobRecord {
            job_id,
            labels,
            status: self.status,
            job_type: self.job_type,
            tracked_since: self.tracked_since,
            first_seen: self.first_seen,
            last_change: self.last_change,
            last_poll: self.last_poll,
            next_poll: self.next_poll,
            polls: self.polls.max(0) as u64,
            transitions: self.transitions.clamp(0, i64::from(u32::MAX)) as u32,
            finished: self.finished,
            finished_at: self.finished_at,
            timeout_announced: self.timeout_announced,
        }
    }
}

fn forget(tx: &rusqlite::Transaction<'_>, cutoff_ms: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM announced WHERE job_id IN
            (SELECT job_id FROM jobs WHERE finished = 1 AND finished_at < ?1)",
        [cutoff_ms],
    )?;
    let forgotten = tx.execute(
        "DELETE FROM jobs WHERE finished = 1 AND finished_at < ?1",
        [cutoff_ms],
    )?;
    tx.execute(
        "DELETE FROM durations WHERE rowid IN (
            SELECT rowid FROM (
                SELECT rowid, ROW_NUMBER() OVER (PARTITION BY job_type ORDER BY finished_at DESC) AS n
                FROM durations) WHERE n > 1000)",
        [],
    )?;
    Ok(forgotten)
}

fn apply_one(tx: &rusqlite::Transaction<'_>, write: &Write) -> rusqlite::Result<()> {
    match write {
        Write::Job(record) => {
            let labels = serde_json::to_string(&record.labels).unwrap_or_else(|_| "{}".into());
            tx.prepare_cached(
                "INSERT INTO jobs (job_id, labels, status, job_type, tracked_since, first_seen,
                    last_change, last_poll, next_poll, polls, transitions, finished, finished_at,
                    timeout_announced)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT (job_id) DO UPDATE SET labels = excluded.labels,
                    status = excluded.status, job_type = excluded.job_type,
                    tracked_since = excluded.tracked_since, first_seen = excluded.first_seen,
                    last_change = excluded.last_change, last_poll = excluded.last_poll,
                    next_poll = excluded.next_poll, polls = excluded.polls,
                    transitions = excluded.transitions, finished = excluded.finished,
                    finished_at = excluded.finished_at,
                    timeout_announced = excluded.timeout_announced",
            )?
            .execute(params![
                record.job_id.as_str(),
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
            job_id,
            polls,
            last_poll,
            next_poll,
        } => {
            tx.prepare_cached(
                "UPDATE jobs SET polls = ?2, last_poll = ?3, next_poll = ?4 WHERE job_id = ?1",
            )?
            .execute(params![
                job_id.as_str(),
                *polls as i64,
                last_poll,
                next_poll
            ])?;
        }
        Write::Announced {
            job_id,
            event_id,
            event,
            at,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO announced (event_id, job_id, event, at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![event_id, job_id.as_str(), event, at])?;
        }
        Write::Forget { cutoff_ms } => {
            forget(tx, *cutoff_ms)?;
        }
        Write::Duration {
            job_type,
            duration_ms,
            finished_at,
        } => {
            tx.prepare_cached(
                "INSERT INTO durations (job_type, duration_ms, finished_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![job_type, duration_ms, finished_at])?;
        }
        Write::Outbox {
            sink,
            event_id,
            body,
            created_at,
        } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO outbox (sink, event_id, body, created_at, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![sink, event_id, body, created_at])?;
        }
    }
    Ok(())
}

/// The writer thread: applies batches in order, retries a batch that
/// failed (a full disk) until it succeeds, and says whether the store is
/// healthy so the scheduler can hold announcements back meanwhile.
pub struct Writer {
    sender: Option<mpsc::Sender<Vec<Write>>>,
    healthy: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(Store, Option<StateError>)>>,
}

/// How long a batch that fails is still retried once the daemon stops: a
/// full disk must not hold up the stop (the facts it held are announced
/// again, with the same `event_id`, after the next start).
const STOP_RETRY: Duration = Duration::from_secs(2);

/// What the writer reports about a failed batch (to be emitted as
/// `state.error`).
pub type ErrorHook = Box<dyn Fn(&StateError) + Send>;

/// Called after a batch that queued webhook deliveries was committed (wakes
/// the delivery tasks).
pub type OutboxHook = Box<dyn Fn() + Send>;

impl Writer {
    /// Starts the writer thread over `store`.
    pub fn start(store: Store, on_error: ErrorHook) -> Writer {
        Writer::start_with_outbox_hook(store, on_error, Box::new(|| {}))
    }

    /// Starts the writer thread over `store`; `on_outbox` is called after
    /// each committed batch that contained a [`Write::Outbox`].
    pub fn start_with_outbox_hook(
        mut store: Store,
        on_error: ErrorHook,
        on_outbox: OutboxHook,
    ) -> Writer {
        let (sender, receiver) = mpsc::channel::<Vec<Write>>();
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = healthy.clone();
        let closing = Arc::new(AtomicBool::new(false));
        let stop = closing.clone();
        let thread = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || {
                let mut failed = None;
                let mut stop_since: Option<std::time::Instant> = None;
                'batches: while let Ok(mut batch) = receiver.recv() {
                    // Merge what queued up meanwhile into one transaction.
                    while let Ok(more) = receiver.try_recv() {
                        batch.extend(more);
                    }
                    let queued = batch.iter().any(|w| matches!(w, Write::Outbox { .. }));
                    let mut delay = Duration::from_millis(100);
                    loop {
                        let started = std::time::Instant::now();
                        let applied = store.apply(&batch);
                        let seconds = started.elapsed().as_secs_f64();
                        ::metrics::histogram!(crate::telemetry::STATE_WRITE).record(seconds);
                        match applied {
                            Ok(()) => {
                                flag.store(true, Ordering::SeqCst);
                                if queued {
                                    on_outbox();
                                }
                                break;
                            }
                            Err(error) => {
                                if flag.swap(false, Ordering::SeqCst) {
                                    on_error(&error);
                                }
                                if stop.load(Ordering::SeqCst) {
                                    let since =
                                        *stop_since.get_or_insert_with(std::time::Instant::now);
                                    if since.elapsed() >= STOP_RETRY {
                                        failed = Some(error);
                                        break 'batches;
                                    }
                                }
                                // Sleep in short steps so a stop is noticed;
                                // once stopping, retry often for a short while.
                                let stopping = stop.load(Ordering::SeqCst);
                                let pause = if stopping {
                                    delay.min(Duration::from_millis(200))
                                } else {
                                    delay
                                };
                                let until = std::time::Instant::now() + pause;
                                while std::time::Instant::now() < until
                                    && stop.load(Ordering::SeqCst) == stopping
                                {
                                    std::thread::sleep(Duration::from_millis(50));
                                }
                                delay = (delay * 2).min(Duration::from_secs(5));
                            }
                        }
                    }
                }
                (store, failed)
            })
            .ok();
        Writer {
            sender: Some(sender),
            healthy,
            closing,
            thread,
        }
    }

    /// Queues a batch; never blocks.
    pub fn send(&self, batch: Vec<Write>) {
        if batch.is_empty() {
            return;
        }
        if let Some(sender) = &self.sender {
            let _ = sender.send(batch);
        }
    }

    /// False while the last batch could not be written.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// The shared health flag.
    pub fn health_flag(&self) -> Arc<AtomicBool> {
        self.healthy.clone()
    }

    /// Writes everything queued and returns the store (`None` if the
    /// thread is gone). A batch that still cannot be written
    /// [`STOP_RETRY`] after the stop is given up, with its error.
    pub fn finish(mut self) -> Result<Option<Store>, StateError> {
        self.closing.store(true, Ordering::SeqCst);
        self.sender = None;
        match self.thread.take().and_then(|thread| thread.join().ok()) {
            Some((_, Some(error))) => Err(error),
            Some((store, None)) => Ok(Some(store)),
            None => Ok(None),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> JobRecord {
        JobRecord {
            job_id: JobId::parse(id).unwrap(),
            labels: Labels::from([("team".to_string(), "x".to_string())]),
            status: Some("RUNNING".into()),
            job_type: Some("createServer".into()),
            tracked_since: 1,
            first_seen: Some(2),
            last_change: Some(3),
            last_poll: Some(4),
            next_poll: Some(5),
            polls: 6,
            transitions: 1,
            finished: false,
            finished_at: None,
            timeout_announced: false,
        }
    }

    #[test]
    fn round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let a = record("a");
        let mut b = record("b");
        b.finished = true;
        b.finished_at = Some(100);
        b.status = Some("SUCCESS".into());
        store
            .apply(&[
                Write::Job(a.clone()),
                Write::Job(b.clone()),
                Write::Polled {
                    job_id: a.job_id.clone(),
                    polls: 9,
                    last_poll: 10,
                    next_poll: None,
                },
                Write::Announced {
                    job_id: a.job_id.clone(),
                    event_id: "e1".into(),
                    event: "job.subjob_failed",
                    at: 7,
                },
                Write::Announced {
                    job_id: a.job_id.clone(),
                    event_id: "e1".into(),
                    event: "job.subjob_failed",
                    at: 8,
                },
                Write::Duration {
                    job_type: "createServer".into(),
                    duration_ms: 60_000,
                    finished_at: 100,
                },
            ])
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let jobs = store.load_jobs().unwrap();
        let mut expected_a = a.clone();
        expected_a.polls = 9;
        expected_a.last_poll = Some(10);
        expected_a.next_poll = None;
        assert_eq!(jobs, vec![expected_a, b.clone()]);
        assert_eq!(store.announced(&a.job_id).unwrap(), vec!["e1".to_string()]);
        assert_eq!(store.announced_for_unfinished().unwrap().len(), 1);
        assert_eq!(
            store.durations(10).unwrap(),
            vec![("createServer".to_string(), 60_000)]
        );
        assert_eq!(store.integrity_check().unwrap(), "ok");
        assert_eq!(store.job(&b.job_id).unwrap(), Some(b));
    }

    #[test]
    fn retention_forgets_old_finished_jobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let mut old = record("old");
        old.finished = true;
        old.finished_at = Some(10);
        let mut recent = record("recent");
        recent.finished = true;
        recent.finished_at = Some(1000);
        let running = record("running");
        store
            .apply(&[Write::Job(old), Write::Job(recent), Write::Job(running)])
            .unwrap();
        assert_eq!(store.forget_finished_before(500).unwrap(), 1);
        let ids: Vec<String> = store
            .load_jobs()
            .unwrap()
            .iter()
            .map(|j| j.job_id.to_string())
            .collect();
        assert_eq!(ids, vec!["recent", "running"]);
    }

    #[test]
    fn second_opener_is_refused_and_missing_dir_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StateError::Locked(_))
        ));
        // Readers do not need the lock.
        assert!(Store::open_read_only(dir.path()).is_ok());
        let missing = dir.path().join("nope");
        let error = Store::open(&missing).unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn writer_applies_in_order_and_returns_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let writer = Writer::start(store, Box::new(|_| {}));
        let mut a = record("a");
        writer.send(vec![Write::Job(a.clone())]);
        a.status = Some("SUCCESS".into());
        writer.send(vec![Write::Job(a.clone())]);
        assert!(writer.healthy());
        let store = writer.finish().unwrap().unwrap();
        assert_eq!(
            store.load_jobs().unwrap()[0].status.as_deref(),
            Some("SUCCESS")
        );
    }

    fn outbox(store: &Store) -> Vec<(String, String, String, i64, i64)> {
        let mut statement = store
            .conn
            .prepare(
                "SELECT sink, event_id, body, created_at, next_attempt_at FROM outbox ORDER BY id",
            )
            .unwrap();
        statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn queue(sink: &str, event_id: &str, body: &str, at: i64) -> Write {
        Write::Outbox {
            sink: sink.into(),
            event_id: event_id.into(),
            body: body.into(),
            created_at: at,
        }
    }

    #[test]
    fn outbox_queues_a_fact_once_per_sink() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .apply(&[
                Write::Job(record("a")),
                queue("s1", "e1", "{}", 10),
                queue("s2", "e1", "{}", 10),
                queue("s1", "e2", "{\"n\":2}", 11),
            ])
            .unwrap();
        // A re-announcement after a crash: same fact, later time.
        store
            .apply(&[queue("s1", "e1", "{\"again\":1}", 20)])
            .unwrap();
        assert_eq!(
            outbox(&store),
            vec![
                ("s1".into(), "e1".into(), "{}".into(), 10, 10),
                ("s2".into(), "e1".into(), "{}".into(), 10, 10),
                ("s1".into(), "e2".into(), "{\"n\":2}".into(), 11, 11),
            ]
        );
    }

    #[test]
    fn writer_calls_the_outbox_hook_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let db = db_path(dir.path());
        let (tell, told) = mpsc::channel();
        let writer = Writer::start_with_outbox_hook(
            store,
            Box::new(|_| {}),
            Box::new(move || {
                // Committed: another connection sees the row.
                let conn = Connection::open(&db).unwrap();
                let rows: i64 = conn
                    .query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))
                    .unwrap();
                tell.send(rows).unwrap();
            }),
        );
        writer.send(vec![Write::Job(record("a"))]);
        writer.send(vec![queue("s", "e", "{}", 1)]);
        writer.finish().unwrap();
        assert_eq!(told.try_iter().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn version_1_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(db_path(dir.path())).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        let version: i64 = store
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        store.apply(&[queue("s", "e", "{}", 1)]).unwrap();
        assert_eq!(outbox(&store).len(), 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(db_path(dir.path())).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            Store::open(dir.path()),
            Err(StateError::TooNew { found: 99, .. })
        ));
    }
}
