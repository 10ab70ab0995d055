//! The configuration file: loading, environment overrides and validation.
//!
//! A configuration is built in layers, lowest first: the defaults (the
//! `Default` of the raw structs in `raw.rs`, and `$STATE_DIRECTORY`), the
//! TOML file, and `ECS_JOBWATCH__SECTION__KEY` variables from the
//! environment. The `config` crate merges the file and the variables; serde
//! reads the result into typed raw structs that refuse unknown keys; the
//! values are then checked once and turned into a [`Config`] whose values
//! are known to be valid. Every error names its place: `file:line` and the
//! dotted key for a problem in the file (bad TOML, an unknown key, a value
//! of the wrong type or out of range), the variable's name and the key for
//! a bad override.
//!
//! The environment is passed in as a map (a snapshot taken by the caller),
//! so that loading is a pure function of its inputs and tests never touch
//! the process environment.
//!
//! The files: `raw.rs` (what serde reads), `layers.rs` (the file's spans,
//! the overrides, the merge), `check.rs` (values), `projects.rs` (projects
//! and endpoints), `notify.rs` (sinks), `redact.rs` (printing), `paths.rs`
//! (default paths).
//!
//! # Keys
//!
//! | key | default | accepted values |
//! |---|---|---|
//! | `cloud.region` | none | 1 to 64 of `a-z0-9-`; required unless `cloud.endpoint` (or `cloud.endpoints.ecs`) is set |
//! | `cloud.project_id` | none: the daemon looks in `HUAWEICLOUD_SDK_PROJECT_ID`, `HW_PROJECT_ID`, the profile, then instance metadata | 1 to 64 of `A-Za-z0-9` |
//! | `cloud.endpoint` | `https://ecs.{region}.myhuaweicloud.com` | the ECS endpoint (every service's, with `{service}`): an `https://` URL, or `http://` when the host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`); no user, query or fragment; may hold `{service}` and `{region}` |
//! | `cloud.endpoints.SERVICE` | `https://{host}.{region}.myhuaweicloud.com` (`host` is the service, `vpc` for `eip`) | one endpoint per service, `SERVICE` one of `ecs`, `bms`, `evs`, `ims`, `cce`, `rds`, `eip`, `smn`; a URL as `cloud.endpoint`; shared by every project that does not set its own |
//! | `cloud.ca_file` | none | a PEM bundle trusted beside the system roots; must exist and be readable at load (its contents are read by the HTTP client) |
//! | `projects.NAME` | none | any number of tables; `NAME` is 1 to 64 of `A-Za-z0-9-_`, not `default` (that is `[cloud]`) |
//! | `projects.NAME.region` | `cloud.region` | as `cloud.region`; required (here or in `[cloud]`) unless the project has an ECS endpoint |
//! | `projects.NAME.project_id` | `cloud.project_id` | as `cloud.project_id`; required, here or in `[cloud]` |
//! | `projects.NAME.endpoint` | `cloud.endpoint` | as `cloud.endpoint` |
//! | `projects.NAME.endpoints.SERVICE` | `cloud.endpoints.SERVICE` | as `cloud.endpoints.SERVICE` |
//! | `credentials.source` | `"auto"` | `auto`, `env`, `profile`, `files`, `metadata` (any case) |
//! | `credentials.access_key_file` | none | a path (not opened here) |
//! | `credentials.secret_key_file` | none | a path (not opened here) |
//! | `credentials.security_token_file` | none | a path (not opened here) |
//! | `credentials.metadata_url` | `"http://169.254.169.254"` | an `http://` or `https://` URL |
//! | `poll.initial_interval` | `"2s"` | a duration, at least 1s |
//! | `poll.max_interval` | `"30s"` | a duration, at least 1s and at least `poll.initial_interval` |
//! | `poll.pending_payment_interval` | `"5m"` | a duration, at least 1s |
//! | `poll.job_timeout` | `"2h"` | a duration, at least 1s |
//! | `poll.not_found_grace` | `"60s"` | a duration, at least 1s |
//! | `poll.adaptive` | `true` | `true` or `false` |
//! | `limits.requests_per_second` | `10` | a number greater than 0 (fractions allowed, like `0.5`), at most 10000 |
//! | `limits.burst` | `1` | an integer from 1 to 4294967295 |
//! | `limits.max_in_flight` | `16` | an integer from 1 to 1024 |
//! | `limits.request_timeout` | `"10s"` | a duration from 1s to 5m |
//! | `watch.jobs` | `[]` | a list of watch entries `[PROJECT/][SERVICE:]JOB_ID [key=value ...]` (a job id is 1 to 64 of `A-Za-z0-9-_`); the project must be configured and able to reach the service; an entry repeated with the same labels counts once |
//! | `watch.dir` | none | a path to an existing directory |
//! | `state.dir` | `$STATE_DIRECTORY` when set, else `/var/lib/ecs-jobwatch` | a path; need not exist (`run` creates it, mode 0700, when its parent exists) |
//! | `state.retention` | `"30d"` | a duration, at least 1h |
//! | `log.format` | `"json"` | `json`, `text`, `journald` (any case) |
//! | `log.level` | `"info"` | `trace`, `debug`, `info`, `warn`, `error` (any case) |
//! | `metrics.listen` | none (off) | an address with a port, like `127.0.0.1:9464` |
//! | `notify.webhook` | none | any number of `[[notify.webhook]]` tables with the keys below; not settable from the environment |
//! | `notify.webhook[i].url` | none, required | a URL as `cloud.endpoint` (no placeholders); each webhook its own URL |
//! | `notify.webhook[i].name` | `"webhook-{i+1}"` (the 1-based position) | 1 to 64 of `A-Za-z0-9-_`; unique across every sink, webhooks and SMN; the `sink` label of its metrics |
//! | `notify.webhook[i].events` | `["job.transition", "job.subjob_failed", "job.timeout", "job.not_found"]` | a non-empty list of these four names |
//! | `notify.webhook[i].statuses` | `["SUCCESS", "FAIL", "PENDING_PAYMENT"]` | a non-empty list of statuses (stored in upper case); `job.transition` is sent only into these |
//! | `notify.webhook[i].secret_file` | none | a path; the file is read when the daemon starts or reloads, never here |
//! | `notify.webhook[i].secret_files` | none | a list of paths, for several secrets during a key rotation (each one signs); not together with `secret_file` |
//! | `notify.webhook[i].max_age` | `"24h"` | a duration, at least 1s |
//! | `notify.smn` | none | any number of `[[notify.smn]]` tables with the keys below; not settable from the environment |
//! | `notify.smn[i].topic_urn` | none, required | `urn:smn:{region}:{project_id}:{topic}`; the region and project id must be those of the sink's project (written in the configuration) |
//! | `notify.smn[i].name` | `"smn-{i+1}"` (the 1-based position) | as `notify.webhook[i].name` |
//! | `notify.smn[i].events` | as for webhooks | as for webhooks |
//! | `notify.smn[i].statuses` | `["FAIL", "PENDING_PAYMENT"]` | as for webhooks |
//! | `notify.smn[i].max_age` | `"24h"` | a duration, at least 1s |
//! | `notify.smn[i].project` | `"default"` | a configured project (`default` is `[cloud]`), whose SMN endpoint and project id publish |
//!
//! Durations are strings with a unit, in the `humantime` syntax: `"500ms"`,
//! `"2s"`, `"5m"`, `"2h"`, `"14d"`, `"1h 30m"`. A bare number is refused,
//! because a unit-less interval is a guess waiting to go wrong.
//!
//! # Endpoints
//!
//! The endpoint of a service for project `P` is the first of
//! `projects.P.endpoints.SERVICE`, `cloud.endpoints.SERVICE`,
//! `projects.P.endpoint`, `cloud.endpoint` (these two serve ECS, and every
//! service when they hold `{service}`), else
//! `https://{host}.{region}.myhuaweicloud.com`. In an endpoint, `{service}`
//! becomes the service's name (`ecs`, ..., `eip`, `smn`) and `{region}` the
//! project's region, so `http://127.0.0.1:9000/{service}` sends every
//! service to one simulator. Every project must reach ECS (a region or an
//! ECS endpoint); a service a project cannot reach (no region, no endpoint)
//! is refused where a job names it.
//!
//! # Environment overrides
//!
//! Any key can be set from the environment as `ECS_JOBWATCH__SECTION__KEY`
//! (double underscores between the parts of the dotted key; the name is not
//! case-sensitive), for example `ECS_JOBWATCH__LIMITS__REQUESTS_PER_SECOND=5`,
//! `ECS_JOBWATCH__CLOUD__ENDPOINTS__EVS=https://...` or
//! `ECS_JOBWATCH__PROJECTS__SHANGHAI__REGION=cn-east-3` (a project name is
//! matched to a `[projects.NAME]` of the file in any case; a new one is
//! named in lower case). An override wins over the file. A variable with an
//! empty value is ignored, as if it were unset. A variable naming no known
//! key is an error, so a typo never goes unnoticed.
//! `ECS_JOBWATCH__WATCH__JOBS` holds watch entries separated by commas or
//! newlines; a word with `=` is a label of the job before it, any other
//! word starts a new job (`a b` is two jobs, `a team=x, b` too).
//!
//! `$STATE_DIRECTORY` and `$CONFIGURATION_DIRECTORY` (set by systemd's
//! `StateDirectory=` and `ConfigurationDirectory=`) give the defaults of
//! `state.dir` and of the `--config` path; when systemd lists several
//! directories separated by colons, the first is used. `--config` (`-c`)
//! wins over `$ECS_JOBWATCH_CONFIG`, which wins over those defaults.

