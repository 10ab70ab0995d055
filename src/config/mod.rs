//! The configuration file: loading, environment overrides and validation.
//!
//! A configuration is built in three layers, lowest first: the defaults
//! below, the TOML file, and `ECS_JOBWATCH__SECTION__KEY` variables from the
//! environment. The `config` crate merges the layers; the result is checked
//! once and turned into a [`Config`] whose values are known to be valid. Every
//! error names its place: `file:line` for a problem in the file's text (bad
//! TOML, an unknown key, a value of the wrong type), the dotted key for a value
//! that is out of range, and the variable's name for a bad override.
//!
//! The environment is passed in as a map (a snapshot taken by the caller), so
//! that loading is a pure function of its inputs and tests never touch the
//! process environment.
//!
//! # Keys
//!
//! | key | default | accepted values |
//! |---|---|---|
//! | `cloud.region` | none | `[a-z0-9-]+`, at most 64 characters; required unless `cloud.endpoint` is set |
//! | `cloud.project_id` | none: the daemon looks in `HUAWEICLOUD_SDK_PROJECT_ID`, `HW_PROJECT_ID`, the profile, then instance metadata | 1 to 64 of `[A-Za-z0-9]` |
//! | `cloud.endpoint` | `https://ecs.{region}.myhuaweicloud.com` | an `https://` URL, or `http://` when the host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`); no user, query or fragment |
//! | `credentials.source` | `"auto"` | `auto`, `env`, `profile`, `files`, `metadata` |
//! | `credentials.access_key_file` | none | a path (not opened here) |
//! | `credentials.secret_key_file` | none | a path (not opened here) |
//! | `credentials.security_token_file` | none | a path (not opened here) |
//! | `credentials.metadata_url` | `"http://169.254.169.254"` | an `http://` or `https://` URL |
//! | `poll.initial_interval` | `"2s"` | a duration, at least 1s |
//! | `poll.max_interval` | `"30s"` | a duration, at least 1s and at least `poll.initial_interval` |
//! | `poll.pending_payment_interval` | `"5m"` | a duration, at least 1s |
//! | `poll.job_timeout` | `"2h"` | a duration, at least 1s |
//! | `poll.not_found_grace` | `"60s"` | a duration, at least 1s |
//! | `limits.requests_per_second` | `10` | a number greater than 0 (fractions allowed, like `0.5`), at most 10000 |
//! | `limits.burst` | `1` | an integer, at least 1 |
//! | `limits.max_in_flight` | `16` | an integer from 1 to 1024 |
//! | `limits.request_timeout` | `"10s"` | a duration from 1s to 5m |
//! | `watch.jobs` | `[]` | a list of job ids (1 to 64 of `A-Za-z0-9-_`) |
//! | `watch.dir` | none | a path to an existing directory |
//! | `state.dir` | `$STATE_DIRECTORY` when set, else `/var/lib/ecs-jobwatch` | a path to an existing directory (systemd's `StateDirectory=` creates it; checked when the daemon starts, exit 73 when missing) |
//! | `state.retention` | `"30d"` | a duration, at least 1h |
//! | `log.format` | `"json"` | `json`, `text`, `journald` |
//! | `log.level` | `"info"` | `trace`, `debug`, `info`, `warn`, `error` (any case) |
//! | `notify.webhook` | none | any number of `[[notify.webhook]]` tables with the keys below; not settable from the environment |
//! | `notify.webhook[i].url` | none, required | an `https://` URL, or `http://` for a loopback host, as `cloud.endpoint`; no user, query or fragment; each sink its own URL |
//! | `notify.webhook[i].events` | `["job.transition", "job.subjob_failed", "job.timeout", "job.not_found"]` | a non-empty list of these four names |
//! | `notify.webhook[i].statuses` | `["SUCCESS", "FAIL", "PENDING_PAYMENT"]` | a non-empty list of statuses (stored in upper case); `job.transition` is sent only into these |
//! | `notify.webhook[i].secret_file` | none | a path; the file is read when the daemon starts or reloads, never here |
//! | `notify.webhook[i].max_age` | `"24h"` | a duration, at least 1s |
//!
//! Durations are strings with a unit, in the `humantime` syntax: `"500ms"`,
//! `"2s"`, `"5m"`, `"2h"`, `"14d"`, `"1h 30m"`. A bare number is refused,
//! because a unit-less interval is a guess waiting to go wrong.
//!
//! # Environment overrides
//!
//! Any key can be set from the environment as `ECS_JOBWATCH__SECTION__KEY`
//! (double underscores; the name is not case-sensitive), for example
//! `ECS_JOBWATCH__LIMITS__REQUESTS_PER_SECOND=5`. An override wins over the
//! file. A variable with an empty value is ignored, as if it were unset. A
//! variable naming no known key is an error, so a typo never goes unnoticed.
//! `ECS_JOBWATCH__WATCH__JOBS` is a list of job ids separated by commas,
//! whitespace, or both.
//!
//! `$STATE_DIRECTORY` and `$CONFIGURATION_DIRECTORY` (set by systemd's
//! `StateDirectory=` and `ConfigurationDirectory=`) give the defaults of
//! `state.dir` and of the `--config` path; when systemd lists several
//! directories separated by colons, the first is used.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::job::id::JobId;

/// The configuration file read when neither `--config` nor
/// `$CONFIGURATION_DIRECTORY` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ecs-jobwatch/ecs-jobwatch.toml";

/// The file name looked up in `$CONFIGURATION_DIRECTORY`.
pub const CONFIG_FILE_NAME: &str = "ecs-jobwatch.toml";

/// The state directory used when `$STATE_DIRECTORY` is not set.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ecs-jobwatch";

/// The prefix of environment overrides, separator included.
pub const ENV_PREFIX: &str = "ECS_JOBWATCH__";

/// Every section and its keys; anything else is an unknown key.
const SCHEMA: &[(&str, &[&str])] = &[
    ("cloud", &["region", "project_id", "endpoint"]),
    (
        "credentials",
        &[
            "source",
            "access_key_file",
            "secret_key_file",
            "security_token_file",
            "metadata_url",
        ],
    ),
    (
        "poll",
        &[
            "initial_interval",
            "max_interval",
            "pending_payment_interval",
            "job_timeout",
            "not_found_grace",
            "adaptive",
        ],
    ),
    (
        "limits",
        &[
            "requests_per_second",
            "burst",
            "max_in_flight",
            "request_timeout",
        ],
    ),
    ("watch", &["jobs", "dir"]),
    ("state", &["dir", "retention"]),
    ("log", &["format", "level"]),
    ("metrics", &["listen"]),
    ("notify", &["webhook"]),
];

/// The keys of one `[[notify.webhook]]` table.
const WEBHOOK_KEYS: &[&str] = &["url", "events", "statuses", "secret_file", "max_age"];

/// The events a webhook may carry, and its default `events`.
pub const WEBHOOK_EVENTS: [&str; 4] = [
    crate::output::event::JOB_TRANSITION,
    crate::output::event::JOB_SUBJOB_FAILED,
    crate::output::event::JOB_TIMEOUT,
    crate::output::event::JOB_NOT_FOUND,
];

/// The default `statuses` of a webhook.
pub const DEFAULT_WEBHOOK_STATUSES: [&str; 3] = ["SUCCESS", "FAIL", "PENDING_PAYMENT"];

/// The default `max_age` of a webhook.
pub const DEFAULT_WEBHOOK_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The validated configuration. Fields are private; getters return plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    region: Option<String>,
    project_id: Option<String>,
    endpoint: Option<Url>,
    effective_endpoint: Url,
    credentials: CredentialsSettings,
    poll: PollSettings,
    limits: LimitSettings,
    watch: WatchSettings,
    state: StateSettings,
    log: LogSettings,
    metrics: MetricsSettings,
    webhooks: Vec<WebhookSettings>,
}

/// Where the access key comes from (`credentials.source`): the credential
/// chain's own [`Source`](crate::huaweicloud::credentials::Source).
pub use crate::huaweicloud::credentials::Source as CredentialSourceName;

/// The `[credentials]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct CredentialsSettings {
    /// Where the access key comes from.
    pub source: CredentialSourceName,
    /// A file holding the access key id.
    pub access_key_file: Option<PathBuf>,
    /// A file holding the secret access key.
    pub secret_key_file: Option<PathBuf>,
    /// A file holding the security token of temporary credentials.
    pub security_token_file: Option<PathBuf>,
    /// The base URL of the instance metadata service.
    pub metadata_url: Url,
}

/// The `[poll]` section: the cadence of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollSettings {
    /// The first gap after a job is first seen.
    pub initial_interval: Duration,
    /// The cap of the cadence while a job is INIT or RUNNING.
    pub max_interval: Duration,
    /// The gap while a job is PENDING_PAYMENT.
    pub pending_payment_interval: Duration,
    /// How long a job may be INIT or RUNNING before `job.timeout`.
    pub job_timeout: Duration,
    /// How long a never-seen job may answer 404 before `job.not_found`.
    pub not_found_grace: Duration,
    /// Whether polls are placed by the learned durations of finished jobs.
    pub adaptive: bool,
}

/// The `[limits]` section: the budget of API calls.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitSettings {
    /// The sustained rate of API calls for the whole process.
    pub requests_per_second: f64,
    /// How many calls may go at once above the sustained rate.
    pub burst: u32,
    /// The most calls waiting for an answer at one time.
    pub max_in_flight: usize,
    /// How long one call may take, connection included.
    pub request_timeout: Duration,
}

/// The `[watch]` section: which jobs are tracked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSettings {
    /// Jobs named in the configuration.
    pub jobs: Vec<JobId>,
    /// A directory of `*.jobs` files, checked to exist at load time.
    pub dir: Option<PathBuf>,
}

/// The `[state]` section: the state store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSettings {
    /// The directory of `state.db`.
    pub dir: PathBuf,
    /// How long finished jobs are remembered.
    pub retention: Duration,
}

