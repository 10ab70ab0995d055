//! Every event of the contract, as typed values: names, levels, fields,
//! and the stable `event_id` of each fact.
//!
//! An [`Event`] is built by the constructors below, carries its fields as
//! typed values (a status is a [`Status`], labels a map, ids a list), and
//! is turned into text exactly once, by [`crate::output::render`], when it
//! is announced: the same JSON text goes to stdout and to the outbox of
//! every sink. Nothing parses an event back. Alert rules match on `event`
//! and the fields, never on `message`.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::job::{JobKey, Labels, Service, Status};
use crate::policy::error_lines::ApiErrorReport;

/// `job.transition`: the status differs from the last one recorded.
pub const JOB_TRANSITION: &str = "job.transition";
/// `job.subjob_failed`: a sub-job is seen in FAIL for the first time.
pub const JOB_SUBJOB_FAILED: &str = "job.subjob_failed";
/// `job.timeout`: INIT/RUNNING for longer than `poll.job_timeout`.
pub const JOB_TIMEOUT: &str = "job.timeout";
/// `job.not_found`: never seen and still unknown after the grace, or vanished.
pub const JOB_NOT_FOUND: &str = "job.not_found";
/// `api.error`: the API could not be used (rate-limited lines).
pub const API_ERROR: &str = "api.error";
/// `notify.dropped`: a delivery to a sink gave up.
pub const NOTIFY_DROPPED: &str = "notify.dropped";
/// `daemon.started`.
pub const DAEMON_STARTED: &str = "daemon.started";
/// `daemon.reloaded`.
pub const DAEMON_RELOADED: &str = "daemon.reloaded";
/// `daemon.reload_failed`.
pub const DAEMON_RELOAD_FAILED: &str = "daemon.reload_failed";
/// `daemon.stopping`.
pub const DAEMON_STOPPING: &str = "daemon.stopping";
/// Extension: a line of a watch file was skipped, or a file could not be read.
pub const WATCH_PROBLEM: &str = "watch.problem";
/// Extension: the state store could not be written; announcements wait.
pub const STATE_ERROR: &str = "state.error";
/// Extension: a warning about credentials (for example file permissions).
pub const CREDENTIALS_WARNING: &str = "credentials.warning";
/// Extension: the metrics listener is bound.
pub const METRICS_LISTENING: &str = "metrics.listening";
/// A line from a library (rustls, hyper, ...), not an event of ours.
pub const LOG: &str = "log";

/// Every event name this build emits, in the README's order (the journal's
/// `MESSAGE_ID` table and the metrics' label set follow it).
pub const NAMES: [&str; 14] = [
    JOB_TRANSITION,
    JOB_SUBJOB_FAILED,
    JOB_TIMEOUT,
    JOB_NOT_FOUND,
    API_ERROR,
    NOTIFY_DROPPED,
    DAEMON_STARTED,
    DAEMON_RELOADED,
    DAEMON_RELOAD_FAILED,
    DAEMON_STOPPING,
    WATCH_PROBLEM,
    STATE_ERROR,
    CREDENTIALS_WARNING,
    METRICS_LISTENING,
];

/// The severity of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something needs attention.
    Warn,
    /// For the record.
    Info,
    /// Detail for debugging.
    Debug,
}

impl Level {
    /// The contract's name: `ERROR`, `WARN`, `INFO`, `DEBUG`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }

    /// The syslog priority: 3, 4, 6, 7.
    pub fn priority(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug => 7,
        }
    }
}

/// The job an event is about, and what every job event says of it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRef {
    /// Project, service and job id.
    pub key: JobKey,
    /// The project id of the project.
    pub project_id: Arc<str>,
    /// The project's region, when known.
    pub region: Option<Arc<str>>,
    /// The job's labels.
    pub labels: Arc<Labels>,
}

/// One event, ready to be announced.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// INFO, WARN or ERROR.
    pub level: Level,
    /// A human sentence.
    pub message: String,
    /// What happened, with its fields.
    pub kind: Kind,
}

/// What an event says, by event name.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// `job.transition`.
    Transition(Box<Transition>),
    /// `job.subjob_failed`.
    SubjobFailed(Box<SubjobFailed>),
    /// `job.timeout`.
    Timeout(Box<Timeout>),
    /// `job.not_found`.
    NotFound(Box<NotFound>),
    /// `api.error`.
    ApiError(ApiErrorReport),
    /// `notify.dropped`.
    NotifyDropped(NotifyDropped),
    /// `daemon.*`.
    Lifecycle(Lifecycle),
    /// The extensions with one text field: `watch.problem`, `state.error`,
    /// `credentials.warning`, `metrics.listening`.
    Note {
        /// The event name.
        name: &'static str,
        /// The field's name.
        field: &'static str,
        /// Its value.
        value: String,
    },
}

