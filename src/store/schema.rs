//! The schema of `state.db` and its migrations, one per version, applied
//! in order at open (`PRAGMA user_version` says which are done). A
//! migration never loses a row: version 3 rebuilt the tables around the
//! identity (project, service, job id) and carried every job, announced
//! sub-job and duration over as ECS jobs of the default project.

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 3;

/// The migrations: entry `i` takes the database from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
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
    // Version 2: the outbox of the notification sinks (see
    // `crate::store::outbox`). A fact is queued once per sink, however
    // often it is announced.
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
    // Version 3: the job family. Outbox rows also keep where their sink
    // delivers (a webhook's URL, a topic's URN), which a sink removed from
    // the configuration no longer says. A job is identified by (project, service,
    // job id); every existing row is an ECS job of the default project.
    // Durations are kept per service, job type and phase (a whole job, or a
    // batch's tail after its last sub-job), with where they came from (the
    // server's times, or our sightings). A job row keeps the JSON
    // line of its last `job.transition` or `job.not_found` (for `status JOB`
    // and `wait`).
    "CREATE TABLE jobs_v3 (
        project TEXT NOT NULL,
        service TEXT NOT NULL,
        job_id TEXT NOT NULL,
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
        timeout_announced INTEGER NOT NULL DEFAULT 0,
        last_event TEXT,
        PRIMARY KEY (project, service, job_id)
    ) WITHOUT ROWID;
    INSERT INTO jobs_v3 (project, service, job_id, labels, status, job_type, tracked_since,
        first_seen, last_change, last_poll, next_poll, polls, transitions, finished,
        finished_at, timeout_announced)
    SELECT 'default', 'ecs', job_id, labels, status, job_type, tracked_since, first_seen,
        last_change, last_poll, next_poll, polls, transitions, finished, finished_at,
        timeout_announced
    FROM jobs;
    DROP TABLE jobs;
    ALTER TABLE jobs_v3 RENAME TO jobs;
    CREATE INDEX jobs_finished ON jobs (finished, finished_at);
    ALTER TABLE announced ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE announced ADD COLUMN service TEXT NOT NULL DEFAULT 'ecs';
    DROP INDEX announced_job;
    CREATE INDEX announced_job ON announced (project, service, job_id);
    ALTER TABLE durations ADD COLUMN service TEXT NOT NULL DEFAULT 'ecs';
    ALTER TABLE durations ADD COLUMN phase TEXT NOT NULL DEFAULT 'whole';
    ALTER TABLE durations ADD COLUMN source TEXT NOT NULL DEFAULT 'sighting';
    DROP INDEX durations_type;
    CREATE INDEX durations_type ON durations (service, job_type, phase, finished_at);
    ALTER TABLE outbox ADD COLUMN target TEXT;",
];