/// One `[[notify.webhook]]` sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Where events are POSTed; also the sink's name in the outbox.
    pub url: Url,
    /// The events sent, a subset of [`WEBHOOK_EVENTS`].
    pub events: Vec<String>,
    /// `job.transition` is sent only into these statuses (upper case).
    pub statuses: Vec<String>,
    /// The file holding the signing secret, read by the daemon.
    pub secret_file: Option<PathBuf>,
    /// Undelivered this long: give up with `notify.dropped`.
    pub max_age: Duration,
}

/// The format of log lines (`log.format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line on stdout.
    Json,
    /// Human-readable lines on stdout.
    Text,
    /// Structured entries sent to the journal.
    Journald,
}

impl LogFormat {
    /// Every format, in the order of the documentation.
    pub const ALL: [LogFormat; 3] = [LogFormat::Json, LogFormat::Text, LogFormat::Journald];

    /// The name used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
            LogFormat::Journald => "journald",
        }
    }
}

/// The `[log]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// The format of log lines.
    pub format: LogFormat,
    /// The least severe level logged, in lowercase: `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
}

/// The `[metrics]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `/metrics`, `/healthz` and `/readyz` are served; off when `None`.
    pub listen: Option<std::net::SocketAddr>,
}

/// The levels accepted by `log.level`.
const LOG_LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

/// A configuration that cannot be used, and where the problem is.
///
/// The place is a dotted key (`poll.initial_interval`), `file:line`, a file,
/// or the name of an environment variable. `Display` is one line:
/// `{place}: {message}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct ConfigError {
    place: String,
    message: String,
}

impl ConfigError {
    fn new(place: impl Into<String>, message: impl AsRef<str>) -> ConfigError {
        // Messages from other crates sometimes span lines; the contract wants one.
        let message = message
            .as_ref()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        ConfigError {
            place: place.into(),
            message,
        }
    }

    /// Where the problem is: a dotted key, `file:line`, a file, or a variable name.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// What is wrong, without the place.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The default `--config`: `$CONFIGURATION_DIRECTORY/ecs-jobwatch.toml` when set in `env`, else `/etc/ecs-jobwatch/ecs-jobwatch.toml`.
pub fn default_config_path(env: &BTreeMap<String, String>) -> PathBuf {
    match systemd_directory(env, "CONFIGURATION_DIRECTORY") {
        Some(dir) => dir.join(CONFIG_FILE_NAME),
        None => PathBuf::from(DEFAULT_CONFIG_PATH),
    }
}

/// The first directory of a systemd `*_DIRECTORY` variable, if it names one.
fn systemd_directory(env: &BTreeMap<String, String>, name: &str) -> Option<PathBuf> {
    let value = env.get(name)?;
    let first = value.split(':').next().unwrap_or("");
    if first.is_empty() {
        None
    } else {
        Some(PathBuf::from(first))
    }
}

impl Config {
    /// Loads defaults, then the TOML file at `path`, then `ECS_JOBWATCH__SECTION__KEY` overrides found in `env`
    /// (a snapshot of environment variables; also used for $STATE_DIRECTORY), then validates.
    pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::new(&origin, format!("cannot read the file: {error}")))?;
        Config::from_toml_str(&text, &origin, env)
    }

    /// The same from TOML text (tests, the demo); `origin` names it in errors.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        check_file(text, origin)?;
        let overrides = EnvOverrides::collect(env)?;
        let raw = merge(text, origin, env, &overrides)?;
        validate(raw, &overrides)
    }

    /// The effective configuration as TOML, every key, secrets redacted (there are none in the file today except paths,
    /// which are fine to print; but never print the contents of any credential file).
    ///
    /// Keys without a value are written as comments, so the output still
    /// names every key and parses back to an equal configuration.
    pub fn to_redacted_toml(&self) -> String {
        let mut out = TomlWriter::default();
        out.section("cloud");
        out.optional_str("region", self.region.as_deref());
        out.optional_str("project_id", self.project_id.as_deref());
        out.optional_str("endpoint", self.endpoint.as_ref().map(Url::as_str));
        out.comment(&format!(
            "effective endpoint: {}",
            self.effective_endpoint.as_str()
        ));

        let credentials = &self.credentials;
        out.section("credentials");
        out.str("source", credentials.source.as_str());
        out.optional_path("access_key_file", credentials.access_key_file.as_deref());
        out.optional_path("secret_key_file", credentials.secret_key_file.as_deref());
        out.optional_path(
            "security_token_file",
            credentials.security_token_file.as_deref(),
        );
        out.str("metadata_url", credentials.metadata_url.as_str());

        let poll = &self.poll;
        out.section("poll");
        out.duration("initial_interval", poll.initial_interval);
        out.duration("max_interval", poll.max_interval);
        out.duration("pending_payment_interval", poll.pending_payment_interval);
        out.duration("job_timeout", poll.job_timeout);
        out.duration("not_found_grace", poll.not_found_grace);
        out.value("adaptive", toml::Value::Boolean(poll.adaptive));

        let limits = &self.limits;
        out.section("limits");
        out.value(
            "requests_per_second",
            toml::Value::Float(limits.requests_per_second),
        );
        out.value("burst", toml::Value::Integer(i64::from(limits.burst)));
        out.value(
            "max_in_flight",
            toml::Value::Integer(i64::try_from(limits.max_in_flight).unwrap_or(i64::MAX)),
        );
        out.duration("request_timeout", limits.request_timeout);

        out.section("watch");
        out.value(
            "jobs",
            toml::Value::Array(
                self.watch
                    .jobs
                    .iter()
                    .map(|job| toml::Value::String(job.as_str().to_owned()))
                    .collect(),
            ),
        );
        out.optional_path("dir", self.watch.dir.as_deref());

        out.section("state");
        out.optional_path("dir", Some(&self.state.dir));
        out.duration("retention", self.state.retention);

        out.section("log");
        out.str("format", self.log.format.as_str());
        out.str("level", &self.log.level);

        out.section("metrics");
        let listen = self.metrics.listen.map(|addr| addr.to_string());
        out.optional_str("listen", listen.as_deref());
        // Only the path of a secret is printed, never the secret.
        out.section("notify");
        if self.webhooks.is_empty() {
            out.comment("webhook is not set");
        } else {
            out.comment("webhook entries follow as [[notify.webhook]]");
        }
        for webhook in &self.webhooks {
            out.array_section("notify.webhook");
            out.str("url", webhook.url.as_str());
            out.value("events", string_array(&webhook.events));
            out.value("statuses", string_array(&webhook.statuses));
            out.optional_path("secret_file", webhook.secret_file.as_deref());
            out.duration("max_age", webhook.max_age);
        }
        out.text
    }

    /// The region, when configured.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The project id, when configured; otherwise the daemon looks elsewhere.
    pub fn project_id(&self) -> Option<&str> {
        self.project_id.as_deref()
    }

    /// The explicit endpoint override, when configured.
    pub fn endpoint(&self) -> Option<&Url> {
        self.endpoint.as_ref()
    }

    /// The endpoint to call: the override, else `https://ecs.{region}.myhuaweicloud.com`.
    pub fn effective_endpoint(&self) -> Url {
        self.effective_endpoint.clone()
    }

    /// The `[credentials]` section.
    pub fn credentials(&self) -> &CredentialsSettings {
        &self.credentials
    }

    /// The `[poll]` section.
    pub fn poll(&self) -> &PollSettings {
        &self.poll
    }

    /// The `[limits]` section.
    pub fn limits(&self) -> &LimitSettings {
        &self.limits
    }

    /// The `[watch]` section.
    pub fn watch(&self) -> &WatchSettings {
        &self.watch
    }

    /// The `[state]` section.
    pub fn state(&self) -> &StateSettings {
        &self.state
    }

    /// The `[log]` section.
    pub fn metrics(&self) -> &MetricsSettings {
        &self.metrics
    }

    /// The `[log]` section.
    pub fn log(&self) -> &LogSettings {
        &self.log
    }

    /// The `[[notify.webhook]]` sinks, in file order.
    pub fn webhooks(&self) -> &[WebhookSettings] {
        &self.webhooks
    }
}

fn string_array(items: &[String]) -> toml::Value {
    toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect())
}

/// Builds the TOML text of [`Config::to_redacted_toml`].
#[derive(Default)]
struct TomlWriter {
    text: String,
}

impl TomlWriter {
    fn section(&mut self, name: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let _ = writeln!(self.text, "[{name}]");
    }

    fn array_section(&mut self, name: &str) {
        let _ = writeln!(self.text, "\n[[{name}]]");
    }

    fn value(&mut self, key: &str, value: toml::Value) {
        let _ = writeln!(self.text, "{key} = {value}");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.value(key, toml::Value::String(value.to_owned()));
    }

    fn optional_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) => self.str(key, value),
            None => self.comment(&format!("{key} is not set")),
        }
    }

    fn optional_path(&mut self, key: &str, value: Option<&Path>) {
        let text = value.map(|path| path.to_string_lossy());
        self.optional_str(key, text.as_deref());
    }

    fn duration(&mut self, key: &str, value: Duration) {
        self.str(key, &humantime::format_duration(value).to_string());
    }

    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.text, "# {text}");
    }
}

// ---------------------------------------------------------------------------
// Raw layer: what serde reads, before any check of meaning.
// ---------------------------------------------------------------------------