/// The fields of `job.transition`.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The job.
    pub job: JobRef,
    /// The new status.
    pub status: Status,
    /// The status word as the service sent it.
    pub service_status: String,
    /// The last recorded status (`None` at the first sighting).
    pub previous: Option<Status>,
    /// The operation.
    pub job_type: Option<String>,
    /// When the job began, as sent.
    pub begin_time: Option<String>,
    /// When it ended, as sent.
    pub end_time: Option<String>,
    /// The error code of a failed job.
    pub error_code: Option<String>,
    /// Why it failed.
    pub fail_reason: Option<String>,
    /// What the job made or changed.
    pub resource_ids: Vec<String>,
    /// Server ids (ECS and BMS).
    pub server_ids: Vec<String>,
    /// `sub_jobs_total`, when the service says it.
    pub sub_jobs_total: Option<u64>,
    /// Sub-jobs in FAIL.
    pub sub_jobs_failed: u64,
    /// The fact's id.
    pub event_id: String,
}

/// The fields of `job.subjob_failed`.
#[derive(Clone, Debug, PartialEq)]
pub struct SubjobFailed {
    /// The job.
    pub job: JobRef,
    /// The sub-job's own id.
    pub sub_job_id: Option<String>,
    /// The server it made.
    pub server_id: Option<String>,
    /// The NIC it made.
    pub nic_id: Option<String>,
    /// Its error code.
    pub error_code: Option<String>,
    /// Why it failed.
    pub fail_reason: Option<String>,
    /// What it made or changed.
    pub resource_ids: Vec<String>,
    /// The fact's id.
    pub event_id: String,
}

/// The fields of `job.timeout`.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeout {
    /// The job.
    pub job: JobRef,
    /// Its status.
    pub status: Status,
    /// How long it has had that status.
    pub elapsed_s: u64,
    /// The fact's id.
    pub event_id: String,
}

/// The fields of `job.not_found`.
#[derive(Clone, Debug, PartialEq)]
pub struct NotFound {
    /// The job.
    pub job: JobRef,
    /// The last status seen (`None`: never seen).
    pub last_status: Option<Status>,
    /// The fact's id.
    pub event_id: String,
}

/// The fields of `notify.dropped`.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyDropped {
    /// The sink's name.
    pub sink: String,
    /// Where it delivers: a webhook URL or an SMN topic URN.
    pub url: String,
    /// The event given up.
    pub event_id: String,
    /// How often it was tried.
    pub attempts: u64,
    /// The last error.
    pub error: String,
}

/// The fields of the `daemon.*` events.
#[derive(Clone, Debug, PartialEq)]
pub struct Lifecycle {
    /// Which one.
    pub name: &'static str,
    /// Jobs being polled.
    pub jobs_tracked: usize,
    /// What went wrong (`daemon.reload_failed`).
    pub error: Option<String>,
}

impl Event {
    /// The event name.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            Kind::Transition(_) => JOB_TRANSITION,
            Kind::SubjobFailed(_) => JOB_SUBJOB_FAILED,
            Kind::Timeout(_) => JOB_TIMEOUT,
            Kind::NotFound(_) => JOB_NOT_FOUND,
            Kind::ApiError(_) => API_ERROR,
            Kind::NotifyDropped(_) => NOTIFY_DROPPED,
            Kind::Lifecycle(lifecycle) => lifecycle.name,
            Kind::Note { name, .. } => name,
        }
    }

    /// The `event_id`, for the events that carry one (job events).
    pub fn event_id(&self) -> Option<&str> {
        match &self.kind {
            Kind::Transition(t) => Some(&t.event_id),
            Kind::SubjobFailed(s) => Some(&s.event_id),
            Kind::Timeout(t) => Some(&t.event_id),
            Kind::NotFound(n) => Some(&n.event_id),
            _ => None,
        }
    }

    /// The job a job event is about.
    pub fn job(&self) -> Option<&JobRef> {
        match &self.kind {
            Kind::Transition(t) => Some(&t.job),
            Kind::SubjobFailed(s) => Some(&s.job),
            Kind::Timeout(t) => Some(&t.job),
            Kind::NotFound(n) => Some(&n.job),
            _ => None,
        }
    }

    /// The new status of a `job.transition`.
    pub fn status(&self) -> Option<&Status> {
        match &self.kind {
            Kind::Transition(t) => Some(&t.status),
            _ => None,
        }
    }
}

/// A stable id for one fact: the first 128 bits of SHA-256 over its parts,
/// in hex. The same fact always gets the same id, across restarts.
pub fn fact_id(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    hex::encode(&digest[..16])
}

