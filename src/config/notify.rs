//! The sinks: `[[notify.webhook]]` and `[[notify.smn]]`, each with a
//! stable name (the `sink` label of its metrics and its key in the outbox).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use super::check::Checker;
use super::error::ConfigError;
use super::projects::{Api, ProjectSettings};
use super::raw::{RawSmn, RawWebhook};
use crate::job::ProjectName;

/// The events a sink may carry, and its default `events`.
pub const SINK_EVENTS: [&str; 4] = [
    "job.transition",
    "job.subjob_failed",
    "job.timeout",
    "job.not_found",
];

/// The events a webhook may carry (the same as every sink).
pub const WEBHOOK_EVENTS: [&str; 4] = SINK_EVENTS;

/// The default `statuses` of a webhook.
pub const DEFAULT_WEBHOOK_STATUSES: [&str; 3] = ["SUCCESS", "FAIL", "PENDING_PAYMENT"];

/// The default `statuses` of an SMN sink: what a person must act on.
pub const DEFAULT_SMN_STATUSES: [&str; 2] = ["FAIL", "PENDING_PAYMENT"];

/// The default `max_age` of a sink.
pub const DEFAULT_WEBHOOK_MAX_AGE: Duration = super::raw::DEFAULT_MAX_AGE;

/// The longest sink name.
pub const MAX_SINK_NAME_LEN: usize = 64;

/// One `[[notify.webhook]]` sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    /// The stable name: `name`, default `webhook-{position}` (1-based, in
    /// file order).
    pub name: String,
    /// Where events are POSTed.
    pub url: Url,
    /// The events sent, a subset of [`SINK_EVENTS`].
    pub events: Vec<String>,
    /// `job.transition` is sent only into these statuses (upper case).
    pub statuses: Vec<String>,
    /// The files holding the signing secrets (`secret_file`, or several in
    /// `secret_files` during a rotation), read by the daemon; empty
    /// without a secret.
    pub secret_files: Vec<PathBuf>,
    /// Undelivered this long: give up with `notify.dropped`.
    pub max_age: Duration,
}

/// One `[[notify.smn]]` sink: a topic of Simple Message Notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmnSettings {
    /// The stable name: `name`, default `smn-{position}` (1-based).
    pub name: String,
    /// The topic, checked to be in the region and project of `project`.
    pub topic_urn: TopicUrn,
    /// The events published, a subset of [`SINK_EVENTS`].
    pub events: Vec<String>,
    /// `job.transition` is published only into these statuses (upper case).
    pub statuses: Vec<String>,
    /// Undelivered this long: give up with `notify.dropped`.
    pub max_age: Duration,
    /// The project whose SMN endpoint and project id publish (`default`
    /// unless `project` says otherwise).
    pub project: ProjectName,
}

/// A topic URN, `urn:smn:{region}:{project_id}:{topic}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicUrn {
    text: String,
    region: String,
    project_id: String,
    topic: String,
}

impl TopicUrn {
    /// Reads and checks a URN: a region of `a-z0-9-`, a project id of
    /// 1 to 64 `A-Za-z0-9`, and a topic name of 1 to 255 `A-Za-z0-9-_`
    /// starting with a letter or digit.
    pub fn parse(text: &str) -> Result<TopicUrn, String> {
        let expected = "urn:smn:{region}:{project_id}:{topic}";
        let parts: Vec<&str> = text.split(':').collect();
        let [urn, smn, region, project_id, topic] = parts[..] else {
            return Err(format!("must be {expected}, got {text:?}"));
        };
        if urn != "urn" || smn != "smn" {
            return Err(format!("must start with urn:smn:, got {text:?}"));
        }
        if !is_region(region) {
            return Err(format!("the region {region:?} is not 1 to 64 of a-z 0-9 -"));
        }
        if !is_project_id(project_id) {
            return Err(format!(
                "the project id {project_id:?} is not 1 to 64 of A-Z a-z 0-9"
            ));
        }
        let valid_topic = topic.len() <= 255
            && topic.starts_with(|c: char| c.is_ascii_alphanumeric())
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_topic {
            return Err(format!(
                "the topic name {topic:?} is not 1 to 255 of A-Z a-z 0-9 - _ starting with a letter or digit"
            ));
        }
        Ok(TopicUrn {
            text: text.to_string(),
            region: region.to_string(),
            project_id: project_id.to_string(),
            topic: topic.to_string(),
        })
    }

