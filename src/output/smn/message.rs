//! What an SMN topic receives for one event: the body of the publish
//! request, rendered from the typed event when it is announced (and kept in
//! the outbox as it is, like a webhook's body).
//!
//! - `subject`: the event's sentence, at most [`MAX_SUBJECT_BYTES`] bytes
//!   (cut on a character boundary, with `…` when cut); SMN uses it as the
//!   email subject.
//! - `message_structure`: a JSON text with `default` (the event's JSON
//!   line, what HTTP(S) subscribers and any protocol without its own entry
//!   get), `sms` (one short line: status, service, job, job type, reason,
//!   and the labels that fit in [`MAX_SMS_CHARS`]) and `email` (a readable
//!   text with every field of the event).

use std::fmt::Write as _;

use serde_json::json;

use crate::output::event::{Event, JobRef, Kind};
use crate::output::log::Line;
use crate::output::render::{self, Value};

/// The longest `subject` SMN takes, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 512;
/// The longest `sms` line, in characters (one SMS of 160 GSM characters,
/// with room to spare for the signature SMN adds).
pub const MAX_SMS_CHARS: usize = 140;

/// `text` cut to at most `max` bytes on a character boundary, ending with
/// `…` when it was cut.
pub fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let ellipsis = "…";
    let mut end = max.saturating_sub(ellipsis.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ellipsis}", &text[..end])
}

/// `text` cut to at most `max` characters, ending with `…` when cut.
fn cut_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The JSON body of the publish request for `event`, announced as `line`.
pub fn publish_body(event: &Event, line: &Line) -> String {
    let structure = json!({
        "default": line.json,
        "sms": sms(event),
        "email": email(event, &line.timestamp),
    });
    json!({
        "subject": cut_bytes(&event.message, MAX_SUBJECT_BYTES),
        "message_structure": structure.to_string(),
    })
    .to_string()
}

/// `project/service job id` (the project only when it is not the default).
fn job_name(job: &JobRef) -> String {
    if job.key.project.is_default() {
        format!("{} job {}", job.key.service, job.key.id)
    } else {
        format!("{}/{} job {}", job.key.project, job.key.service, job.key.id)
    }
}

/// The short line of an SMS: what happened, then the labels that fit.
pub fn sms(event: &Event) -> String {
    let reason = |code: &Option<String>, reason: &Option<String>| match (code, reason) {
        (_, Some(reason)) => format!(": {reason}"),
        (Some(code), None) => format!(": {code}"),
        (None, None) => String::new(),
    };
    let head = match &event.kind {
        Kind::Transition(t) => {
            let job_type = t
                .job_type
                .as_deref()
                .map_or(String::new(), |job_type| format!(" ({job_type})"));
            format!(
                "{} {}{job_type}{}",
                t.status,
                job_name(&t.job),
                reason(&t.error_code, &t.fail_reason)
            )
        }
        Kind::SubjobFailed(s) => {
            let sub = s.sub_job_id.as_deref().unwrap_or("?");
            format!(
                "FAIL {} sub-job {sub}{}",
                job_name(&s.job),
                reason(&s.error_code, &s.fail_reason)
            )
        }
        Kind::Timeout(t) => format!(
            "TIMEOUT {} still {} after {} s",
            job_name(&t.job),
            t.status,
            t.elapsed_s
        ),
        Kind::NotFound(n) => match &n.last_status {
            Some(status) => format!("NOT FOUND {} (was {status})", job_name(&n.job)),
            None => format!("NOT FOUND {} (never seen)", job_name(&n.job)),
        },
        _ => event.message.clone(),
    };
    let mut line = cut_chars(&head, MAX_SMS_CHARS);
    if let Some(job) = event.job() {
        for (key, value) in job.labels.iter() {
            let label = format!(" {key}={value}");
            if line.chars().count() + label.chars().count() > MAX_SMS_CHARS {
                continue;
            }
            line.push_str(&label);
        }
    }
    line
}