/// The id of a fact about a job: `event` and the job, then `parts`. An ECS
/// job of the default project hashes exactly as before projects and
/// services existed (so an upgrade re-announces nothing); every other job
/// hashes its project and service in as well, so equal job ids of two
/// services never collide.
fn job_fact_id(event: &str, key: &JobKey, parts: &[&str]) -> String {
    let mut all: Vec<&str> = Vec::with_capacity(parts.len() + 4);
    all.push(event);
    if !(key.project.is_default() && key.service == Service::Ecs) {
        all.push(key.project.as_str());
        all.push(key.service.as_str());
    }
    all.push(key.id.as_str());
    all.extend_from_slice(parts);
    fact_id(&all)
}

/// The level of a transition into `status`.
pub fn transition_level(status: &Status) -> Level {
    match status {
        Status::Fail => Level::Error,
        Status::PendingPayment => Level::Warn,
        _ => Level::Info,
    }
}

/// `jobs` with the right plural: "1 job", "3 jobs".
pub fn jobs(count: usize) -> String {
    if count == 1 {
        "1 job".to_string()
    } else {
        format!("{count} jobs")
    }
}

/// What a transition needs beyond the job and the answer.
#[derive(Clone, Copy, Debug)]
pub struct TransitionContext<'a> {
    /// The last recorded status (`None` at the first sighting).
    pub previous: Option<&'a Status>,
    /// How many transitions of this job were recorded before this one;
    /// part of the fact, so a status that comes back is a new fact.
    pub sequence: u32,
}

/// `job.transition`.
pub fn job_transition(
    job: JobRef,
    context: TransitionContext<'_>,
    view: &crate::job::JobView,
) -> Event {
    let status = view.status.clone();
    let sequence = context.sequence.to_string();
    let previous = context.previous.map(Status::as_str).unwrap_or("");
    let event_id = job_fact_id(
        JOB_TRANSITION,
        &job.key,
        &[previous, status.as_str(), &sequence],
    );
    let message = match context.previous {
        Some(previous) => format!("job {} is now {status} (was {previous})", job.key),
        None => format!("job {} is {status}", job.key),
    };
    Event {
        level: transition_level(&status),
        message,
        kind: Kind::Transition(Box::new(Transition {
            job,
            status,
            service_status: view.service_status.clone(),
            previous: context.previous.cloned(),
            job_type: view.job_type.clone(),
            begin_time: view.begin_time.clone(),
            end_time: view.end_time.clone(),
            error_code: view.error_code.clone(),
            fail_reason: view.fail_reason.clone(),
            resource_ids: view.resource_ids.clone(),
            server_ids: view.server_ids.clone(),
            sub_jobs_total: view.sub_jobs_total,
            sub_jobs_failed: view.sub_jobs_failed() as u64,
            event_id,
        })),
    }
}

/// The `event_id` of a sub-job's failure: the same for the same sub-job
/// of the same job, whenever it is seen.
pub fn subjob_failed_id(key: &JobKey, sub_job_key: &str) -> String {
    job_fact_id(JOB_SUBJOB_FAILED, key, &[sub_job_key])
}

/// `job.subjob_failed`.
pub fn job_subjob_failed(job: JobRef, sub_job: &crate::job::SubJobView) -> Event {
    let event_id = subjob_failed_id(&job.key, &sub_job.key);
    let message = match &sub_job.fail_reason {
        Some(reason) => format!(
            "sub-job {} of job {} failed: {reason}",
            sub_job.key, job.key
        ),
        None => format!("sub-job {} of job {} failed", sub_job.key, job.key),
    };
    Event {
        level: Level::Error,
        message,
        kind: Kind::SubjobFailed(Box::new(SubjobFailed {
            job,
            sub_job_id: sub_job.job_id.clone(),
            server_id: sub_job.server_id.clone(),
            nic_id: sub_job.nic_id.clone(),
            error_code: sub_job.error_code.clone(),
            fail_reason: sub_job.fail_reason.clone(),
            resource_ids: sub_job.resource_ids.clone(),
            event_id,
        })),
    }
}

/// `job.timeout`.
pub fn job_timeout(job: JobRef, status: &Status, elapsed_s: u64) -> Event {
    let event_id = job_fact_id(JOB_TIMEOUT, &job.key, &[]);
    let message = format!(
        "job {} has been {status} for {elapsed_s} s, longer than poll.job_timeout",
        job.key
    );
    Event {
        level: Level::Error,
        message,
        kind: Kind::Timeout(Box::new(Timeout {
            job,
            status: status.clone(),
            elapsed_s,
            event_id,
        })),
    }
}