    /// The URN as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The region inside the URN.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The project id inside the URN.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl fmt::Display for TopicUrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A region: 1 to 64 of `a-z0-9-`.
pub(super) fn is_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A project id: 1 to 64 of `A-Za-z0-9`.
pub(super) fn is_project_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Checks the `[[notify.webhook]]` tables.
pub(super) fn webhooks(
    check: &Checker<'_>,
    raw: Vec<RawWebhook>,
) -> Result<Vec<WebhookSettings>, ConfigError> {
    let mut webhooks: Vec<WebhookSettings> = Vec::with_capacity(raw.len());
    for (index, raw) in raw.into_iter().enumerate() {
        let key = |name: &str| format!("notify.webhook[{index}].{name}");
        let url = check.https_url(&key("url"), &raw.url)?;
        if let Some(first) = webhooks.iter().position(|webhook| webhook.url == url) {
            return Err(check.fail(
                &key("url"),
                format!(
                    "is the URL of notify.webhook[{first}] too; each webhook needs its own URL"
                ),
            ));
        }
        let secret_files = match (raw.secret_file, raw.secret_files) {
            (Some(_), Some(_)) => {
                return Err(check.fail(
                    &key("secret_files"),
                    "cannot be set together with secret_file; list every secret in secret_files",
                ));
            }
            (Some(file), None) => {
                check.path(&key("secret_file"), Some(file.clone()))?;
                vec![file]
            }
            (None, Some(files)) => {
                for (position, file) in files.iter().enumerate() {
                    check.path(
                        &format!("{}[{position}]", key("secret_files")),
                        Some(file.clone()),
                    )?;
                }
                files
            }
            (None, None) => Vec::new(),
        };
        webhooks.push(WebhookSettings {
            name: name(check, &key("name"), raw.name, || {
                format!("webhook-{}", index + 1)
            })?,
            url,
            events: events(check, &key("events"), raw.events)?,
            statuses: statuses(
                check,
                &key("statuses"),
                raw.statuses,
                &DEFAULT_WEBHOOK_STATUSES,
            )?,
            secret_files,
            max_age: check.at_least(&key("max_age"), raw.max_age, Duration::from_secs(1))?,
        });
    }
    Ok(webhooks)
}

/// Checks the `[[notify.smn]]` tables against the projects.
pub(super) fn smn(
    check: &Checker<'_>,
    raw: Vec<RawSmn>,
    projects: &[ProjectSettings],
) -> Result<Vec<SmnSettings>, ConfigError> {
    let mut sinks = Vec::with_capacity(raw.len());
    for (index, raw) in raw.into_iter().enumerate() {
        let key = |name: &str| format!("notify.smn[{index}].{name}");
        let project = match raw.project {
            None => ProjectName::default(),
            Some(name) => ProjectName::parse(&name)
                .map_err(|error| check.fail(&key("project"), error.to_string()))?,
        };
        let Some(settings) = projects.iter().find(|p| p.name == project) else {
            let known: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
            return Err(check.fail(
                &key("project"),
                format!(
                    "project {project:?} is not configured (known: {})",
                    known.join(", ")
                ),
            ));
        };
        let topic_urn = TopicUrn::parse(&raw.topic_urn)
            .map_err(|error| check.fail(&key("topic_urn"), error))?;
        topic_matches(check, &key("topic_urn"), &topic_urn, settings, projects)?;
        settings
            .endpoint(Api::Smn)
            .map_err(|error| check.fail(&key("project"), error.to_string()))?;
        sinks.push(SmnSettings {
            name: name(check, &key("name"), raw.name, || {
                format!("smn-{}", index + 1)
            })?,
            topic_urn,
            events: events(check, &key("events"), raw.events)?,
            statuses: statuses(check, &key("statuses"), raw.statuses, &DEFAULT_SMN_STATUSES)?,
            max_age: check.at_least(&key("max_age"), raw.max_age, Duration::from_secs(1))?,
            project,
        });
    }
    Ok(sinks)
}

/// The URN's region and project id must be those of the sink's project;
/// when they are not, the message names the project they belong to, if one
/// does.
fn topic_matches(
    check: &Checker<'_>,
    key: &str,
    urn: &TopicUrn,
    project: &ProjectSettings,
    projects: &[ProjectSettings],
) -> Result<(), ConfigError> {
    let owns = |candidate: &ProjectSettings| {
        candidate.region.as_deref() == Some(urn.region())
            && candidate.project_id.as_deref() == Some(urn.project_id())
    };
    if owns(project) {
        return Ok(());
    }
    let prefix = super::projects::key_prefix(&project.name);
    let theirs = match (&project.region, &project.project_id) {
        (Some(region), Some(project_id)) => format!("{region}, {project_id}"),
        (None, _) => format!("no {prefix}.region in the configuration"),
        (_, None) => format!("no {prefix}.project_id in the configuration"),
    };
    let urn_place = format!(
        "is in region {} and project id {}",
        urn.region(),
        urn.project_id()
    );
    let message = match projects.iter().find(|other| owns(other)) {
        Some(other) => format!(
            "{urn_place}, those of project {}, not of project {} ({theirs}); set project = \"{}\"",
            other.name, project.name, other.name
        ),
        None => format!(
            "{urn_place}, which match no configured project; the sink's project is {} ({theirs})",
            project.name
        ),
    };
    Err(check.fail(key, message))
}

/// A sink's name: as written, or its default.
fn name(
    check: &Checker<'_>,
    key: &str,
    name: Option<String>,
    default: impl FnOnce() -> String,
) -> Result<String, ConfigError> {
    let Some(name) = name else {
        return Ok(default());
    };
    let valid = !name.is_empty()
        && name.len() <= MAX_SINK_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(name)
    } else {
        Err(check.fail(
            key,
            format!("must be 1 to {MAX_SINK_NAME_LEN} of A-Z a-z 0-9 - _, got {name:?}"),
        ))
    }
}

