//! The raw layer: what serde reads from the file and from the merged
//! layers, typed, before any check of meaning.
//!
//! Every struct refuses unknown keys, and every value has its own type
//! (durations through `humantime_serde`, numbers as numbers, names of a
//! closed set checked as they are read), so serde and the `toml` crate
//! report a typo or a wrong type with its span. Missing keys take the
//! defaults of the `Default` impls below: this is the one place where
//! defaults are written. Checks that need several keys, or the meaning of a
//! value (ranges, URLs, projects), are done in [`super::check`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{Deserializer, Error as _};

use super::projects::Api;
use super::{LOG_LEVELS, LogFormat};
use crate::huaweicloud::credentials::Source;
use crate::job::ProjectName;
use crate::job::project::DEFAULT_PROJECT;

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub cloud: RawCloud,
    pub projects: BTreeMap<ProjectKey, RawProject>,
    pub credentials: RawCredentials,
    pub poll: RawPoll,
    pub limits: RawLimits,
    pub watch: RawWatch,
    pub state: RawState,
    pub log: RawLog,
    pub metrics: RawMetrics,
    pub notify: RawNotify,
}

/// `[cloud]`: the default project, and what every project shares.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCloud {
    pub region: Option<String>,
    pub project_id: Option<String>,
    pub endpoint: Option<String>,
    pub endpoints: BTreeMap<Api, String>,
    pub ca_file: Option<PathBuf>,
}

/// One `[projects.NAME]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawProject {
    pub region: Option<String>,
    pub project_id: Option<String>,
    pub endpoint: Option<String>,
    pub endpoints: BTreeMap<Api, String>,
}

/// The name of a `[projects.NAME]` table: a valid project name, never
/// `default` (that project is `[cloud]`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ProjectKey(pub ProjectName);

impl<'de> Deserialize<'de> for ProjectKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ProjectKey, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name == DEFAULT_PROJECT {
            return Err(D::Error::custom(
                "[projects.default] is not allowed: the default project is [cloud], set its keys there",
            ));
        }
        ProjectName::parse(&name)
            .map(ProjectKey)
            .map_err(D::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Api {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Api, D::Error> {
        let name = String::deserialize(deserializer)?;
        Api::parse(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown service {name:?}, expected one of {}",
                Api::names()
            ))
        })
    }
}

/// `[credentials]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCredentials {
    #[serde(deserialize_with = "credential_source")]
    pub source: Source,
    pub access_key_file: Option<PathBuf>,
    pub secret_key_file: Option<PathBuf>,
    pub security_token_file: Option<PathBuf>,
    pub metadata_url: String,
}

impl Default for RawCredentials {
    fn default() -> RawCredentials {
        RawCredentials {
            source: Source::Auto,
            access_key_file: None,
            secret_key_file: None,
            security_token_file: None,
            metadata_url: "http://169.254.169.254".to_string(),
        }
    }
}

/// `[poll]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPoll {
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub pending_payment_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub job_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub not_found_grace: Duration,
    pub adaptive: bool,
}

impl Default for RawPoll {
    fn default() -> RawPoll {
        RawPoll {
            initial_interval: Duration::from_secs(2),
            max_interval: Duration::from_secs(30),
            pending_payment_interval: Duration::from_secs(5 * 60),
            job_timeout: Duration::from_secs(2 * 3600),
            not_found_grace: Duration::from_secs(60),
            adaptive: true,
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    pub requests_per_second: f64,
    pub burst: u32,
    pub max_in_flight: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for RawLimits {
    fn default() -> RawLimits {
        RawLimits {
            requests_per_second: 10.0,
            burst: 1,
            max_in_flight: 16,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// `[watch]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWatch {
    pub jobs: Vec<String>,
    pub dir: Option<PathBuf>,
}

/// `[state]`; the default of `dir` depends on the environment and is
/// applied in [`super::check`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawState {
    pub dir: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for RawState {
    fn default() -> RawState {
        RawState {
            dir: None,
            retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLog {
    #[serde(deserialize_with = "log_format")]
    pub format: LogFormat,
    #[serde(deserialize_with = "log_level")]
    pub level: String,
}

impl Default for RawLog {
    fn default() -> RawLog {
        RawLog {
            format: LogFormat::Json,
            level: "info".to_string(),
        }
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    pub listen: Option<SocketAddr>,
}

/// `[notify]`: the sinks.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawNotify {
    pub webhook: Vec<RawWebhook>,
    pub smn: Vec<RawSmn>,
}

/// The default `max_age` of a sink.
pub(super) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

fn default_max_age() -> Duration {
    DEFAULT_MAX_AGE
}

/// One `[[notify.webhook]]`; `url` is required.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub statuses: Option<Vec<String>>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_files: Option<Vec<PathBuf>>,
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
}

/// One `[[notify.smn]]`; `topic_urn` is required.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmn {
    pub topic_urn: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub statuses: Option<Vec<String>>,
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(default)]
    pub project: Option<String>,
}

/// The value of `choices` whose name is `text`, in any case.
fn one_of<T: Copy>(text: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            format!("must be one of {}, got {text:?}", names.join(", "))
        })
}

fn credential_source<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Source, D::Error> {
    let text = String::deserialize(deserializer)?;
    one_of(&text, &Source::ALL.map(|source| (source.as_str(), source))).map_err(D::Error::custom)
}

fn log_format<'de, D: Deserializer<'de>>(deserializer: D) -> Result<LogFormat, D::Error> {
    let text = String::deserialize(deserializer)?;
    one_of(
        &text,
        &LogFormat::ALL.map(|format| (format.as_str(), format)),
    )
    .map_err(D::Error::custom)
}

fn log_level<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    one_of(&text, &LOG_LEVELS.map(|level| (level, level)))
        .map(str::to_string)
        .map_err(D::Error::custom)
}