mod check;
mod error;
mod layers;
mod notify;
mod paths;
mod projects;
mod raw;
mod redact;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

pub use error::ConfigError;
pub use notify::{
    DEFAULT_SMN_STATUSES, DEFAULT_WEBHOOK_MAX_AGE, DEFAULT_WEBHOOK_STATUSES, MAX_SINK_NAME_LEN,
    SINK_EVENTS, SmnSettings, TopicUrn, WEBHOOK_EVENTS, WebhookSettings,
};
pub use paths::{
    CONFIG_FILE_NAME, CONFIG_VARIABLE, DEFAULT_CONFIG_PATH, DEFAULT_STATE_DIR, config_path,
    default_config_path,
};
pub use projects::{Api, MissingEndpoint, ProjectSettings};

use crate::job::{JobKey, Labels, ProjectName, Service};

/// The prefix of environment overrides, separator included.
pub const ENV_PREFIX: &str = "ECS_JOBWATCH__";

/// The validated configuration. Fields are private; getters return plain values.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    projects: Vec<ProjectSettings>,
    ca_file: Option<PathBuf>,
    credentials: CredentialsSettings,
    poll: PollSettings,
    limits: LimitSettings,
    watch: WatchSettings,
    state: StateSettings,
    log: LogSettings,
    metrics: MetricsSettings,
    webhooks: Vec<WebhookSettings>,
    smn: Vec<SmnSettings>,
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
    /// The entries of `watch.jobs`: each job and its labels, in file order,
    /// every project configured.
    pub jobs: Vec<(JobKey, Labels)>,
    /// A directory of `*.jobs` files, checked to exist at load time.
    pub dir: Option<PathBuf>,
}

