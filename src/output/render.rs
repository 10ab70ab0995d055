//! Turning an [`Event`] into text: the JSON line of `log.format = "json"`
//! (also the body of every webhook and SMN delivery), the human `text`
//! line, the demo's brief line, and the fields of a native journal entry.
//!
//! Each format walks the same list of fields ([`visit`]), in contract
//! order, so the formats cannot disagree about what an event says.

use std::fmt::Write as _;

use crate::job::Labels;
use crate::output::event::{self, Event, JobRef, Kind};

/// One field's value, typed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// JSON `null`: the field applies but has no value.
    Null,
    /// A string.
    Str(&'a str),
    /// A count.
    U64(u64),
    /// A list of ids.
    List(&'a [String]),
    /// The labels object.
    Labels(&'a Labels),
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(value: Option<&'a str>) -> Value<'a> {
        value.map_or(Value::Null, Value::Str)
    }
}

fn opt(value: &Option<String>) -> Value<'_> {
    value.as_deref().into()
}

fn job_fields<'a>(job: &'a JobRef, f: &mut dyn FnMut(&'static str, Value<'a>)) {
    f("job_id", Value::Str(job.key.id.as_str()));
    f("service", Value::Str(job.key.service.as_str()));
    f("project", Value::Str(job.key.project.as_str()));
    f("project_id", Value::Str(&job.project_id));
    f("region", job.region.as_deref().into());
}

/// Calls `f` with each field beyond the four common ones (`timestamp`,
/// `level`, `event`, `message`), in contract order.
pub fn visit<'a>(event: &'a Event, f: &mut dyn FnMut(&'static str, Value<'a>)) {
    match &event.kind {
        Kind::Transition(t) => {
            job_fields(&t.job, f);
            f("status", Value::Str(t.status.as_str()));
            f("service_status", Value::Str(&t.service_status));
            f(
                "previous_status",
                t.previous.as_ref().map(|s| s.as_str()).into(),
            );
            f("job_type", opt(&t.job_type));
            f("begin_time", opt(&t.begin_time));
            f("end_time", opt(&t.end_time));
            f("error_code", opt(&t.error_code));
            f("fail_reason", opt(&t.fail_reason));
            f("resource_ids", Value::List(&t.resource_ids));
            f("server_ids", Value::List(&t.server_ids));
            f(
                "sub_jobs_total",
                t.sub_jobs_total.map_or(Value::Null, Value::U64),
            );
            f("sub_jobs_failed", Value::U64(t.sub_jobs_failed));
            f("labels", Value::Labels(&t.job.labels));
            f("event_id", Value::Str(&t.event_id));
        }
        Kind::SubjobFailed(s) => {
            job_fields(&s.job, f);
            f("sub_job_id", opt(&s.sub_job_id));
            f("server_id", opt(&s.server_id));
            f("nic_id", opt(&s.nic_id));
            f("error_code", opt(&s.error_code));
            f("fail_reason", opt(&s.fail_reason));
            f("resource_ids", Value::List(&s.resource_ids));
            f("labels", Value::Labels(&s.job.labels));
            f("event_id", Value::Str(&s.event_id));
        }
        Kind::Timeout(t) => {
            job_fields(&t.job, f);
            f("status", Value::Str(t.status.as_str()));
            f("elapsed_s", Value::U64(t.elapsed_s));
            f("labels", Value::Labels(&t.job.labels));
            f("event_id", Value::Str(&t.event_id));
        }
        Kind::NotFound(n) => {
            job_fields(&n.job, f);
            f(
                "last_status",
                n.last_status.as_ref().map(|s| s.as_str()).into(),
            );
            f("labels", Value::Labels(&n.job.labels));
            f("event_id", Value::Str(&n.event_id));
        }
        Kind::ApiError(report) => {
            f("error_type", Value::Str(report.error_type));
            f(
                "http_status",
                report
                    .http_status
                    .map_or(Value::Null, |s| Value::U64(s.into())),
            );
            f("error_code", opt(&report.error_code));
            f("request_id", opt(&report.request_id));
            f("count", Value::U64(report.count));
        }
        Kind::NotifyDropped(dropped) => {
            f("sink", Value::Str(&dropped.sink));
            f("url", Value::Str(&dropped.url));
            f("event_id", Value::Str(&dropped.event_id));
            f("attempts", Value::U64(dropped.attempts));
            f("error", Value::Str(&dropped.error));
        }
        Kind::Lifecycle(lifecycle) => {
            f("version", Value::Str(env!("CARGO_PKG_VERSION")));
            f("jobs_tracked", Value::U64(lifecycle.jobs_tracked as u64));
            if let Some(error) = &lifecycle.error {
                f("error", Value::Str(error));
            }
        }
        Kind::Note { field, value, .. } => f(field, Value::Str(value)),
    }
}