/// A scalar as written: numbers and durations are read loosely here and
/// checked in [`validate`], where the dotted key is known.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn text(value: &str) -> Option<Scalar> {
        Some(Scalar::Text(value.to_owned()))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    cloud: RawCloud,
    credentials: RawCredentials,
    poll: RawPoll,
    limits: RawLimits,
    watch: RawWatch,
    state: RawState,
    log: RawLog,
    metrics: RawMetrics,
    notify: RawNotify,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCloud {
    region: Option<String>,
    project_id: Option<String>,
    endpoint: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCredentials {
    source: Option<String>,
    access_key_file: Option<PathBuf>,
    secret_key_file: Option<PathBuf>,
    security_token_file: Option<PathBuf>,
    metadata_url: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPoll {
    initial_interval: Option<Scalar>,
    max_interval: Option<Scalar>,
    pending_payment_interval: Option<Scalar>,
    job_timeout: Option<Scalar>,
    not_found_grace: Option<Scalar>,
    adaptive: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    requests_per_second: Option<Scalar>,
    burst: Option<Scalar>,
    max_in_flight: Option<Scalar>,
    request_timeout: Option<Scalar>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWatch {
    jobs: Option<Vec<String>>,
    dir: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawState {
    dir: Option<PathBuf>,
    retention: Option<Scalar>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNotify {
    webhook: Option<Vec<RawWebhook>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWebhook {
    url: Option<String>,
    events: Option<Vec<String>>,
    statuses: Option<Vec<String>>,
    secret_file: Option<PathBuf>,
    max_age: Option<Scalar>,
}

impl RawConfig {
    /// The lowest layer: every key that has a default, set to it.
    fn defaults(env: &BTreeMap<String, String>) -> RawConfig {
        let state_dir = systemd_directory(env, "STATE_DIRECTORY")
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        RawConfig {
            cloud: RawCloud::default(),
            credentials: RawCredentials {
                source: Some("auto".to_owned()),
                access_key_file: None,
                secret_key_file: None,
                security_token_file: None,
                metadata_url: Some("http://169.254.169.254".to_owned()),
            },
            poll: RawPoll {
                initial_interval: Scalar::text("2s"),
                max_interval: Scalar::text("30s"),
                pending_payment_interval: Scalar::text("5m"),
                job_timeout: Scalar::text("2h"),
                not_found_grace: Scalar::text("60s"),
                adaptive: Some(true),
            },
            limits: RawLimits {
                requests_per_second: Some(Scalar::Int(10)),
                burst: Some(Scalar::Int(1)),
                max_in_flight: Some(Scalar::Int(16)),
                request_timeout: Scalar::text("10s"),
            },
            watch: RawWatch {
                jobs: Some(Vec::new()),
                dir: None,
            },
            state: RawState {
                dir: Some(state_dir),
                retention: Scalar::text("30d"),
            },
            log: RawLog {
                format: Some("json".to_owned()),
                level: Some("info".to_owned()),
            },
            metrics: RawMetrics { listen: None },
            // The defaults of each webhook are applied in `validate`.
            notify: RawNotify::default(),
        }
    }
}

// ---------------------------------------------------------------------------
// The file: syntax, unknown keys and types, with line numbers.
// ---------------------------------------------------------------------------

/// The 1-based line of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Checks the file's text on its own, so that its errors carry `file:line`:
/// TOML syntax, unknown sections and keys, and the type of every value.
fn check_file(text: &str, origin: &str) -> Result<(), ConfigError> {
    let at = |span: Option<Range<usize>>| match span {
        Some(span) => format!("{origin}:{}", line_of(text, span.start)),
        None => origin.to_owned(),
    };
    let document = toml::de::DeTable::parse(text)
        .map_err(|error| ConfigError::new(at(error.span()), error.message()))?;

    // Where each value sits, to name the key of a type error by its span.
    let mut spans: Vec<(String, Range<usize>)> = Vec::new();
    for (section, value) in document.get_ref() {
        let Some((_, keys)) = SCHEMA.iter().find(|(name, _)| *name == section.get_ref()) else {
            return Err(ConfigError::new(
                at(Some(section.span())),
                format!(
                    "unknown section [{}]; known sections: {}",
                    section.get_ref(),
                    SCHEMA
                        .iter()
                        .map(|(name, _)| format!("[{name}]"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        spans.push((section.get_ref().to_string(), value.span()));
        let Some(table) = value.get_ref().as_table() else {
            // Not a table: the typed parse below reports it.
            continue;
        };
        for (key, value) in table {
            let dotted = format!("{}.{}", section.get_ref(), key.get_ref());
            if !keys.contains(&key.get_ref().as_ref()) {
                return Err(ConfigError::new(
                    at(Some(key.span())),
                    format!(
                        "unknown key `{}` in [{}]{}",
                        key.get_ref(),
                        section.get_ref(),
                        suggestion(key.get_ref(), keys)
                    ),
                ));
            }
            if let Some(array) = value.get_ref().as_array() {
                for (index, element) in array.iter().enumerate() {
                    let item = format!("{dotted}[{index}]");
                    if dotted == "notify.webhook" {
                        check_webhook_table(element, &item, &at, &mut spans)?;
                    }
                    spans.push((item, element.span()));
                }
            }
            spans.push((dotted, value.span()));
        }
    }

    toml::from_str::<RawConfig>(text).map_err(|error| {
        let span = error.span();
        // The innermost value whose span holds the error names the key.
        let key = span.as_ref().and_then(|span| {
            spans
                .iter()
                .filter(|(_, range)| {
                    range.start <= span.start && span.start < range.end.max(range.start + 1)
                })
                .min_by_key(|(_, range)| range.len())
                .map(|(key, _)| key.as_str())
        });
        let message = match key {
            Some(key) => format!("{key}: {}", error.message()),
            None => error.message().to_owned(),
        };
        ConfigError::new(at(span), message)
    })?;
    Ok(())
}

/// The keys of one `[[notify.webhook]]` table, and where its values sit.
fn check_webhook_table(
    element: &toml::Spanned<toml::de::DeValue<'_>>,
    item: &str,
    at: &dyn Fn(Option<Range<usize>>) -> String,
    spans: &mut Vec<(String, Range<usize>)>,
) -> Result<(), ConfigError> {
    let Some(table) = element.get_ref().as_table() else {
        // Not a table: the typed parse reports it.
        return Ok(());
    };
    for (key, value) in table {
        if !WEBHOOK_KEYS.contains(&key.get_ref().as_ref()) {
            return Err(ConfigError::new(
                at(Some(key.span())),
                format!(
                    "unknown key `{}` in {item}{}",
                    key.get_ref(),
                    suggestion(key.get_ref(), WEBHOOK_KEYS)
                ),
            ));
        }
        let dotted = format!("{item}.{}", key.get_ref());
        if let Some(array) = value.get_ref().as_array() {
            for (index, element) in array.iter().enumerate() {
                spans.push((format!("{dotted}[{index}]"), element.span()));
            }
        }
        spans.push((dotted, value.span()));
    }
    Ok(())
}

/// ", did you mean `x`?" when a known key is one or two edits away.
fn suggestion(unknown: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| format!(", did you mean `{candidate}`?"))
        .unwrap_or_default()
}

/// The Levenshtein distance, for suggestions on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

// ---------------------------------------------------------------------------
// The environment and the merge.
// ---------------------------------------------------------------------------

/// The overrides found in the environment, by dotted key.
#[derive(Debug, Default)]
struct EnvOverrides {
    /// Dotted key to the name of the variable that sets it.
    variables: BTreeMap<String, String>,
    /// The variables handed to the `config` crate (all but the job list).
    scalars: ::config::Map<String, String>,
    /// `ECS_JOBWATCH__WATCH__JOBS`, split.
    jobs: Option<Vec<String>>,
}

impl EnvOverrides {
    fn collect(env: &BTreeMap<String, String>) -> Result<EnvOverrides, ConfigError> {
        let mut overrides = EnvOverrides::default();
        for (name, value) in env {
            let Some(rest) = strip_prefix_ignore_case(name, ENV_PREFIX) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            let lower = rest.to_ascii_lowercase();
            let mut parts = lower.split("__");
            let (section, key) = match (parts.next(), parts.next(), parts.next()) {
                (Some(section), Some(key), None) => (section, key),
                _ => {
                    return Err(ConfigError::new(
                        name,
                        "not a configuration key; overrides are named ECS_JOBWATCH__SECTION__KEY",
                    ));
                }
            };
            let Some((_, keys)) = SCHEMA.iter().find(|(name, _)| *name == section) else {
                return Err(ConfigError::new(
                    name,
                    format!("unknown section [{section}]"),
                ));
            };
            if !keys.contains(&key) {
                return Err(ConfigError::new(
                    name,
                    format!(
                        "unknown key `{key}` in [{section}]{}",
                        suggestion(key, keys)
                    ),
                ));
            }
            let dotted = format!("{section}.{key}");
            if dotted == "notify.webhook" {
                return Err(ConfigError::new(
                    name,
                    "[[notify.webhook]] is a list of tables and cannot be set from the environment; \
                     use the configuration file",
                ));
            }
            if let Some(previous) = overrides.variables.get(&dotted) {
                return Err(ConfigError::new(
                    name,
                    format!("sets {dotted}, which {previous} sets too"),
                ));
            }
            if dotted == "watch.jobs" {
                overrides.jobs = Some(
                    value
                        .split(|c: char| c == ',' || c.is_whitespace())
                        .filter(|item| !item.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            } else {
                // The `config` crate lowercases names itself; hand it the canonical one.
                overrides.scalars.insert(
                    format!("{ENV_PREFIX}{}__{}", section, key).to_ascii_uppercase(),
                    value.clone(),
                );
            }
            overrides.variables.insert(dotted, name.clone());
        }
        Ok(overrides)
    }

    /// The place to name for a key: its variable when overridden, else the key.
    fn place(&self, key: &str) -> String {
        self.variables
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_owned())
    }
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        name.get(prefix.len()..)
    } else {
        None
    }
}

/// Merges defaults, the file and the overrides with the `config` crate.
fn merge(
    text: &str,
    origin: &str,
    env: &BTreeMap<String, String>,
    overrides: &EnvOverrides,
) -> Result<RawConfig, ConfigError> {
    let convert = |error: ::config::ConfigError| convert_error(error, origin, overrides);
    let defaults = ::config::Config::try_from(&RawConfig::defaults(env)).map_err(convert)?;
    let mut builder = ::config::Config::builder()
        .add_source(defaults)
        .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
        .add_source(
            ::config::Environment::with_prefix(ENV_PREFIX.trim_end_matches('_'))
                .prefix_separator("__")
                .separator("__")
                .source(Some(overrides.scalars.clone())),
        );
    if let Some(jobs) = &overrides.jobs {
        builder = builder
            .set_override("watch.jobs", jobs.clone())
            .map_err(convert)?;
    }
    builder
        .build()
        .and_then(|merged| merged.try_deserialize::<RawConfig>())
        .map_err(convert)
}

/// Names the place of an error from the `config` crate. Types were checked
/// in the file already, so these come from the environment in practice.
fn convert_error(
    error: ::config::ConfigError,
    origin: &str,
    overrides: &EnvOverrides,
) -> ConfigError {
    use ::config::ConfigError as E;
    match error {
        E::Type {
            unexpected,
            expected,
            key: Some(key),
            ..
        } => ConfigError::new(
            overrides.place(&key),
            format!("expected {expected}, got {unexpected}"),
        ),
        E::At {
            error,
            key: Some(key),
            ..
        } => {
            let inner = convert_error(*error, origin, overrides);
            ConfigError::new(overrides.place(&key), inner.message)
        }
        E::At { error, .. } => convert_error(*error, origin, overrides),
        other => ConfigError::new(origin, other.to_string()),
    }
}

// ---------------------------------------------------------------------------
// Validation: meaning and ranges, by dotted key.
// ---------------------------------------------------------------------------

fn validate(raw: RawConfig, overrides: &EnvOverrides) -> Result<Config, ConfigError> {
    let check = Checker { overrides };

    let region = raw
        .cloud
        .region
        .map(|region| check.region(region))
        .transpose()?;
    let project_id = raw
        .cloud
        .project_id
        .map(|id| check.project_id(id))
        .transpose()?;
    let endpoint = raw
        .cloud
        .endpoint
        .map(|text| check.endpoint(&text))
        .transpose()?;
    let effective_endpoint = match (&endpoint, &region) {
        (Some(endpoint), _) => endpoint.clone(),
        (None, Some(region)) => {
            let text = format!("https://ecs.{region}.myhuaweicloud.com");
            Url::parse(&text).map_err(|error| {
                check.fail(
                    "cloud.region",
                    format!("gives no valid endpoint {text}: {error}"),
                )
            })?
        }
        (None, None) => {
            return Err(check.fail("cloud.region", "is required unless cloud.endpoint is set"));
        }
    };

    let credentials = CredentialsSettings {
        source: check.one_of(
            "credentials.source",
            check.required("credentials.source", raw.credentials.source)?,
            &CredentialSourceName::ALL.map(|source| (source.as_str(), source)),
        )?,
        access_key_file: check.path(
            "credentials.access_key_file",
            raw.credentials.access_key_file,
        )?,
        secret_key_file: check.path(
            "credentials.secret_key_file",
            raw.credentials.secret_key_file,
        )?,
        security_token_file: check.path(
            "credentials.security_token_file",
            raw.credentials.security_token_file,
        )?,
        metadata_url: check.metadata_url(
            check.required("credentials.metadata_url", raw.credentials.metadata_url)?,
        )?,
    };

    let second = Duration::from_secs(1);
    let poll = PollSettings {
        initial_interval: check.duration(
            "poll.initial_interval",
            raw.poll.initial_interval,
            second,
            None,
        )?,
        max_interval: check.duration("poll.max_interval", raw.poll.max_interval, second, None)?,
        pending_payment_interval: check.duration(
            "poll.pending_payment_interval",
            raw.poll.pending_payment_interval,
            second,
            None,
        )?,
        job_timeout: check.duration("poll.job_timeout", raw.poll.job_timeout, second, None)?,
        not_found_grace: check.duration(
            "poll.not_found_grace",
            raw.poll.not_found_grace,
            second,
            None,
        )?,
        adaptive: check.required("poll.adaptive", raw.poll.adaptive)?,
    };
    if poll.max_interval < poll.initial_interval {
        return Err(check.fail(
            "poll.max_interval",
            format!(
                "must be at least poll.initial_interval ({}), got {}",
                humantime::format_duration(poll.initial_interval),
                humantime::format_duration(poll.max_interval)
            ),
        ));
    }

    let limits = LimitSettings {
        requests_per_second: check
            .rate("limits.requests_per_second", raw.limits.requests_per_second)?,
        burst: check.integer("limits.burst", raw.limits.burst, 1, i64::from(u32::MAX))? as u32,
        max_in_flight: check.integer("limits.max_in_flight", raw.limits.max_in_flight, 1, 1024)?
            as usize,
        request_timeout: check.duration(
            "limits.request_timeout",
            raw.limits.request_timeout,
            second,
            Some(Duration::from_secs(5 * 60)),
        )?,
    };

    let watch = WatchSettings {
        jobs: check.jobs(raw.watch.jobs.unwrap_or_default())?,
        dir: check.watch_dir(raw.watch.dir)?,
    };

    let state = StateSettings {
        dir: check.required("state.dir", check.path("state.dir", raw.state.dir)?)?,
        retention: check.duration(
            "state.retention",
            raw.state.retention,
            Duration::from_secs(3600),
            None,
        )?,
    };

    let level = check
        .required("log.level", raw.log.level)?
        .to_ascii_lowercase();
    if !LOG_LEVELS.contains(&level.as_str()) {
        return Err(check.fail(
            "log.level",
            format!("must be one of {}, got {level:?}", LOG_LEVELS.join(", ")),
        ));
    }
    let log = LogSettings {
        format: check.one_of(
            "log.format",
            check.required("log.format", raw.log.format)?,
            &LogFormat::ALL.map(|format| (format.as_str(), format)),
        )?,
        level,
    };

    let metrics = MetricsSettings {
        listen: raw
            .metrics
            .listen
            .map(|text| {
                text.parse::<std::net::SocketAddr>().map_err(|_| {
                    check.fail(
                        "metrics.listen",
                        format!(
                            "must be an address with a port, like 127.0.0.1:9464, got {text:?}"
                        ),
                    )
                })
            })
            .transpose()?,
    };
    let webhooks = check.webhooks(raw.notify.webhook.unwrap_or_default())?;

    Ok(Config {
        region,
        project_id,
        endpoint,
        effective_endpoint,
        credentials,
        poll,
        limits,
        watch,
        state,
        log,
        metrics,
        webhooks,
    })
}

/// Checks values and names the key (or its variable) when one is wrong.
struct Checker<'a> {
    overrides: &'a EnvOverrides,
}

impl Checker<'_> {
    fn fail(&self, key: &str, message: impl AsRef<str>) -> ConfigError {
        ConfigError::new(self.overrides.place(key), message)
    }

    fn is_overridden(&self, key: &str) -> bool {
        self.overrides.variables.contains_key(key)
    }

    fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| self.fail(key, "is required"))
    }

    fn region(&self, region: String) -> Result<String, ConfigError> {
        let valid = !region.is_empty()
            && region.len() <= 64
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(region)
        } else {
            Err(self.fail(
                "cloud.region",
                format!("must be 1 to 64 of a-z 0-9 -, like \"cn-north-4\", got {region:?}"),
            ))
        }
    }

    fn project_id(&self, id: String) -> Result<String, ConfigError> {
        let valid =
            !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric());
        if valid {
            Ok(id)
        } else {
            Err(self.fail(
                "cloud.project_id",
                format!("must be 1 to 64 of A-Z a-z 0-9, got {id:?}"),
            ))
        }
    }

    fn url(&self, key: &str, text: &str) -> Result<Url, ConfigError> {
        let url = Url::parse(text)
            .map_err(|error| self.fail(key, format!("is not a URL ({error}): {text:?}")))?;
        if url.host().is_none() {
            return Err(self.fail(key, format!("has no host: {text:?}")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.fail(key, "must not contain a user name or password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(self.fail(key, format!("must not have a query or fragment: {text:?}")));
        }
        Ok(url)
    }

    fn endpoint(&self, text: &str) -> Result<Url, ConfigError> {
        self.https_url("cloud.endpoint", text)
    }

    /// An `https://` URL, or `http://` for a loopback host.
    fn https_url(&self, key: &str, text: &str) -> Result<Url, ConfigError> {
        let url = self.url(key, text)?;
        match url.scheme() {
            "https" => Ok(url),
            "http" if is_loopback(&url) => Ok(url),
            "http" => Err(self.fail(
                key,
                format!(
                    "must be https:// (plain http:// only for loopback addresses), got {text:?}"
                ),
            )),
            other => Err(self.fail(
                key,
                format!("must be an https:// URL, got scheme {other:?}"),
            )),
        }
    }

    fn webhooks(&self, raw: Vec<RawWebhook>) -> Result<Vec<WebhookSettings>, ConfigError> {
        let mut webhooks: Vec<WebhookSettings> = Vec::with_capacity(raw.len());
        for (index, raw) in raw.into_iter().enumerate() {
            let key = |name: &str| format!("notify.webhook[{index}].{name}");
            let url = self.https_url(&key("url"), &self.required(&key("url"), raw.url)?)?;
            if let Some(first) = webhooks.iter().position(|webhook| webhook.url == url) {
                return Err(self.fail(
                    &key("url"),
                    format!(
                        "is the URL of notify.webhook[{first}] too; each sink needs its own URL"
                    ),
                ));
            }
            let events = match raw.events {
                None => WEBHOOK_EVENTS.iter().map(|name| name.to_string()).collect(),
                Some(events) => self.webhook_events(&key("events"), events)?,
            };
            let statuses = match raw.statuses {
                None => DEFAULT_WEBHOOK_STATUSES
                    .iter()
                    .map(|status| status.to_string())
                    .collect(),
                Some(statuses) => self.webhook_statuses(&key("statuses"), statuses)?,
            };
            let max_age = match raw.max_age {
                None => DEFAULT_WEBHOOK_MAX_AGE,
                some => self.duration(&key("max_age"), some, Duration::from_secs(1), None)?,
            };
            webhooks.push(WebhookSettings {
                url,
                events,
                statuses,
                secret_file: self.path(&key("secret_file"), raw.secret_file)?,
                max_age,
            });
        }
        Ok(webhooks)
    }

    fn webhook_events(&self, key: &str, events: Vec<String>) -> Result<Vec<String>, ConfigError> {
        if events.is_empty() {
            return Err(self.fail(key, "must name at least one event"));
        }
        for (index, event) in events.iter().enumerate() {
            if !WEBHOOK_EVENTS.contains(&event.as_str()) {
                return Err(ConfigError::new(
                    format!("{key}[{index}]"),
                    format!(
                        "must be one of {}, got {event:?}",
                        WEBHOOK_EVENTS.join(", ")
                    ),
                ));
            }
        }
        Ok(events)
    }

    fn webhook_statuses(
        &self,
        key: &str,
        statuses: Vec<String>,
    ) -> Result<Vec<String>, ConfigError> {
        if statuses.is_empty() {
            return Err(self.fail(
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
                    Err(ConfigError::new(
                        format!("{key}[{index}]"),
                        "must not be empty",
                    ))
                } else {
                    Ok(status)
                }
            })
            .collect()
    }

    fn metadata_url(&self, text: String) -> Result<Url, ConfigError> {
        let key = "credentials.metadata_url";
        let url = self.url(key, &text)?;
        match url.scheme() {
            "http" | "https" => Ok(url),
            other => Err(self.fail(
                key,
                format!("must be an http:// or https:// URL, got scheme {other:?}"),
            )),
        }
    }

    fn one_of<T: Copy>(
        &self,
        key: &str,
        text: String,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&text))
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                self.fail(
                    key,
                    format!("must be one of {}, got {text:?}", names.join(", ")),
                )
            })
    }

    fn path(&self, key: &str, path: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
        match path {
            Some(path) if path.as_os_str().is_empty() => Err(self.fail(key, "must not be empty")),
            other => Ok(other),
        }
    }

    fn duration(
        &self,
        key: &str,
        value: Option<Scalar>,
        min: Duration,
        max: Option<Duration>,
    ) -> Result<Duration, ConfigError> {
        let needs_unit =
            |got: &str| self.fail(key, format!("needs a unit, like \"2s\" (got {got})"));
        let duration = match self.required(key, value)? {
            Scalar::Text(text) => {
                if text.trim().parse::<f64>().is_ok() {
                    return Err(needs_unit(&format!("{text:?}")));
                }
                humantime::parse_duration(text.trim()).map_err(|error| {
                    self.fail(
                        key,
                        format!("is not a duration like \"2s\" or \"5m\" ({error}), got {text:?}"),
                    )
                })?
            }
            Scalar::Int(number) => return Err(needs_unit(&number.to_string())),
            Scalar::Float(number) => return Err(needs_unit(&number.to_string())),
            Scalar::Bool(flag) => {
                return Err(self.fail(key, format!("must be a duration like \"2s\", got {flag}")));
            }
        };
        if duration < min {
            return Err(self.fail(
                key,
                format!(
                    "must be at least {} (got {})",
                    humantime::format_duration(min),
                    humantime::format_duration(duration)
                ),
            ));
        }
        if let Some(max) = max
            && duration > max
        {
            return Err(self.fail(
                key,
                format!(
                    "must be at most {} (got {})",
                    humantime::format_duration(max),
                    humantime::format_duration(duration)
                ),
            ));
        }
        Ok(duration)
    }

    /// A number; text is accepted only from the environment, where everything is text.
    fn number_text<'t>(
        &self,
        key: &str,
        value: &'t Scalar,
    ) -> Result<Option<&'t str>, ConfigError> {
        match value {
            Scalar::Text(text) if self.is_overridden(key) => Ok(Some(text.trim())),
            Scalar::Text(text) => {
                Err(self.fail(key, format!("must be a number, not the string {text:?}")))
            }
            Scalar::Bool(flag) => Err(self.fail(key, format!("must be a number, got {flag}"))),
            _ => Ok(None),
        }
    }

    fn integer(
        &self,
        key: &str,
        value: Option<Scalar>,
        min: i64,
        max: i64,
    ) -> Result<i64, ConfigError> {
        let value = self.required(key, value)?;
        let number = match (&value, self.number_text(key, &value)?) {
            (_, Some(text)) => text
                .parse::<i64>()
                .map_err(|error| self.fail(key, format!("{error}: {text:?}")))?,
            (Scalar::Int(number), None) => *number,
            (Scalar::Float(number), None) => {
                return Err(self.fail(key, format!("must be a whole number, got {number}")));
            }
            _ => return Err(self.fail(key, "must be a number")),
        };
        if number < min || number > max {
            return Err(self.fail(key, format!("must be from {min} to {max}, got {number}")));
        }
        Ok(number)
    }

    fn rate(&self, key: &str, value: Option<Scalar>) -> Result<f64, ConfigError> {
        let value = self.required(key, value)?;
        let number = match (&value, self.number_text(key, &value)?) {
            (_, Some(text)) => text
                .parse::<f64>()
                .map_err(|error| self.fail(key, format!("{error}: {text:?}")))?,
            (Scalar::Int(number), None) => *number as f64,
            (Scalar::Float(number), None) => *number,
            _ => return Err(self.fail(key, "must be a number")),
        };
        // Written so that NaN fails too.
        if !(number > 0.0 && number <= 10_000.0) {
            return Err(self.fail(
                key,
                format!("must be greater than 0 and at most 10000, got {number}"),
            ));
        }
        Ok(number)
    }

    fn jobs(&self, jobs: Vec<String>) -> Result<Vec<JobId>, ConfigError> {
        let from_env = self.is_overridden("watch.jobs");
        jobs.iter()
            .enumerate()
            .map(|(index, job)| {
                JobId::parse(job).map_err(|error| {
                    if from_env {
                        self.fail("watch.jobs", format!("item {index} ({job:?}): {error}"))
                    } else {
                        ConfigError::new(
                            format!("watch.jobs[{index}]"),
                            format!("{error}: {job:?}"),
                        )
                    }
                })
            })
            .collect()
    }

    fn watch_dir(&self, dir: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
        let Some(dir) = self.path("watch.dir", dir)? else {
            return Ok(None);
        };
        match std::fs::metadata(&dir) {
            Ok(metadata) if metadata.is_dir() => Ok(Some(dir)),
            Ok(_) => Err(self.fail("watch.dir", format!("{} is not a directory", dir.display()))),
            Err(error) => Err(self.fail(
                "watch.dir",
                format!("cannot use {}: {error}", dir.display()),
            )),
        }
    }
}

/// Whether a URL's host is a loopback address or `localhost`.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    // IPv6 hosts come bracketed, as in `http://[::1]:8080`.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    /// The example of the contract, section "Configuration file (TOML)".
    const CONTRACT_EXAMPLE: &str = r#"
[cloud]
region = "cn-north-4"          # endpoint defaults to https://ecs.{region}.myhuaweicloud.com
project_id = "0123456789abcdef0123456789abcdef"   # or HUAWEICLOUD_SDK_PROJECT_ID, or instance metadata
# endpoint = "https://ecs.eu-de.otc.t-systems.com"  # override; plain http only for loopback addresses

[credentials]
source = "auto"                # auto | env | profile | files | metadata
# files: access_key_file / secret_key_file / security_token_file,
# default $CREDENTIALS_DIRECTORY/access_key and .../secret_key (systemd LoadCredential=)

[poll]
initial_interval = "2s"        # first gap after a job is first seen
max_interval = "30s"           # cap of the per-job cadence while INIT/RUNNING
pending_payment_interval = "5m"
job_timeout = "2h"             # INIT/RUNNING longer than this: job.timeout, polling goes on at max_interval
not_found_grace = "60s"        # 404 for a never-seen job this long: job.not_found

[limits]
requests_per_second = 10       # one budget for every API call the process makes
max_in_flight = 16
request_timeout = "10s"

[watch]
jobs = ["ff80808288d41e1b018990260955686a"]
dir = "/etc/ecs-jobwatch/jobs.d"   # optional; see below

[state]
dir = "/var/lib/ecs-jobwatch"  # default $STATE_DIRECTORY, else this
retention = "30d"              # how long finished jobs are remembered

[log]
format = "json"                # json | text | journald
level = "info"
"#;

    fn no_env() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn load(text: &str, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, "test.toml", env)
    }

    const MINIMAL: &str = "[cloud]\nregion = \"cn-north-4\"\n";

    /// Loads `text` with `env` and compares the error line (or "ok").
    fn check(text: &str, env: &[(&str, &str)], expected: &str) {
        let got = match load(text, &self::env(env)) {
            Ok(_) => "ok".to_owned(),
            Err(error) => error.to_string(),
        };
        assert_eq!(got, expected, "input:\n{text}\nenv: {env:?}");
    }

    #[test]
    fn defaults_applied() {
        let config = load(MINIMAL, &no_env()).unwrap();
        assert_eq!(config.region(), Some("cn-north-4"));
        assert_eq!(config.project_id(), None);
        assert_eq!(config.endpoint(), None);
        assert_eq!(
            config.effective_endpoint().as_str(),
            "https://ecs.cn-north-4.myhuaweicloud.com/"
        );
        let credentials = config.credentials();
        assert_eq!(credentials.source, CredentialSourceName::Auto);
        assert_eq!(credentials.access_key_file, None);
        assert_eq!(credentials.secret_key_file, None);
        assert_eq!(credentials.security_token_file, None);
        assert_eq!(credentials.metadata_url.as_str(), "http://169.254.169.254/");
        assert_eq!(
            config.poll(),
            &PollSettings {
                initial_interval: Duration::from_secs(2),
                max_interval: Duration::from_secs(30),
                pending_payment_interval: Duration::from_secs(300),
                job_timeout: Duration::from_secs(7200),
                not_found_grace: Duration::from_secs(60),
                adaptive: true,
            }
        );
        assert_eq!(
            config.limits(),
            &LimitSettings {
                requests_per_second: 10.0,
                burst: 1,
                max_in_flight: 16,
                request_timeout: Duration::from_secs(10),
            }
        );
        assert_eq!(config.watch().jobs, Vec::<JobId>::new());
        assert_eq!(config.watch().dir, None);
        assert_eq!(config.state().dir, PathBuf::from("/var/lib/ecs-jobwatch"));
        assert_eq!(config.state().retention, Duration::from_secs(30 * 86400));
        assert_eq!(config.log().format, LogFormat::Json);
        assert_eq!(config.log().level, "info");
        assert_eq!(config.webhooks(), &[]);
    }

    #[test]
    fn webhook_defaults_and_values() {
        let text = format!(
            "{MINIMAL}[[notify.webhook]]\nurl = \"https://hooks.example.com/a\"\n\
             [[notify.webhook]]\nurl = \"http://127.0.0.1:8080/b\"\nevents = [\"job.timeout\"]\n\
             statuses = [\"fail\", \" Success \"]\nsecret_file = \"/run/credentials/hook\"\nmax_age = \"3s\"\n"
        );
        let config = load(&text, &no_env()).unwrap();
        assert_eq!(
            config.webhooks(),
            &[
                WebhookSettings {
                    url: Url::parse("https://hooks.example.com/a").unwrap(),
                    events: WEBHOOK_EVENTS.map(String::from).to_vec(),
                    statuses: DEFAULT_WEBHOOK_STATUSES.map(String::from).to_vec(),
                    secret_file: None,
                    max_age: Duration::from_secs(24 * 3600),
                },
                WebhookSettings {
                    url: Url::parse("http://127.0.0.1:8080/b").unwrap(),
                    events: vec!["job.timeout".into()],
                    statuses: vec!["FAIL".into(), "SUCCESS".into()],
                    secret_file: Some(PathBuf::from("/run/credentials/hook")),
                    max_age: Duration::from_secs(3),
                },
            ]
        );
        // The contract's example of the section.
        let contract = r#"
[[notify.webhook]]             # any number of these; none by default
url = "https://hooks.example.com/ecs-jobs"
events = ["job.transition", "job.subjob_failed", "job.timeout", "job.not_found"]   # default: these four
statuses = ["SUCCESS", "FAIL", "PENDING_PAYMENT"]   # job.transition only into these; this is the default
secret_file = "/run/credentials/ecs-jobwatch.service/webhook_secret"   # optional
max_age = "24h"                # undelivered this long: give up with a notify.dropped ERROR event
"#;
        let config = load(&format!("{MINIMAL}{contract}"), &no_env()).unwrap();
        assert_eq!(config.webhooks().len(), 1);
    }

    #[test]
    fn webhook_checks_name_the_key() {
        let hook = |body: &str| format!("{MINIMAL}[[notify.webhook]]\n{body}\n");
        let url = "url = \"https://h.example.com/x\"";
        let cases: Vec<(String, &str)> = vec![
            (hook(url), "ok"),
            (
                hook("events = [\"job.timeout\"]"),
                "notify.webhook[0].url: is required",
            ),
            (
                hook("url = \"http://hooks.example.com/x\""),
                "notify.webhook[0].url: must be https:// (plain http:// only for loopback addresses), got \"http://hooks.example.com/x\"",
            ),
            (
                hook("url = \"https://user:pw@h.example.com/\""),
                "notify.webhook[0].url: must not contain a user name or password",
            ),
            (
                hook("url = \"https://h.example.com/?token=1\""),
                "notify.webhook[0].url: must not have a query or fragment: \"https://h.example.com/?token=1\"",
            ),
            (
                format!(
                    "{}[[notify.webhook]]\nurl = \"https://h.example.com/x\"\n",
                    hook(url)
                ),
                "notify.webhook[1].url: is the URL of notify.webhook[0] too; each sink needs its own URL",
            ),
            (
                hook(&format!(
                    "{url}\nevents = [\"job.transition\", \"api.error\"]"
                )),
                "notify.webhook[0].events[1]: must be one of job.transition, job.subjob_failed, job.timeout, job.not_found, got \"api.error\"",
            ),
            (
                hook(&format!("{url}\nevents = []")),
                "notify.webhook[0].events: must name at least one event",
            ),
            (
                hook(&format!("{url}\nstatuses = []")),
                "notify.webhook[0].statuses: must name at least one status (to send no job.transition, leave it out of events)",
            ),
            (
                hook(&format!("{url}\nstatuses = [\"FAIL\", \" \"]")),
                "notify.webhook[0].statuses[1]: must not be empty",
            ),
            (
                hook(&format!("{url}\nmax_age = \"500ms\"")),
                "notify.webhook[0].max_age: must be at least 1s (got 500ms)",
            ),
            (
                hook(&format!("{url}\nmax_age = 60")),
                "notify.webhook[0].max_age: needs a unit, like \"2s\" (got 60)",
            ),
            (
                hook(&format!("{url}\nsecret_file = \"\"")),
                "notify.webhook[0].secret_file: must not be empty",
            ),
            (
                hook(&format!("{url}\nsecret = \"x\"")),
                "test.toml:5: unknown key `secret` in notify.webhook[0]",
            ),
            (
                hook(&format!("{url}\nstatus = [\"FAIL\"]")),
                "test.toml:5: unknown key `status` in notify.webhook[0], did you mean `statuses`?",
            ),
            (
                hook(&format!("{url}\nevents = \"job.timeout\"")),
                "test.toml:5: notify.webhook[0].events: invalid type: string \"job.timeout\", expected a sequence",
            ),
            (
                hook(&format!("{url}\nevents = [\"job.timeout\", 7]")),
                "test.toml:5: notify.webhook[0].events[1]: invalid type: integer `7`, expected a string",
            ),
            (
                format!("{MINIMAL}[notify]\nwebhooks = []\n"),
                "test.toml:4: unknown key `webhooks` in [notify], did you mean `webhook`?",
            ),
            (format!("{MINIMAL}[notify]\nwebhook = []\n"), "ok"),
        ];
        for (text, expected) in &cases {
            check(text, &[], expected);
        }
        check(
            MINIMAL,
            &[("ECS_JOBWATCH__NOTIFY__WEBHOOK", "https://h.example.com/")],
            "ECS_JOBWATCH__NOTIFY__WEBHOOK: [[notify.webhook]] is a list of tables and cannot be set from the environment; use the configuration file",
        );
    }

    #[test]
    fn contract_example_accepted() {
        // The example names /etc/ecs-jobwatch/jobs.d, which must exist; point it at a real directory.
        let dir = tempfile::tempdir().unwrap();
        let text = CONTRACT_EXAMPLE.replace(
            "/etc/ecs-jobwatch/jobs.d",
            &dir.path().display().to_string(),
        );
        let config = load(&text, &no_env()).unwrap();
        assert_eq!(
            config.project_id(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            config.watch().jobs,
            vec![JobId::parse("ff80808288d41e1b018990260955686a").unwrap()]
        );
        assert_eq!(config.watch().dir.as_deref(), Some(dir.path()));

        // Unchanged, the example fails only on the directory it names, and says so.
        if !Path::new("/etc/ecs-jobwatch/jobs.d").is_dir() {
            let error = load(CONTRACT_EXAMPLE, &no_env()).unwrap_err();
            assert_eq!(error.place(), "watch.dir");
        }
    }

    #[test]
    fn checks_name_the_key() {
        let cases: &[(&str, &str)] = &[
            // cloud
            ("", "cloud.region: is required unless cloud.endpoint is set"),
            (
                "[cloud]\nregion = \"CN_North\"",
                "cloud.region: must be 1 to 64 of a-z 0-9 -, like \"cn-north-4\", got \"CN_North\"",
            ),
            (
                "[cloud]\nregion = \"cn-north-4\"\nproject_id = \"abc-def\"",
                "cloud.project_id: must be 1 to 64 of A-Z a-z 0-9, got \"abc-def\"",
            ),
            ("[cloud]\nendpoint = \"https://ecs.example.com\"", "ok"),
            ("[cloud]\nendpoint = \"http://127.0.0.1:8080\"", "ok"),
            ("[cloud]\nendpoint = \"http://127.8.9.10\"", "ok"),
            ("[cloud]\nendpoint = \"http://[::1]:8080\"", "ok"),
            ("[cloud]\nendpoint = \"http://LOCALHOST:8080\"", "ok"),
            (
                "[cloud]\nendpoint = \"http://ecs.example.com\"",
                "cloud.endpoint: must be https:// (plain http:// only for loopback addresses), got \"http://ecs.example.com\"",
            ),
            (
                "[cloud]\nendpoint = \"http://localhost.example.com\"",
                "cloud.endpoint: must be https:// (plain http:// only for loopback addresses), got \"http://localhost.example.com\"",
            ),
            (
                "[cloud]\nendpoint = \"http://10.0.0.1\"",
                "cloud.endpoint: must be https:// (plain http:// only for loopback addresses), got \"http://10.0.0.1\"",
            ),
            (
                "[cloud]\nendpoint = \"ftp://ecs.example.com\"",
                "cloud.endpoint: must be an https:// URL, got scheme \"ftp\"",
            ),
            (
                "[cloud]\nendpoint = \"https://ecs.example.com/?a=b\"",
                "cloud.endpoint: must not have a query or fragment: \"https://ecs.example.com/?a=b\"",
            ),
            (
                "[cloud]\nendpoint = \"https://ecs.example.com/#x\"",
                "cloud.endpoint: must not have a query or fragment: \"https://ecs.example.com/#x\"",
            ),
            (
                "[cloud]\nendpoint = \"https://user:pw@ecs.example.com/\"",
                "cloud.endpoint: must not contain a user name or password",
            ),
            (
                "[cloud]\nendpoint = \"not a url\"",
                "cloud.endpoint: is not a URL (relative URL without a base): \"not a url\"",
            ),
        ];
        for (text, expected) in cases {
            check(text, &[], expected);
        }

        let with_region = |rest: &str| format!("{MINIMAL}{rest}");
        let cases: &[(&str, &str)] = &[
            // credentials
            (
                "[credentials]\nsource = \"files\"\naccess_key_file = \"/run/ak\"",
                "ok",
            ),
            ("[credentials]\nsource = \"Metadata\"", "ok"),
            (
                "[credentials]\nsource = \"vault\"",
                "credentials.source: must be one of auto, env, profile, files, metadata, got \"vault\"",
            ),
            (
                "[credentials]\nsecret_key_file = \"\"",
                "credentials.secret_key_file: must not be empty",
            ),
            (
                "[credentials]\nmetadata_url = \"https://169.254.169.254\"",
                "ok",
            ),
            (
                "[credentials]\nmetadata_url = \"file:///etc/passwd\"",
                "credentials.metadata_url: has no host: \"file:///etc/passwd\"",
            ),
            // poll
            (
                "[poll]\ninitial_interval = \"500ms\"",
                "poll.initial_interval: must be at least 1s (got 500ms)",
            ),
            (
                "[poll]\ninitial_interval = 5",
                "poll.initial_interval: needs a unit, like \"2s\" (got 5)",
            ),
            (
                "[poll]\ninitial_interval = \"5\"",
                "poll.initial_interval: needs a unit, like \"2s\" (got \"5\")",
            ),
            (
                "[poll]\ninitial_interval = \"soon\"",
                "poll.initial_interval: is not a duration like \"2s\" or \"5m\" (expected number at 0), got \"soon\"",
            ),
            (
                "[poll]\nmax_interval = \"0s\"",
                "poll.max_interval: must be at least 1s (got 0s)",
            ),
            (
                "[poll]\ninitial_interval = \"1m\"\nmax_interval = \"30s\"",
                "poll.max_interval: must be at least poll.initial_interval (1m), got 30s",
            ),
            (
                "[poll]\ninitial_interval = \"30s\"\nmax_interval = \"30s\"",
                "ok",
            ),
            (
                "[poll]\npending_payment_interval = \"1ms\"",
                "poll.pending_payment_interval: must be at least 1s (got 1ms)",
            ),
            (
                "[poll]\njob_timeout = \"0s\"",
                "poll.job_timeout: must be at least 1s (got 0s)",
            ),
            (
                "[poll]\nnot_found_grace = 60",
                "poll.not_found_grace: needs a unit, like \"2s\" (got 60)",
            ),
            // limits
            ("[limits]\nrequests_per_second = 0.5", "ok"),
            ("[limits]\nrequests_per_second = 10000", "ok"),
            (
                "[limits]\nrequests_per_second = 0",
                "limits.requests_per_second: must be greater than 0 and at most 10000, got 0",
            ),
            (
                "[limits]\nrequests_per_second = -1.5",
                "limits.requests_per_second: must be greater than 0 and at most 10000, got -1.5",
            ),
            (
                "[limits]\nrequests_per_second = 10001",
                "limits.requests_per_second: must be greater than 0 and at most 10000, got 10001",
            ),
            (
                "[limits]\nrequests_per_second = nan",
                "limits.requests_per_second: must be greater than 0 and at most 10000, got NaN",
            ),
            (
                "[limits]\nrequests_per_second = \"5\"",
                "limits.requests_per_second: must be a number, not the string \"5\"",
            ),
            (
                "[limits]\nburst = 0",
                "limits.burst: must be from 1 to 4294967295, got 0",
            ),
            (
                "[limits]\nburst = 2.5",
                "limits.burst: must be a whole number, got 2.5",
            ),
            ("[limits]\nmax_in_flight = 1024", "ok"),
            (
                "[limits]\nmax_in_flight = 1025",
                "limits.max_in_flight: must be from 1 to 1024, got 1025",
            ),
            (
                "[limits]\nmax_in_flight = 0",
                "limits.max_in_flight: must be from 1 to 1024, got 0",
            ),
            ("[limits]\nrequest_timeout = \"5m\"", "ok"),
            (
                "[limits]\nrequest_timeout = \"301s\"",
                "limits.request_timeout: must be at most 5m (got 5m 1s)",
            ),
            (
                "[limits]\nrequest_timeout = \"999ms\"",
                "limits.request_timeout: must be at least 1s (got 999ms)",
            ),
            // watch
            ("[watch]\njobs = [\"a\", \"B-_9\"]", "ok"),
            (
                "[watch]\njobs = [\"a\", \"b\", \"c\", \"not/valid\"]",
                "watch.jobs[3]: job id contains '/', only A-Z a-z 0-9 - _ are allowed: \"not/valid\"",
            ),
            (
                "[watch]\njobs = [\"\"]",
                "watch.jobs[0]: job id is empty: \"\"",
            ),
            (
                "[watch]\ndir = \"/nonexistent/ecs-jobwatch-test\"",
                "watch.dir: cannot use /nonexistent/ecs-jobwatch-test: No such file or directory (os error 2)",
            ),
            // state
            ("[state]\ndir = \"/tmp/does-not-need-to-exist\"", "ok"),
            ("[state]\ndir = \"\"", "state.dir: must not be empty"),
            (
                "[state]\nretention = \"59m\"",
                "state.retention: must be at least 1h (got 59m)",
            ),
            ("[state]\nretention = \"14d\"", "ok"),
            // log
            ("[log]\nformat = \"journald\"\nlevel = \"DEBUG\"", "ok"),
            (
                "[log]\nformat = \"xml\"",
                "log.format: must be one of json, text, journald, got \"xml\"",
            ),
            (
                "[log]\nlevel = \"verbose\"",
                "log.level: must be one of trace, debug, info, warn, error, got \"verbose\"",
            ),
        ];
        for (rest, expected) in cases {
            check(&with_region(rest), &[], expected);
        }
    }

    #[test]
    fn watch_dir_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "").unwrap();
        check(
            &format!("{MINIMAL}[watch]\ndir = {:?}", dir.path()),
            &[],
            "ok",
        );
        check(
            &format!("{MINIMAL}[watch]\ndir = {:?}", file),
            &[],
            &format!("watch.dir: {} is not a directory", file.display()),
        );
    }

    #[test]
    fn file_errors_carry_the_line() {
        let cases: &[(&str, &str)] = &[
            (
                "[cloud]\nregion = \"cn-north-4\"\n\n[poll]\ninitial_interval = \"2s\"\n\nintial_interval = \"3s\"\n",
                "test.toml:7: unknown key `intial_interval` in [poll], did you mean `initial_interval`?",
            ),
            (
                "[cloud]\nregion = \"cn-north-4\"\n[metrix]\nlisten = \"x\"\n",
                "test.toml:3: unknown section [metrix]; known sections: [cloud], [credentials], [poll], [limits], [watch], [state], [log], [metrics], [notify]",
            ),
            (
                "[cloud]\nregion = \"cn-north-4\"\nflavour = 1\n",
                "test.toml:3: unknown key `flavour` in [cloud]",
            ),
            (
                "poll.intial_interval = \"2s\"\n",
                "test.toml:1: unknown key `intial_interval` in [poll], did you mean `initial_interval`?",
            ),
            (
                "[cloud\nregion = 1\n",
                "test.toml:1: unclosed table, expected `]`",
            ),
            (
                "[cloud]\nregion = \"cn-north-4\"\nregion = \"x\"\n",
                "test.toml:3: duplicate key",
            ),
            (
                "[cloud]\nregion = 4\n",
                "test.toml:2: cloud.region: invalid type: integer `4`, expected a string",
            ),
            (
                "[cloud]\nregion = \"cn-north-4\"\n[watch]\njobs = [\"a\",\n  5]\n",
                "test.toml:5: watch.jobs[1]: invalid type: integer `5`, expected a string",
            ),
            (
                "[cloud]\nregion = \"cn-north-4\"\n[watch]\njobs = \"a\"\n",
                "test.toml:4: watch.jobs: invalid type: string \"a\", expected a sequence",
            ),
            (
                "poll = 5\n",
                "test.toml:1: poll: invalid type: integer `5`, expected struct RawPoll",
            ),
        ];
        for (text, expected) in cases {
            check(text, &[], expected);
        }
    }

    #[test]
    fn missing_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        let error = Config::load(&path, &no_env()).unwrap_err();
        assert_eq!(error.place(), path.display().to_string());
        assert_eq!(
            error.message(),
            "cannot read the file: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn load_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ecs-jobwatch.toml");
        std::fs::write(
            &path,
            format!("{MINIMAL}\n[poll]\ninitial_interval = \"500ms\"\n"),
        )
        .unwrap();
        let error = Config::load(&path, &no_env()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "poll.initial_interval: must be at least 1s (got 500ms)"
        );
        std::fs::write(&path, MINIMAL).unwrap();
        assert_eq!(
            Config::load(&path, &no_env()).unwrap().region(),
            Some("cn-north-4")
        );
    }

    #[test]
    fn environment_overrides() {
        let base = format!("{MINIMAL}[limits]\nmax_in_flight = 8\n");
        let config = load(
            &base,
            &env(&[
                ("ECS_JOBWATCH__LIMITS__MAX_IN_FLIGHT", "32"),
                ("ECS_JOBWATCH__LIMITS__REQUESTS_PER_SECOND", "0.5"),
                ("ECS_JOBWATCH__POLL__INITIAL_INTERVAL", "5s"),
                ("ECS_JOBWATCH__WATCH__JOBS", "job-a, job-b\tjob-c,,job_d"),
                ("ECS_JOBWATCH__CLOUD__REGION", "eu-west-101"),
                ("ECS_JOBWATCH__LOG__FORMAT", "text"),
                ("ECS_JOBWATCH__STATE__DIR", "/srv/state"),
                // Empty means unset.
                ("ECS_JOBWATCH__CLOUD__PROJECT_ID", ""),
                // Unrelated variables are left alone.
                ("PATH", "/usr/bin"),
                ("ECS_JOBWATCHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.limits().max_in_flight, 32);
        assert_eq!(config.limits().requests_per_second, 0.5);
        assert_eq!(config.poll().initial_interval, Duration::from_secs(5));
        let jobs: Vec<&str> = config.watch().jobs.iter().map(JobId::as_str).collect();
        assert_eq!(jobs, ["job-a", "job-b", "job-c", "job_d"]);
        assert_eq!(config.region(), Some("eu-west-101"));
        assert_eq!(config.log().format, LogFormat::Text);
        assert_eq!(config.state().dir, PathBuf::from("/srv/state"));
        assert_eq!(config.project_id(), None);

        let cases: &[(&str, &str, &str)] = &[
            (
                "ECS_JOBWATCH__LIMITS__MAX_IN_FLIGHT",
                "many",
                "ECS_JOBWATCH__LIMITS__MAX_IN_FLIGHT: invalid digit found in string: \"many\"",
            ),
            (
                "ECS_JOBWATCH__LIMITS__MAX_IN_FLIGHT",
                "2000",
                "ECS_JOBWATCH__LIMITS__MAX_IN_FLIGHT: must be from 1 to 1024, got 2000",
            ),
            (
                "ECS_JOBWATCH__LIMITS__REQUESTS_PER_SECOND",
                "fast",
                "ECS_JOBWATCH__LIMITS__REQUESTS_PER_SECOND: invalid float literal: \"fast\"",
            ),
            (
                "ECS_JOBWATCH__POLL__INITIAL_INTERVAL",
                "5",
                "ECS_JOBWATCH__POLL__INITIAL_INTERVAL: needs a unit, like \"2s\" (got \"5\")",
            ),
            (
                "ECS_JOBWATCH__POLL__INTIAL_INTERVAL",
                "5s",
                "ECS_JOBWATCH__POLL__INTIAL_INTERVAL: unknown key `intial_interval` in [poll], did you mean `initial_interval`?",
            ),
            (
                "ECS_JOBWATCH__POLLING__INITIAL_INTERVAL",
                "5s",
                "ECS_JOBWATCH__POLLING__INITIAL_INTERVAL: unknown section [polling]",
            ),
            (
                "ECS_JOBWATCH__POLL",
                "5s",
                "ECS_JOBWATCH__POLL: not a configuration key; overrides are named ECS_JOBWATCH__SECTION__KEY",
            ),
            (
                "ECS_JOBWATCH__POLL__INITIAL_INTERVAL__X",
                "5s",
                "ECS_JOBWATCH__POLL__INITIAL_INTERVAL__X: not a configuration key; overrides are named ECS_JOBWATCH__SECTION__KEY",
            ),
            (
                "ECS_JOBWATCH__WATCH__JOBS",
                "good, bad/one",
                "ECS_JOBWATCH__WATCH__JOBS: item 1 (\"bad/one\"): job id contains '/', only A-Z a-z 0-9 - _ are allowed",
            ),
            (
                "ECS_JOBWATCH__CLOUD__ENDPOINT",
                "http://example.com",
                "ECS_JOBWATCH__CLOUD__ENDPOINT: must be https:// (plain http:// only for loopback addresses), got \"http://example.com\"",
            ),
            ("ecs_jobwatch__limits__burst", "4", "ok"),
        ];
        for (name, value, expected) in cases {
            check(MINIMAL, &[(name, value)], expected);
        }

        // Two spellings of one key are ambiguous.
        check(
            MINIMAL,
            &[
                ("ECS_JOBWATCH__LIMITS__BURST", "2"),
                ("ecs_jobwatch__limits__burst", "3"),
            ],
            "ecs_jobwatch__limits__burst: sets limits.burst, which ECS_JOBWATCH__LIMITS__BURST sets too",
        );
        // An override may supply what the file lacks.
        check(
            "",
            &[("ECS_JOBWATCH__CLOUD__REGION", "ap-southeast-1")],
            "ok",
        );
    }

    #[test]
    fn systemd_directories() {
        let config = load(MINIMAL, &env(&[("STATE_DIRECTORY", "/var/lib/custom")])).unwrap();
        assert_eq!(config.state().dir, PathBuf::from("/var/lib/custom"));
        let config = load(
            MINIMAL,
            &env(&[("STATE_DIRECTORY", "/var/lib/a:/var/lib/b")]),
        )
        .unwrap();
        assert_eq!(config.state().dir, PathBuf::from("/var/lib/a"));
        let config = load(MINIMAL, &env(&[("STATE_DIRECTORY", "")])).unwrap();
        assert_eq!(config.state().dir, PathBuf::from(DEFAULT_STATE_DIR));
        // The file wins over the systemd default.
        let text = format!("{MINIMAL}[state]\ndir = \"/srv/jobwatch\"\n");
        let config = load(&text, &env(&[("STATE_DIRECTORY", "/var/lib/custom")])).unwrap();
        assert_eq!(config.state().dir, PathBuf::from("/srv/jobwatch"));

        let check_path = |env: &[(&str, &str)], expected: &str| {
            assert_eq!(
                default_config_path(&self::env(env)),
                PathBuf::from(expected),
                "{env:?}"
            )
        };
        check_path(&[], "/etc/ecs-jobwatch/ecs-jobwatch.toml");
        check_path(
            &[("CONFIGURATION_DIRECTORY", "/etc/custom")],
            "/etc/custom/ecs-jobwatch.toml",
        );
        check_path(
            &[("CONFIGURATION_DIRECTORY", "/etc/a:/etc/b")],
            "/etc/a/ecs-jobwatch.toml",
        );
        check_path(
            &[("CONFIGURATION_DIRECTORY", "")],
            "/etc/ecs-jobwatch/ecs-jobwatch.toml",
        );
    }

    #[test]
    fn redacted_toml_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let full = CONTRACT_EXAMPLE.replace(
            "/etc/ecs-jobwatch/jobs.d",
            &dir.path().display().to_string(),
        ) + "";
        let with_files = full.replace(
            "source = \"auto\"",
            "source = \"files\"\naccess_key_file = \"/run/credentials/ak\"\nsecret_key_file = \"/run/credentials/sk\"\nsecurity_token_file = \"/run/credentials/token\"",
        );
        let texts = [
            MINIMAL.to_owned(),
            full,
            with_files,
            "[cloud]\nendpoint = \"http://127.0.0.1:9999/\"\n[limits]\nrequests_per_second = 0.25\nburst = 7\n[poll]\njob_timeout = \"1h 30m\"\n".to_owned(),
            format!(
                "{MINIMAL}[[notify.webhook]]\nurl = \"https://h.example.com/a\"\n\
                 [[notify.webhook]]\nurl = \"http://[::1]:1/b\"\nevents = [\"job.not_found\"]\n\
                 statuses = [\"X\"]\nsecret_file = \"/s\"\nmax_age = \"1h 1s\"\n"
            ),
        ];
        for text in texts {
            let config = load(&text, &no_env()).unwrap();
            let printed = config.to_redacted_toml();
            let again = Config::from_toml_str(&printed, "printed", &no_env())
                .unwrap_or_else(|error| panic!("{error}\n{printed}"));
            assert_eq!(again, config, "{printed}");
            // Every key of the schema is named, set or not.
            for (section, keys) in SCHEMA {
                assert!(
                    printed.contains(&format!("[{section}]\n")),
                    "{section}\n{printed}"
                );
                for key in *keys {
                    assert!(printed.contains(&format!("{key} ")), "{key}\n{printed}");
                }
            }
            for _ in config.webhooks() {
                for key in WEBHOOK_KEYS {
                    assert!(printed.contains(&format!("{key} ")), "{key}\n{printed}");
                }
            }
        }
    }

    #[test]
    fn schema_matches_the_raw_structs() {
        // A fully set raw configuration serializes to exactly the keys of SCHEMA.
        let mut raw = RawConfig::defaults(&no_env());
        raw.cloud = RawCloud {
            region: Some(String::new()),
            project_id: Some(String::new()),
            endpoint: Some(String::new()),
        };
        raw.credentials.access_key_file = Some(PathBuf::new());
        raw.credentials.secret_key_file = Some(PathBuf::new());
        raw.credentials.security_token_file = Some(PathBuf::new());
        raw.watch.dir = Some(PathBuf::new());
        raw.metrics.listen = Some(String::new());
        raw.notify.webhook = Some(vec![RawWebhook {
            url: Some(String::new()),
            events: Some(Vec::new()),
            statuses: Some(Vec::new()),
            secret_file: Some(PathBuf::new()),
            max_age: Scalar::text(""),
        }]);
        let table: toml::Table = toml::Table::try_from(&raw).unwrap();
        let webhook = table["notify"]["webhook"][0].as_table().unwrap();
        let mut keys: Vec<&str> = webhook.keys().map(String::as_str).collect();
        keys.sort();
        let mut expected = WEBHOOK_KEYS.to_vec();
        expected.sort();
        assert_eq!(keys, expected);
        let from_structs: Vec<(String, Vec<String>)> = table
            .iter()
            .map(|(section, keys)| {
                let mut keys: Vec<String> = keys.as_table().unwrap().keys().cloned().collect();
                keys.sort();
                (section.clone(), keys)
            })
            .collect();
        let mut from_schema: Vec<(String, Vec<String>)> = SCHEMA
            .iter()
            .map(|(section, keys)| {
                let mut keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
                keys.sort();
                (section.to_string(), keys)
            })
            .collect();
        from_schema.sort();
        let mut from_structs = from_structs;
        from_structs.sort();
        assert_eq!(from_structs, from_schema);
    }

    #[test]
    fn error_display_is_one_line() {
        let error = ConfigError::new("x.toml:3", "first\nsecond  third");
        assert_eq!(error.to_string(), "x.toml:3: first second third");
        assert_eq!(error.place(), "x.toml:3");
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(text in "\\PC*", value in "\\PC*") {
            let _ = load(&text, &no_env());
            let _ = load(MINIMAL, &env(&[("ECS_JOBWATCH__LIMITS__BURST", &value)]));
            let _ = load(MINIMAL, &env(&[("ECS_JOBWATCH__POLL__JOB_TIMEOUT", &value)]));
            let _ = load(MINIMAL, &env(&[("ECS_JOBWATCH__WATCH__JOBS", &value)]));
        }

        #[test]
        fn garbage_in_known_keys_never_panics(
            section in 0..SCHEMA.len(),
            key in 0..5usize,
            value in proptest::prop_oneof![
                "\\PC*".prop_map(|text| format!("{text:?}")),
                proptest::num::i64::ANY.prop_map(|number| number.to_string()),
                proptest::num::f64::ANY.prop_map(|number| format!("{number:?}")),
                proptest::strategy::Just("[]".to_owned()),
                proptest::strategy::Just("{}".to_owned()),
            ],
        ) {
            let (name, keys) = SCHEMA[section];
            let key = keys[key % keys.len()];
            let text = format!("{MINIMAL}[{name}]\n{key} = {value}\n");
            let _ = load(&text, &no_env());
        }
    }
}