/// `job.not_found`.
pub fn job_not_found(job: JobRef, last_status: Option<&Status>) -> Event {
    let last = last_status.map(Status::as_str).unwrap_or("");
    let event_id = job_fact_id(JOB_NOT_FOUND, &job.key, &[last]);
    let message = match last_status {
        Some(status) => format!("job {} vanished while {status}; tracking ends", job.key),
        None => format!("job {} was never found; tracking ends", job.key),
    };
    Event {
        level: Level::Error,
        message,
        kind: Kind::NotFound(Box::new(NotFound {
            job,
            last_status: last_status.cloned(),
            event_id,
        })),
    }
}

/// `api.error`: ERROR for `auth`, else WARN.
pub fn api_error(report: &ApiErrorReport) -> Event {
    let level = if report.error_type == "auth" {
        Level::Error
    } else {
        Level::Warn
    };
    let message = if report.count > 1 {
        format!(
            "{} API errors of type {}; latest: {}",
            report.count, report.error_type, report.detail
        )
    } else {
        format!("API error of type {}: {}", report.error_type, report.detail)
    };
    Event {
        level,
        message,
        kind: Kind::ApiError(report.clone()),
    }
}

/// `notify.dropped`.
pub fn notify_dropped(sink: &str, url: &str, event_id: &str, attempts: u64, error: &str) -> Event {
    Event {
        level: Level::Error,
        message: format!(
            "gave up delivering event {event_id} to {sink} ({url}) after {attempts} attempts: {error}"
        ),
        kind: Kind::NotifyDropped(NotifyDropped {
            sink: sink.to_string(),
            url: url.to_string(),
            event_id: event_id.to_string(),
            attempts,
            error: error.to_string(),
        }),
    }
}

fn lifecycle(name: &'static str, level: Level, message: String, jobs_tracked: usize) -> Event {
    Event {
        level,
        message,
        kind: Kind::Lifecycle(Lifecycle {
            name,
            jobs_tracked,
            error: None,
        }),
    }
}

/// `daemon.started`.
pub fn daemon_started(jobs_tracked: usize) -> Event {
    let message = format!(
        "ecs-jobwatch {} started, tracking {}",
        env!("CARGO_PKG_VERSION"),
        jobs(jobs_tracked)
    );
    lifecycle(DAEMON_STARTED, Level::Info, message, jobs_tracked)
}

/// `daemon.reloaded`.
pub fn daemon_reloaded(jobs_tracked: usize) -> Event {
    let message = format!("configuration reloaded, tracking {}", jobs(jobs_tracked));
    lifecycle(DAEMON_RELOADED, Level::Info, message, jobs_tracked)
}

/// `daemon.reload_failed`: the old configuration stays in force.
pub fn daemon_reload_failed(jobs_tracked: usize, error: &str) -> Event {
    let message = format!("reload failed, the previous configuration stays in force: {error}");
    let mut event = lifecycle(DAEMON_RELOAD_FAILED, Level::Error, message, jobs_tracked);
    if let Kind::Lifecycle(lifecycle) = &mut event.kind {
        lifecycle.error = Some(error.to_string());
    }
    event
}

/// `daemon.stopping`.
pub fn daemon_stopping(jobs_tracked: usize) -> Event {
    let message = "ecs-jobwatch is stopping".to_string();
    lifecycle(DAEMON_STOPPING, Level::Info, message, jobs_tracked)
}

fn note(
    name: &'static str,
    level: Level,
    field: &'static str,
    value: &str,
    message: String,
) -> Event {
    Event {
        level,
        message,
        kind: Kind::Note {
            name,
            field,
            value: value.to_string(),
        },
    }
}

/// `watch.problem` (extension): WARN.
pub fn watch_problem(problem: &str) -> Event {
    let message = format!("watch list: {problem}");
    note(WATCH_PROBLEM, Level::Warn, "problem", problem, message)
}

/// `state.error` (extension): ERROR.
pub fn state_error(error: &str) -> Event {
    let message = format!("cannot record state, announcements wait until it can: {error}");
    note(STATE_ERROR, Level::Error, "error", error, message)
}

/// `metrics.listening` (extension): INFO, where `/metrics` is served.
pub fn metrics_listening(addr: &str) -> Event {
    let message = format!("serving /metrics, /healthz and /readyz on http://{addr}");
    note(METRICS_LISTENING, Level::Info, "addr", addr, message)
}

/// `credentials.warning` (extension): WARN.
pub fn credentials_warning(warning: &str) -> Event {
    let message = format!("credentials: {warning}");
    note(
        CREDENTIALS_WARNING,
        Level::Warn,
        "warning",
        warning,
        message,
    )
}

#[cfg(test)]
mod tests;
