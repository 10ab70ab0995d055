//! Every event of the contract, in one place: names, levels, fields and
//! the stable `event_id` of each fact.
//!
//! An event is a typed value. [`Event::emit`] hands it to `tracing` as the
//! event name, a human message and one field carrying the structured fields
//! as JSON; the output layer (see [`crate::output::log`]) puts those fields at
//! the top level of the JSON line. Alert rules match on `event` and the
//! fields, never on `message`.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tracing::Level;

use crate::job::id::JobId;
use crate::services::ecs::{Job, JobStatus, SubJob};
use crate::watch::Labels;

/// `job.transition`: the status differs from the last one recorded.
pub const JOB_TRANSITION: &str = "job.transition";
/// `job.subjob_failed`: a sub-job is seen in FAIL for the first time.
pub const JOB_SUBJOB_FAILED: &str = "job.subjob_failed";
/// `job.timeout`: INIT/RUNNING for longer than `poll.job_timeout`.
pub const JOB_TIMEOUT: &str = "job.timeout";
/// `job.not_found`: never seen and still 404 after the grace, or vanished.
pub const JOB_NOT_FOUND: &str = "job.not_found";
/// `api.error`: the API could not be used (rate-limited lines).
pub const API_ERROR: &str = "api.error";
/// `notify.dropped`: a webhook delivery gave up.
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

/// The tracing field that carries the structured fields as JSON text.
pub const FIELDS_JSON: &str = "fields_json";
/// The tracing field that carries the time of an announcement, so that the
/// log line and a webhook body of one event say the same time.
pub const TIMESTAMP: &str = "timestamp";

/// One event, ready to be emitted.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The event name, one of the constants above.
    pub name: &'static str,
    /// INFO, WARN or ERROR.
    pub level: Level,
    /// A human sentence.
    pub message: String,
    /// The fields beyond the common ones, in contract order.
    pub fields: Map<String, Value>,
}