/// The `[state]` section: the state store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSettings {
    /// The directory of `state.db` (created by the store when missing).
    pub dir: PathBuf,
    /// How long finished jobs are remembered.
    pub retention: Duration,
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

impl Config {
    /// Loads the TOML file at `path` over the defaults, then the
    /// `ECS_JOBWATCH__SECTION__KEY` overrides found in `env` (a snapshot of
    /// environment variables; also read for `$STATE_DIRECTORY`), then
    /// validates.
    pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::at(&origin, format!("cannot read the file: {error}")))?;
        Config::from_toml_str(&text, &origin, env)
    }

    /// The same from TOML text (tests, the demo); `origin` names it in errors.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let file = layers::FileMap::check(text, origin)?;
        let overrides = layers::Overrides::collect(env, &file)?;
        let raw = layers::merge(text, origin, &overrides)?;
        let checker = check::Checker {
            file: &file,
            overrides: &overrides,
        };
        check::validate(raw, &checker, env)
    }

    /// Every project, `default` (`[cloud]`) first, then `[projects.NAME]`
    /// by name.
    pub fn projects(&self) -> &[ProjectSettings] {
        &self.projects
    }

    /// The project of a name, when configured.
    pub fn project(&self, name: &ProjectName) -> Option<&ProjectSettings> {
        self.projects.iter().find(|project| &project.name == name)
    }

    /// The default project (`[cloud]`).
    pub fn default_project(&self) -> &ProjectSettings {
        // `check::validate` always puts the default project first.
        &self.projects[0]
    }

    /// `cloud.ca_file`: a PEM bundle to trust beside the system roots.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The region of the default project, when configured. A shim for
    /// callers not yet using [`Config::projects`].
    pub fn region(&self) -> Option<&str> {
        self.default_project().region.as_deref()
    }

    /// The project id of the default project, when configured; otherwise
    /// the daemon looks elsewhere. A shim for callers not yet using
    /// [`Config::projects`].
    pub fn project_id(&self) -> Option<&str> {
        self.default_project().project_id.as_deref()
    }

    /// `cloud.endpoint` as written, when it is set and holds no
    /// placeholder. A shim for callers not yet using [`Config::projects`].
    pub fn endpoint(&self) -> Option<Url> {
        self.default_project()
            .written
            .endpoint
            .as_deref()
            .filter(|text| !text.contains('{'))
            .and_then(|text| Url::parse(text).ok())
    }

    /// The ECS endpoint of the default project (every project reaches
    /// ECS). A shim for callers not yet using [`ProjectSettings::endpoint`].
    pub fn effective_endpoint(&self) -> Url {
        match self.default_project().endpoint(Service::Ecs) {
            Ok(url) => url.clone(),
            // Validation refuses a project without an ECS endpoint.
            Err(error) => unreachable!("{error}"),
        }
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

    /// The `[metrics]` section.
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

    /// The `[[notify.smn]]` sinks, in file order.
    pub fn smn(&self) -> &[SmnSettings] {
        &self.smn
    }
}