/// Appends `text` as a JSON string, quoted and escaped by `serde_json`.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    // Writing a `&str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Appends one value as JSON.
fn push_json_value(out: &mut Vec<u8>, value: Value<'_>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Str(text) => push_json_str(out, text),
        Value::U64(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::List(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                push_json_str(out, item);
            }
            out.push(b']');
        }
        Value::Labels(labels) => {
            out.push(b'{');
            for (index, (key, value)) in labels.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                push_json_str(out, key);
                out.push(b':');
                push_json_str(out, value);
            }
            out.push(b'}');
        }
    }
}

/// Text from bytes that are UTF-8 by construction (JSON written from
/// `&str`s).
fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// The JSON text of one value (for the journal's list and object fields).
pub fn json_value(value: Value<'_>) -> String {
    let mut out = Vec::new();
    push_json_value(&mut out, value);
    into_text(out)
}

/// The head of a line: `{"timestamp":..,"level":..,"event":..,"message":..`
/// without the closing brace.
fn json_head(out: &mut Vec<u8>, timestamp: &str, level: &str, name: &str, message: &str) {
    out.extend_from_slice(b"{\"timestamp\":");
    push_json_str(out, timestamp);
    out.extend_from_slice(b",\"level\":");
    push_json_str(out, level);
    out.extend_from_slice(b",\"event\":");
    push_json_str(out, name);
    out.extend_from_slice(b",\"message\":");
    push_json_str(out, message);
}

/// The JSON object of an event's log line at `timestamp`, without a line
/// ending: exactly what `log.format = "json"` prints and what a webhook or
/// SMN delivery carries.
pub fn json(event: &Event, timestamp: &str) -> String {
    let mut out = Vec::with_capacity(512);
    json_head(
        &mut out,
        timestamp,
        event.level.as_str(),
        event.name(),
        &event.message,
    );
    visit(event, &mut |name, value| {
        out.push(b',');
        push_json_str(&mut out, name);
        out.push(b':');
        push_json_value(&mut out, value);
    });
    out.push(b'}');
    into_text(out)
}

/// The JSON line of a library's log record (`event = "log"`), whose
/// fields are all text.
pub fn json_record(
    timestamp: &str,
    level: &str,
    message: &str,
    fields: &[(String, String)],
) -> String {
    let mut out = Vec::with_capacity(256);
    json_head(&mut out, timestamp, level, event::LOG, message);
    for (name, value) in fields {
        out.push(b',');
        push_json_str(&mut out, name);
        out.push(b':');
        push_json_str(&mut out, value);
    }
    out.push(b'}');
    into_text(out)
}

/// The human line of `log.format = "text"`: time, level, event, message,
/// then `key=value` for every field that has a value.
pub fn text(event: &Event, timestamp: &str) -> String {
    let mut out = format!(
        "{timestamp} {:<5} {}: {}",
        event.level.as_str(),
        event.name(),
        event.message
    );
    visit(event, &mut |name, value| match value {
        Value::Null => {}
        Value::Str(text) => {
            let _ = write!(out, " {name}={text:?}");
        }
        other => {
            let _ = write!(out, " {name}={}", json_value(other));
        }
    });
    out
}