impl Event {
    fn new(name: &'static str, level: Level, message: String) -> Event {
        Event {
            name,
            level,
            message,
            fields: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// The `event_id` field, when the event has one.
    pub fn event_id(&self) -> Option<&str> {
        self.fields.get("event_id").and_then(Value::as_str)
    }

    /// Emits the event through `tracing`, stamped now.
    pub fn emit(&self) {
        self.emit_at(&timestamp_now());
    }

    /// Emits the event through `tracing` with a given `timestamp` (RFC
    /// 3339), so that a copy of the line built elsewhere (a webhook body,
    /// see [`Event::to_json`]) carries the very same time.
    pub fn emit_at(&self, timestamp: &str) {
        let fields = Value::Object(self.fields.clone()).to_string();
        let fields = fields.as_str();
        let message = self.message.as_str();
        let name = self.name;
        match self.level {
            Level::ERROR => {
                tracing::error!(event = name, timestamp, fields_json = fields, "{message}")
            }
            Level::WARN => {
                tracing::warn!(event = name, timestamp, fields_json = fields, "{message}")
            }
            Level::INFO => {
                tracing::info!(event = name, timestamp, fields_json = fields, "{message}")
            }
            Level::DEBUG => {
                tracing::debug!(event = name, timestamp, fields_json = fields, "{message}")
            }
            Level::TRACE => {
                tracing::trace!(event = name, timestamp, fields_json = fields, "{message}")
            }
        }
    }

    /// The JSON object of the event's log line at `timestamp`: exactly what
    /// `log.format = "json"` prints, built by the same [`line_object`].
    pub fn to_json(&self, timestamp: &str) -> Value {
        Value::Object(line_object(
            timestamp,
            level_name(&self.level),
            self.name,
            &self.message,
            self.fields.clone(),
        ))
    }
}

/// The current time as the `timestamp` of a line: RFC 3339, UTC,
/// milliseconds.
pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The contract's name of a level.
pub fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// The JSON object of one line: `timestamp`, `level`, `event`, `message`,
/// then the fields at the top level in their order (a field never replaces
/// one of the four common ones). The log output and webhook bodies both
/// come from here, so the two cannot drift apart.
pub fn line_object(
    timestamp: &str,
    level: &str,
    event: &str,
    message: &str,
    fields: Map<String, Value>,
) -> Map<String, Value> {
    let mut object = Map::with_capacity(fields.len() + 4);
    object.insert("timestamp".into(), Value::String(timestamp.to_string()));
    object.insert("level".into(), Value::String(level.to_string()));
    object.insert("event".into(), Value::String(event.to_string()));
    object.insert("message".into(), Value::String(message.to_string()));
    for (key, value) in fields {
        object.entry(key).or_insert(value);
    }
    object
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

fn labels_value(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn opt(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |v| Value::String(v.to_string()))
}

/// The level of a transition into `status`.
pub fn transition_level(status: &JobStatus) -> Level {
    match status {
        JobStatus::Fail => Level::ERROR,
        JobStatus::PendingPayment => Level::WARN,
        _ => Level::INFO,
    }
}

/// What a transition event needs beyond the job body.
#[derive(Clone, Copy, Debug)]
pub struct TransitionContext<'a> {
    /// The job.
    pub job_id: &'a JobId,
    /// The project the job belongs to.
    pub project_id: &'a str,
    /// The last recorded status (`None` at the first sighting).
    pub previous: Option<&'a str>,
    /// How many transitions of this job were recorded before this one; part
    /// of the fact, so a status that comes back is a new fact.
    pub sequence: u32,
    /// The job's labels.
    pub labels: &'a Labels,
}

/// `job.transition`.
pub fn job_transition(context: TransitionContext<'_>, status: &JobStatus, job: &Job) -> Event {
    let job_id = context.job_id.as_str();
    let sequence = context.sequence.to_string();
    let event_id = fact_id(&[
        JOB_TRANSITION,
        job_id,
        context.previous.unwrap_or(""),
        status.as_str(),
        &sequence,
    ]);
    let message = match context.previous {
        Some(previous) => format!("job {job_id} is now {status} (was {previous})"),
        None => format!("job {job_id} is {status}"),
    };
    let failed = job.sub_jobs_failed();
    Event::new(JOB_TRANSITION, transition_level(status), message)
        .with("job_id", job_id)
        .with("status", status.as_str())
        .with("previous_status", opt(context.previous))
        .with("job_type", opt(job.job_type.as_deref()))
        .with("project_id", context.project_id)
        .with("begin_time", opt(job.begin_time.as_deref()))
        .with("end_time", opt(job.end_time.as_deref()))
        .with("error_code", opt(job.error_code.as_deref()))
        .with("fail_reason", opt(job.fail_reason.as_deref()))
        .with("server_ids", json!(job.server_ids()))
        .with(
            "sub_jobs_total",
            job.sub_jobs_total.map_or(Value::Null, Value::from),
        )
        .with("sub_jobs_failed", failed)
        .with("labels", labels_value(context.labels))
        .with("event_id", event_id)
}

/// The key that identifies a sub-job within its job: its id, else its
/// position.
pub fn sub_job_key(sub_job: &SubJob, index: usize) -> String {
    sub_job
        .job_id
        .clone()
        .unwrap_or_else(|| format!("#{index}"))
}

/// `job.subjob_failed`.
pub fn job_subjob_failed(job_id: &JobId, sub_job: &SubJob, key: &str, labels: &Labels) -> Event {
    let event_id = fact_id(&[JOB_SUBJOB_FAILED, job_id.as_str(), key]);
    let reason = sub_job.reason();
    let message = match reason {
        Some(reason) => format!("sub-job {key} of job {job_id} failed: {reason}"),
        None => format!("sub-job {key} of job {job_id} failed"),
    };
    Event::new(JOB_SUBJOB_FAILED, Level::ERROR, message)
        .with("job_id", job_id.as_str())
        .with("sub_job_id", opt(sub_job.job_id.as_deref()))
        .with("server_id", opt(sub_job.server_id.as_deref()))
        .with("nic_id", opt(sub_job.nic_id.as_deref()))
        .with("error_code", opt(sub_job.error_code.as_deref()))
        .with("fail_reason", opt(reason))
        .with("labels", labels_value(labels))
        .with("event_id", event_id)
}

/// `job.timeout`.
pub fn job_timeout(job_id: &JobId, status: &JobStatus, elapsed_s: u64, labels: &Labels) -> Event {
    let event_id = fact_id(&[JOB_TIMEOUT, job_id.as_str()]);
    Event::new(
        JOB_TIMEOUT,
        Level::ERROR,
        format!("job {job_id} has been {status} for {elapsed_s} s, longer than poll.job_timeout"),
    )
    .with("job_id", job_id.as_str())
    .with("status", status.as_str())
    .with("elapsed_s", elapsed_s)
    .with("labels", labels_value(labels))
    .with("event_id", event_id)
}

/// `job.not_found`.
pub fn job_not_found(job_id: &JobId, last_status: Option<&str>, labels: &Labels) -> Event {
    let event_id = fact_id(&[JOB_NOT_FOUND, job_id.as_str(), last_status.unwrap_or("")]);
    let message = match last_status {
        Some(status) => format!("job {job_id} vanished while {status}; tracking ends"),
        None => format!("job {job_id} was never found; tracking ends"),
    };
    Event::new(JOB_NOT_FOUND, Level::ERROR, message)
        .with("job_id", job_id.as_str())
        .with("last_status", opt(last_status))
        .with("labels", labels_value(labels))
        .with("event_id", event_id)
}

/// What an `api.error` line reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiErrorReport {
    /// The contract's `error_type`.
    pub error_type: &'static str,
    /// The HTTP status, when an answer arrived.
    pub http_status: Option<u16>,
    /// The error code of the body.
    pub error_code: Option<String>,
    /// The `X-Request-Id`.
    pub request_id: Option<String>,
    /// How many such errors this line stands for.
    pub count: u64,
    /// A short description of the latest one.
    pub detail: String,
}

/// `api.error`: ERROR for `auth`, else WARN.
pub fn api_error(report: &ApiErrorReport) -> Event {
    let level = if report.error_type == "auth" {
        Level::ERROR
    } else {
        Level::WARN
    };
    let message = if report.count > 1 {
        format!(
            "{} API errors of type {}; latest: {}",
            report.count, report.error_type, report.detail
        )
    } else {
        format!("API error of type {}: {}", report.error_type, report.detail)
    };
    Event::new(API_ERROR, level, message)
        .with("error_type", report.error_type)
        .with(
            "http_status",
            report.http_status.map_or(Value::Null, Value::from),
        )
        .with("error_code", opt(report.error_code.as_deref()))
        .with("request_id", opt(report.request_id.as_deref()))
        .with("count", report.count)
}

/// `notify.dropped`.
pub fn notify_dropped(url: &str, event_id: &str, attempts: u64, error: &str) -> Event {
    Event::new(
        NOTIFY_DROPPED,
        Level::ERROR,
        format!("gave up delivering event {event_id} to {url} after {attempts} attempts: {error}"),
    )
    .with("url", url)
    .with("event_id", event_id)
    .with("attempts", attempts)
    .with("error", error)
}

/// `daemon.started`.
pub fn daemon_started(jobs_tracked: usize) -> Event {
    Event::new(
        DAEMON_STARTED,
        Level::INFO,
        format!(
            "ecs-jobwatch {} started, tracking {jobs_tracked} jobs",
            env!("CARGO_PKG_VERSION")
        ),
    )
    .with("version", env!("CARGO_PKG_VERSION"))
    .with("jobs_tracked", jobs_tracked)
}

/// `daemon.reloaded`.
pub fn daemon_reloaded(jobs_tracked: usize) -> Event {
    Event::new(
        DAEMON_RELOADED,
        Level::INFO,
        format!("configuration reloaded, tracking {jobs_tracked} jobs"),
    )
    .with("version", env!("CARGO_PKG_VERSION"))
    .with("jobs_tracked", jobs_tracked)
}

/// `daemon.reload_failed`: the old configuration stays in force.
pub fn daemon_reload_failed(jobs_tracked: usize, error: &str) -> Event {
    Event::new(
        DAEMON_RELOAD_FAILED,
        Level::ERROR,
        format!("reload failed, the previous configuration stays in force: {error}"),
    )
    .with("version", env!("CARGO_PKG_VERSION"))
    .with("jobs_tracked", jobs_tracked)
    .with("error", error)
}

/// `daemon.stopping`.
pub fn daemon_stopping(jobs_tracked: usize) -> Event {
    Event::new(
        DAEMON_STOPPING,
        Level::INFO,
        "ecs-jobwatch is stopping".to_string(),
    )
    .with("version", env!("CARGO_PKG_VERSION"))
    .with("jobs_tracked", jobs_tracked)
}

/// `watch.problem` (extension): WARN.
pub fn watch_problem(problem: &str) -> Event {
    Event::new(WATCH_PROBLEM, Level::WARN, format!("watch list: {problem}"))
        .with("problem", problem)
}

/// `state.error` (extension): ERROR.
pub fn state_error(error: &str) -> Event {
    Event::new(
        STATE_ERROR,
        Level::ERROR,
        format!("cannot record state, announcements wait until it can: {error}"),
    )
    .with("error", error)
}

/// `metrics.listening` (extension): INFO, where `/metrics` is served.
pub fn metrics_listening(addr: &str) -> Event {
    Event::new(
        METRICS_LISTENING,
        Level::INFO,
        format!("serving /metrics, /healthz and /readyz on http://{addr}"),
    )
    .with("addr", addr)
}

/// `credentials.warning` (extension): WARN.
pub fn credentials_warning(warning: &str) -> Event {
    Event::new(
        CREDENTIALS_WARNING,
        Level::WARN,
        format!("credentials: {warning}"),
    )
    .with("warning", warning)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ecs::parse_job;

    fn labels() -> Labels {
        Labels::from([("team".to_string(), "x".to_string())])
    }

    #[test]
    fn transition_fields_and_levels() {
        let id = JobId::parse("j1").unwrap();
        let body = br#"{"status":"FAIL","job_type":"createServer","error_code":"Ecs.0013","fail_reason":"quota",
            "entities":{"sub_jobs_total":2,"sub_jobs":[{"status":"FAIL","entities":{"server_id":"s1"}},{"status":"SUCCESS"}]}}"#;
        let job = parse_job(body).unwrap();
        let status = job.status.clone().unwrap();
        let labels = labels();
        let context = TransitionContext {
            job_id: &id,
            project_id: "p",
            previous: Some("RUNNING"),
            sequence: 2,
            labels: &labels,
        };
        let event = job_transition(context, &status, &job);
        assert_eq!(event.level, Level::ERROR);
        let keys: Vec<&str> = event.fields.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "job_id",
                "status",
                "previous_status",
                "job_type",
                "project_id",
                "begin_time",
                "end_time",
                "error_code",
                "fail_reason",
                "server_ids",
                "sub_jobs_total",
                "sub_jobs_failed",
                "labels",
                "event_id"
            ]
        );
        assert_eq!(event.fields["server_ids"], json!(["s1"]));
        assert_eq!(event.fields["sub_jobs_failed"], json!(1));
        assert_eq!(event.fields["labels"], json!({"team": "x"}));
        assert_eq!(event.fields["begin_time"], Value::Null);

        let first = job_transition(
            TransitionContext {
                previous: None,
                sequence: 0,
                ..context
            },
            &status,
            &job,
        );
        assert_eq!(first.fields["previous_status"], Value::Null);
        assert_ne!(first.event_id(), event.event_id());
        assert_eq!(
            job_transition(context, &status, &job).event_id(),
            event.event_id()
        );

        assert_eq!(transition_level(&JobStatus::PendingPayment), Level::WARN);
        assert_eq!(transition_level(&JobStatus::Success), Level::INFO);
        assert_eq!(transition_level(&JobStatus::Other("X".into())), Level::INFO);
    }

    #[test]
    fn fact_ids_are_stable_and_distinct() {
        assert_eq!(fact_id(&["a", "b"]), fact_id(&["a", "b"]));
        assert_ne!(fact_id(&["a", "b"]), fact_id(&["ab", ""]));
        assert_eq!(fact_id(&["x"]).len(), 32);
        let id = JobId::parse("j").unwrap();
        let labels = labels();
        assert_ne!(
            job_not_found(&id, None, &labels).event_id(),
            job_not_found(&id, Some("RUNNING"), &labels).event_id()
        );
        assert_eq!(
            job_timeout(&id, &JobStatus::Running, 5, &labels).event_id(),
            job_timeout(&id, &JobStatus::Running, 9, &labels).event_id()
        );
    }

    #[test]
    fn api_error_levels() {
        let mut report = ApiErrorReport {
            error_type: "auth",
            http_status: Some(401),
            error_code: Some("APIGW.0301".into()),
            request_id: None,
            count: 1,
            detail: "bad signature".into(),
        };
        assert_eq!(api_error(&report).level, Level::ERROR);
        report.error_type = "throttled";
        assert_eq!(api_error(&report).level, Level::WARN);
        assert_eq!(api_error(&report).fields["request_id"], Value::Null);
    }
}
