//! The SMN publish API of the simulator:
//! `POST /smn/v2/{project_id}/notifications/topics/{topic_urn}/publish`
//! (the daemon's SMN endpoint is then `http://ADDR/smn`, or an endpoint
//! with `{service}`).
//!
//! A publish goes through the gateway like a job query (signature, the
//! credential's `forbidden`, the global rate limit, and the fault rules:
//! a rule whose `jobs` names `smn`, or the topic's name, affects only
//! publishes), then its body is checked as SMN checks it (`subject` at most
//! 512 bytes, and `message`, or `message_structure` as JSON text with a
//! `default`) and the message is recorded, in arrival order, for tests and
//! the control API (`GET /_sim/smn`). The answer is SMN's:
//! `{"request_id", "message_id"}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::huaweicloud::sign::percent_decode;

/// The longest `subject` SMN takes, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 512;
/// The longest `message`, in bytes (256 KB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The topic a publish path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishTarget {
    /// The project id in the path.
    pub project_id: String,
    /// The topic URN, decoded.
    pub topic_urn: String,
}

impl PublishTarget {
    /// The topic's name: the last part of its URN.
    pub fn topic(&self) -> &str {
        self.topic_urn.rsplit(':').next().unwrap_or_default()
    }

    /// The project id inside the URN (`urn:smn:{region}:{project_id}:{topic}`).
    fn urn_project(&self) -> Option<&str> {
        self.topic_urn.split(':').nth(3)
    }
}

/// The publish a path names, when it is `/smn/v2/{project_id}/notifications/topics/{urn}/publish`.
pub fn publish_target(path: &str) -> Option<PublishTarget> {
    let rest = path.strip_prefix("/smn/v2/")?;
    let (project_id, rest) = rest.split_once('/')?;
    let urn = rest
        .strip_prefix("notifications/topics/")?
        .strip_suffix("/publish")?;
    if project_id.is_empty() || urn.is_empty() || urn.contains('/') {
        return None;
    }
    Some(PublishTarget {
        project_id: percent_decode(project_id),
        topic_urn: percent_decode(urn),
    })
}

/// One message a topic received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmnMessage {
    /// The topic's URN.
    pub topic_urn: String,
    /// The id the simulator gave it.
    pub message_id: String,
    /// `subject`, when sent.
    pub subject: Option<String>,
    /// `message`, when sent.
    pub message: Option<String>,
    /// `message_structure` parsed (`default`, `sms`, `email`, ...), when sent.
    pub message_structure: Option<Value>,
    /// When it arrived, milliseconds after the simulator's start.
    pub at_ms: u64,
}

impl SmnMessage {
    /// The `event_id` of the event it carries (from `default`, else
    /// `message`), when it carries one.
    pub fn event_id(&self) -> Option<String> {
        let text = self
            .message_structure
            .as_ref()
            .and_then(|structure| structure["default"].as_str())
            .or(self.message.as_deref())?;
        let event: Value = serde_json::from_str(text).ok()?;
        event["event_id"].as_str().map(str::to_string)
    }
}

/// Why a publish body is refused: SMN's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The error code.
    pub code: &'static str,
    /// The message.
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        code,
        message: message.into(),
    }
}

/// Reads a publish body as SMN would, for the topic of `target`, into the
/// message to record (without its id and time).
pub fn read_publish(
    target: &PublishTarget,
    body: &[u8],
    served_project: impl Fn(&str) -> bool,
) -> Result<SmnMessage, Refused> {
    if !served_project(&target.project_id) || target.urn_project() != Some(&target.project_id) {
        return Err(refuse(
            "SMN.00010009",
            "The topic does not exist in this project.",
        ));
    }
    let body: Value = serde_json::from_slice(body)
        .map_err(|_| refuse("SMN.00010001", "The request body is not JSON."))?;
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
    let subject = text("subject");
    if subject
        .as_ref()
        .is_some_and(|subject| subject.len() > MAX_SUBJECT_BYTES)
    {
        return Err(refuse(
            "SMN.00010002",
            "The subject is longer than 512 bytes.",
        ));
    }
    let message = text("message");
    let structure = match text("message_structure") {
        None => None,
        Some(structure) => {
            let parsed: Value = serde_json::from_str(&structure)
                .map_err(|_| refuse("SMN.00010003", "message_structure is not JSON."))?;
            if !parsed["default"].is_string() {
                return Err(refuse("SMN.00010003", "message_structure has no default."));
            }
            Some(parsed)
        }
    };
    if message.is_none() && structure.is_none() && text("message_template_name").is_none() {
        return Err(refuse(
            "SMN.00010004",
            "One of message, message_structure and message_template_name is required.",
        ));
    }
    if message
        .as_ref()
        .is_some_and(|message| message.len() > MAX_MESSAGE_BYTES)
    {
        return Err(refuse("SMN.00010005", "The message is longer than 256 KB."));
    }
    Ok(SmnMessage {
        topic_urn: target.topic_urn.clone(),
        message_id: String::new(),
        subject,
        message,
        message_structure: structure,
        at_ms: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URN: &str = "urn:smn:cn-north-4:0123456789abcdef0123456789abcdef:ecs-jobs";

    fn target() -> PublishTarget {
        publish_target(&format!(
            "/smn/v2/0123456789abcdef0123456789abcdef/notifications/topics/{URN}/publish"
        ))
        .unwrap()
    }

    #[test]
    fn publish_paths_name_the_project_and_topic() {
        let target = target();
        assert_eq!(target.project_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(target.topic_urn, URN);
        assert_eq!(target.topic(), "ecs-jobs");
        let encoded = URN.replace(':', "%3A");
        let path = format!("/smn/v2/p/notifications/topics/{encoded}/publish");
        assert_eq!(publish_target(&path).unwrap().topic_urn, URN);
        for path in [
            "/v1/p/jobs/j",
            "/smn/v2/p/notifications/topics//publish",
            "/smn/v2/p/notifications/topics/a/b/publish",
            "/smn/v2/p/notifications/topics/x",
        ] {
            assert_eq!(publish_target(path), None, "{path}");
        }
    }

    #[test]
    fn bodies_are_checked_as_smn_does() {
        let ok = |body: &str| read_publish(&target(), body.as_bytes(), |_| true);
        let structure = r#"{"default":"{\"event_id\":\"e1\"}","sms":"short"}"#;
        let body = serde_json::json!({"subject": "s", "message_structure": structure}).to_string();
        let message = ok(&body).unwrap();
        assert_eq!(message.subject.as_deref(), Some("s"));
        assert_eq!(message.event_id().as_deref(), Some("e1"));
        assert!(ok(r#"{"subject":"s","message":"m"}"#).is_ok());
        let long = serde_json::json!({"subject": "x".repeat(513), "message": "m"}).to_string();
        for (body, code) in [
            ("not json", "SMN.00010001"),
            (long.as_str(), "SMN.00010002"),
            (r#"{"message_structure":"{\"sms\":\"x\"}"}"#, "SMN.00010003"),
            (r#"{"subject":"s"}"#, "SMN.00010004"),
        ] {
            assert_eq!(ok(body).unwrap_err().code, code, "{body}");
        }
        let other = read_publish(&target(), body.as_bytes(), |_| false);
        assert_eq!(other.unwrap_err().code, "SMN.00010009");
    }
}