fn events(
    check: &Checker<'_>,
    key: &str,
    events: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let Some(events) = events else {
        return Ok(SINK_EVENTS.map(str::to_string).to_vec());
    };
    if events.is_empty() {
        return Err(check.fail(key, "must name at least one event"));
    }
    for (index, event) in events.iter().enumerate() {
        if !SINK_EVENTS.contains(&event.as_str()) {
            return Err(check.fail(
                &format!("{key}[{index}]"),
                format!("must be one of {}, got {event:?}", SINK_EVENTS.join(", ")),
            ));
        }
    }
    Ok(events)
}

fn statuses(
    check: &Checker<'_>,
    key: &str,
    statuses: Option<Vec<String>>,
    default: &[&str],
) -> Result<Vec<String>, ConfigError> {
    let Some(statuses) = statuses else {
        return Ok(default.iter().map(|status| status.to_string()).collect());
    };
    if statuses.is_empty() {
        return Err(check.fail(
            key,
            "must name at least one status (to send no job.transition, leave it out of events)",
        ));
    }
    statuses
        .into_iter()
        .enumerate()
        .map(|(index, status)| {
            let status = status.trim().to_ascii_uppercase();
            if status.is_empty() {
                Err(check.fail(&format!("{key}[{index}]"), "must not be empty"))
            } else {
                Ok(status)
            }
        })
        .collect()
}

/// Sink names are unique across every sink, webhooks and SMN alike.
pub(super) fn unique_names(
    check: &Checker<'_>,
    webhooks: &[WebhookSettings],
    smn: &[SmnSettings],
) -> Result<(), ConfigError> {
    let names = webhooks
        .iter()
        .enumerate()
        .map(|(index, sink)| (format!("notify.webhook[{index}]"), &sink.name))
        .chain(
            smn.iter()
                .enumerate()
                .map(|(index, sink)| (format!("notify.smn[{index}]"), &sink.name)),
        );
    let mut seen: Vec<(String, &String)> = Vec::new();
    for (sink, name) in names {
        if let Some((first, _)) = seen.iter().find(|(_, seen)| *seen == name) {
            return Err(check.fail(
                &format!("{sink}.name"),
                format!("{name:?} is the name of {first} too; sink names must be unique"),
            ));
        }
        seen.push((sink, name));
    }
    Ok(())
}