/// The demo's line: time of day, level, event, message.
pub fn brief(level: &str, name: &str, message: &str, timestamp: &str) -> String {
    let time = timestamp.get(11..23).unwrap_or(timestamp);
    format!("{time} {level:<5} {name:<18} {message}")
}

/// The fixed `MESSAGE_ID` of each event name (stable forever; listed in
/// the README).
pub fn message_id(name: &str) -> &'static str {
    match name {
        event::JOB_TRANSITION => "7a642a409d0a4c828270c82d077de9e2",
        event::JOB_SUBJOB_FAILED => "0fe99d29d8df4672a5c0087beff16297",
        event::JOB_TIMEOUT => "29a0972db4d444029dd3bcef5e2d56a9",
        event::JOB_NOT_FOUND => "e01bbc0bd05449b9bc65d5c2a9eb2e62",
        event::API_ERROR => "bf997ae9574c438e9db31fefad0bee87",
        event::NOTIFY_DROPPED => "f12199a3b9b847f795eceed8cfa63f8b",
        event::DAEMON_STARTED => "4a24e4645bda436ba7e1999cdc674fd2",
        event::DAEMON_RELOADED => "ad2cbce3aaac4f6ea2db631c7ed9e5bc",
        event::DAEMON_RELOAD_FAILED => "224c279f192c49febe27e33fa8279edc",
        event::DAEMON_STOPPING => "34f522b4fbf44ef9ac8d522b8671b332",
        event::WATCH_PROBLEM => "1e10fe5d5d174ac88f34daabfee05749",
        event::STATE_ERROR => "48440c008f6745a1aede6ed8da23d5b3",
        event::CREDENTIALS_WARNING => "6ab5ce027e124e6f9c46f5522cf04a11",
        event::METRICS_LISTENING => "8346e33fb5014ad290a0b80dc49e77f5",
        _ => "8994e5c5da894713851a894cb6c3a5b0",
    }
}

/// A journal field name for a label key: `LABEL_` and the key upper-cased,
/// with every character journald does not take (`.`, `-`) as `_`.
pub fn label_field(key: &str) -> String {
    let mut name = String::with_capacity(6 + key.len());
    name.push_str("LABEL_");
    for c in key.chars() {
        name.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    name
}

/// The fields of a native journal entry for `event`: `MESSAGE`,
/// `PRIORITY`, `SYSLOG_IDENTIFIER`, `MESSAGE_ID`, `EVENT`, `LEVEL`,
/// `TIMESTAMP`, then every field of the event upper-cased (lists and
/// objects as JSON text, null fields left out) and each label as
/// `LABEL_<KEY>`.
pub fn journal_fields(event: &Event, timestamp: &str) -> Vec<(String, String)> {
    let mut fields = vec![
        ("MESSAGE".to_string(), event.message.clone()),
        ("PRIORITY".to_string(), event.level.priority().to_string()),
        ("SYSLOG_IDENTIFIER".to_string(), "ecs-jobwatch".to_string()),
        (
            "MESSAGE_ID".to_string(),
            message_id(event.name()).to_string(),
        ),
        ("EVENT".to_string(), event.name().to_string()),
        ("LEVEL".to_string(), event.level.as_str().to_string()),
        ("TIMESTAMP".to_string(), timestamp.to_string()),
    ];
    visit(event, &mut |name, value| {
        let upper = name.to_ascii_uppercase();
        match value {
            Value::Null => {}
            Value::Str(text) => fields.push((upper, text.to_string())),
            Value::U64(n) => fields.push((upper, n.to_string())),
            Value::List(_) => fields.push((upper, json_value(value))),
            Value::Labels(labels) => {
                fields.push((upper, json_value(value)));
                for (key, value) in labels {
                    fields.push((label_field(key), value.clone()));
                }
            }
        }
    });
    fields
}

#[cfg(test)]
mod tests;