/// A readable text with every field of the event, one per line.
pub fn email(event: &Event, timestamp: &str) -> String {
    let mut text = format!("{}\n\n", event.message);
    let _ = writeln!(text, "event: {}", event.name());
    let _ = writeln!(text, "level: {}", event.level.as_str());
    let _ = writeln!(text, "timestamp: {timestamp}");
    render::visit(event, &mut |name, value| {
        let shown = match value {
            Value::Null => "-".to_string(),
            Value::Str(text) => text.to_string(),
            Value::U64(n) => n.to_string(),
            Value::List([]) => "-".to_string(),
            Value::List(items) => items.join(", "),
            Value::Labels(labels) if labels.is_empty() => "-".to_string(),
            Value::Labels(labels) => labels
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(text, "{name}: {shown}");
    });
    let _ = write!(
        text,
        "\n-- \necs-jobwatch {}; the same event is in the daemon's log with this event_id.\n",
        env!("CARGO_PKG_VERSION")
    );
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::job::{JobKey, JobView, Labels, Status};
    use crate::output::event::{self, TransitionContext};

    fn failed(labels: &[(&str, &str)]) -> Event {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let job = event::JobRef {
            key: JobKey::parse("evs:4010a32d535527910153552b492c0002").unwrap(),
            project_id: Arc::from("0123456789abcdef0123456789abcdef"),
            region: Some(Arc::from("cn-north-4")),
            labels: Arc::new(labels),
        };
        let view = JobView {
            status: Status::Fail,
            service_status: "FAIL".into(),
            job_type: Some("createVolume".into()),
            error_code: Some("EVS.2024".into()),
            fail_reason: Some("quota exceeded".into()),
            ..JobView::default()
        };
        let previous = Status::Running;
        event::job_transition(
            job,
            TransitionContext {
                previous: Some(&previous),
                sequence: 1,
            },
            &view,
        )
    }

    #[test]
    fn subjects_are_cut_on_a_character_boundary() {
        assert_eq!(cut_bytes("short", 512), "short");
        // 3-byte characters: 600 bytes in, at most 512 out, whole characters.
        let long = "界".repeat(200);
        let cut = cut_bytes(&long, MAX_SUBJECT_BYTES);
        assert!(cut.len() <= MAX_SUBJECT_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(cut.len(), 510);
        // Every cut of a mixed string is valid UTF-8 within the limit.
        let mixed = "aé界🙂".repeat(100);
        for max in 0..40 {
            assert!(cut_bytes(&mixed, max).len() <= max.max(3), "{max}");
        }
    }

    #[test]
    fn an_sms_is_one_short_line_with_the_labels_that_fit() {
        let event = failed(&[("team", "storage"), ("env", "prod")]);
        assert_eq!(
            sms(&event),
            "FAIL evs job 4010a32d535527910153552b492c0002 (createVolume): quota exceeded env=prod team=storage"
        );
        let long = "x".repeat(70);
        let event = failed(&[("a", long.as_str()), ("b", "1")]);
        let line = sms(&event);
        assert!(line.chars().count() <= MAX_SMS_CHARS, "{line}");
        assert!(!line.contains("a=x"), "{line}");
        assert!(line.ends_with(" b=1"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn an_email_has_every_field_and_the_body_every_part() {
        let event = failed(&[("team", "storage")]);
        let line = Line {
            timestamp: "2026-12-01T10:00:00.000Z".into(),
            json: render::json(&event, "2026-12-01T10:00:00.000Z"),
        };
        let text = email(&event, &line.timestamp);
        let mut fields = Vec::new();
        render::visit(&event, &mut |name, _| fields.push(name));
        for name in fields {
            assert!(
                text.contains(&format!("\n{name}: ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains("fail_reason: quota exceeded\n"), "{text}");
        assert!(text.contains("labels: team=storage\n"), "{text}");
        let body: serde_json::Value = serde_json::from_str(&publish_body(&event, &line)).unwrap();
        assert_eq!(body["subject"], event.message.as_str());
        let structure: serde_json::Value =
            serde_json::from_str(body["message_structure"].as_str().unwrap()).unwrap();
        assert_eq!(structure["default"], line.json.as_str());
        assert_eq!(structure["sms"], sms(&event).as_str());
        assert_eq!(structure["email"], text.as_str());
    }
}
