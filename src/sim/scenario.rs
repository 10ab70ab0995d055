//! The simulator's scenario: which credentials the simulated gateway
//! accepts, which projects it serves, which jobs of which service exist and
//! how their status moves over time, and which faults are injected.
//!
//! A scenario is read from TOML (`Scenario::from_toml_str`, `Scenario::load`)
//! and validated before use; jobs and fault rules can also arrive as JSON
//! through the control API, so `JobSpec` and `FaultRule` serialize both
//! ways. Every struct denies unknown fields, and every validation error
//! names the offending key, counting array entries from 0
//! (`job[1].timeline[2].at`). `docs/simulator.md` documents the format.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::huaweicloud::secret::Secret;
use crate::job::Service;

/// Why a scenario, a job list or a fault list was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The scenario file could not be read.
    #[error("cannot read scenario file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// An error inside a named scenario file.
    #[error("scenario file {}: {source}", path.display())]
    InFile {
        /// The scenario file.
        path: PathBuf,
        /// The error found in it.
        source: Box<ScenarioError>,
    },
    /// The text is not valid TOML or JSON for the scenario structure; the
    /// message names the line and the key.
    #[error("{0}")]
    Syntax(String),
    /// The structure parsed but a value is not acceptable.
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted key, for example `fault[0].probability`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// A parsed and validated scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The default project of the scenario's jobs. When set, requests for
    /// a project that is neither this one nor in `project_ids` get 403.
    #[serde(default)]
    pub project_id: Option<String>,
    /// More projects served beside `project_id`.
    #[serde(default)]
    pub project_ids: Vec<String>,
    /// The keys the simulated gateway accepts; at least one.
    #[serde(default, rename = "credential")]
    pub credentials: Vec<Credential>,
    /// The global rate limit.
    #[serde(default)]
    pub limits: Limits,
    /// The jobs that exist, timelines relative to the simulator's start.
    #[serde(default, rename = "job")]
    pub jobs: Vec<JobSpec>,
    /// The fault rules, in the order they are drawn.
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultRule>,
}

/// One access key the simulated gateway accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// The access key id (`Access=` in the `Authorization` header).
    pub access_key: String,
    /// The secret key the signature is computed with.
    #[serde(deserialize_with = "deserialize_secret")]
    pub secret_key: Secret,
    /// When set, requests with this key must send and sign
    /// `X-Security-Token` with exactly this value.
    #[serde(default, deserialize_with = "deserialize_optional_secret")]
    pub security_token: Option<Secret>,
    /// When true the key authenticates but every job call answers 403.
    #[serde(default)]
    pub forbidden: bool,
}

/// The `[limits]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests admitted per sliding second; 0 means no limit.
    #[serde(default)]
    pub requests_per_second: u32,
}

/// Which of its service's two "no such job" answers a job gives
/// (`docs/simulator.md` lists them per service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum NotFoundStyle {
    /// The service's HTTP 404 answer (ECS: `Ecs.0103`).
    #[serde(rename = "404")]
    Http404,
    /// The service's HTTP 400 answer (ECS, BMS, EVS, EIP: `Common.0011`;
    /// IMS: `IMG.0404`; RDS: `DBS.200543`; CCE has none). `"Common.0011"` is
    /// an older spelling.
    #[serde(rename = "400", alias = "Common.0011")]
    Http400,
}

impl NotFoundStyle {
    /// The answer a job of `service` gives when it sets no style, and
    /// every unknown job of `service`: the documented one where there is
    /// one.
    pub fn default_for(service: Service) -> NotFoundStyle {
        match service {
            Service::Evs | Service::Ims | Service::Rds => NotFoundStyle::Http400,
            Service::Ecs | Service::Bms | Service::Cce | Service::Eip => NotFoundStyle::Http404,
        }
    }
}

/// One `[[job]]` entry: a job and the statuses it goes through.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job id, as it appears in the request path (or RDS's `id`).
    pub id: String,
    /// The service whose job API serves the job; `ecs` when absent.
    #[serde(default = "ecs", with = "service_name", skip_serializing_if = "is_ecs")]
    pub service: Service,
    /// The project id the job belongs to; the scenario's `project_id`
    /// when absent (then any project, if that is absent too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The `job_type` served, for example `createServer`.
    pub job_type: String,
    /// Before this offset the job answers 404.
    #[serde(default, with = "humantime_serde")]
    pub visible_after: Duration,
    /// From this offset on the job answers 404 again.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub vanish_after: Option<Duration>,
    /// How this job's "no such job" answers look; the service's usual one
    /// ([`NotFoundStyle::default_for`]) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_found: Option<NotFoundStyle>,
    /// The server of the job itself (ECS, BMS `entities.server_id`; CCE
    /// `spec.extendParam.serverID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// `entities.nic_id` of the job itself (ECS, BMS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_id: Option<String>,
    /// What the job makes or changes, where its service names it: EVS
    /// `volume_id`, IMS `image_id`, CCE `spec.resourceID`, RDS
    /// `instance.id`, EIP `publicip_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The statuses over time; the entry whose `at` was passed last applies.
    pub timeline: Vec<TimelineEntry>,
    /// The sub-jobs (`[[job.sub_job]]`), listed in `entities.sub_jobs`.
    #[serde(default, rename = "sub_job", skip_serializing_if = "Vec::is_empty")]
    pub sub_jobs: Vec<SubJobSpec>,
}

/// One `[[job.sub_job]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubJobSpec {
    /// The sub-job id; may be empty for CCE and EIP sub-jobs, which are
    /// then served without one.
    pub id: String,
    /// The sub-job's `job_type`, for example `createSingleServer`.
    pub job_type: String,
    /// Its server (ECS, BMS `entities.server_id`; CCE
    /// `spec.extendParam.serverID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// `entities.nic_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_id: Option<String>,
    /// `entities.errorcode_message` (ECS, BMS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errorcode_message: Option<String>,
    /// What it makes or changes (as [`JobSpec::resource_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// The statuses over time, on the same clock as the parent job's.
    pub timeline: Vec<TimelineEntry>,
    /// Its own sub-jobs (`[[job.sub_job.sub_job]]`; CCE and EIP only).
    #[serde(default, rename = "sub_job", skip_serializing_if = "Vec::is_empty")]
    pub sub_jobs: Vec<SubJobSpec>,
}

/// One status of a timeline and the moment it starts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    /// The offset from the job's base (simulator start, or the moment the
    /// job was added) at which this status starts.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// The status word, served verbatim: the service's own words
    /// (`Failed`, `Completed`, `WAITING_EXECUTE`, ...).
    pub status: String,
    /// `error_code` while this entry applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `fail_reason` while this entry applies (CCE: `status.reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_reason: Option<String>,
    /// Progress in percent while this entry applies (IMS
    /// `process_percent`, RDS `process`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
}

/// The kinds of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum FaultKind {
    /// A 5xx with an ECS error body.
    #[serde(rename = "server_error")]
    ServerError,
    /// A 429 `APIGW.0308` with an optional `Retry-After`.
    #[serde(rename = "throttle")]
    Throttle,
    /// A 202 with a `Common.0024` "Flow limit exceeded" body.
    #[serde(rename = "throttle_202")]
    Throttle202,
    /// A 200 whose body stops halfway.
    #[serde(rename = "truncate")]
    Truncate,
    /// The connection closes without a response.
    #[serde(rename = "drop")]
    Drop,
    /// A delay before the answer; the request then goes on.
    #[serde(rename = "latency")]
    Latency,
    /// A 400 `Ecs.0005`.
    #[serde(rename = "client_error")]
    ClientError,
    /// A 403 of the IAM policy (the key may not do this): `Ecs.0000` for a
    /// job query, `SMN.00011008` for a publish.
    #[serde(rename = "forbidden")]
    Forbidden,
}

impl FaultKind {
    /// The name used in the scenario and in `Stats::faults_injected`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::ServerError => "server_error",
            FaultKind::Throttle => "throttle",
            FaultKind::Throttle202 => "throttle_202",
            FaultKind::Truncate => "truncate",
            FaultKind::Drop => "drop",
            FaultKind::Latency => "latency",
            FaultKind::ClientError => "client_error",
            FaultKind::Forbidden => "forbidden",
        }
    }
}

/// One `[[fault]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// What happens when the rule is drawn.
    pub kind: FaultKind,
    /// The chance, drawn independently per request, that the rule fires;
    /// 1 when absent.
    #[serde(default = "always")]
    pub probability: f64,
    /// The rule is active from this offset after the simulator's start.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<Duration>,
    /// The rule is active until this offset after the simulator's start.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<Duration>,
    /// When not empty, only requests for these jobs are affected (by id, or
    /// by their key in `Stats::jobs`, such as `cce:ID`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<String>,
    /// `server_error` only: the HTTP status; random 500/502/503/504 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `throttle` only: the `Retry-After` to send; none when absent.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after: Option<Duration>,
    /// `throttle` only: send `Retry-After` as an HTTP date.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retry_after_http_date: bool,
    /// `latency` only: the delay is drawn uniformly from this range.
    #[serde(
        default,
        with = "duration_range",
        skip_serializing_if = "Option::is_none"
    )]
    pub latency: Option<(Duration, Duration)>,
}

impl FaultRule {
    /// A rule of `kind` that always fires, for every job, at all times.
    pub fn always(kind: FaultKind) -> FaultRule {
        FaultRule {
            kind,
            probability: 1.0,
            from: None,
            until: None,
            jobs: Vec::new(),
            status: None,
            retry_after: None,
            retry_after_http_date: false,
            latency: None,
        }
    }

    /// True when the rule applies at `elapsed` after the simulator's start
    /// to a request for the job known by `names` (its id and its key in
    /// `Stats::jobs`; empty when the path names no job).
    pub fn is_active(&self, elapsed: Duration, names: &[&str]) -> bool {
        if self.from.is_some_and(|from| elapsed < from) {
            return false;
        }
        if self.until.is_some_and(|until| elapsed >= until) {
            return false;
        }
        if self.jobs.is_empty() {
            return true;
        }
        names
            .iter()
            .any(|name| self.jobs.iter().any(|listed| listed == name))
    }
}

fn always() -> f64 {
    1.0
}

fn ecs() -> Service {
    Service::Ecs
}

fn is_ecs(service: &Service) -> bool {
    *service == Service::Ecs
}

/// A service as its name (`ecs`, `evs`, ...).
mod service_name {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use crate::job::Service;

    pub fn serialize<S: Serializer>(service: &Service, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(service.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Service, D::Error> {
        let name = String::deserialize(deserializer)?;
        Service::parse(&name).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown service {name:?}, expected one of {}",
                Service::names()
            ))
        })
    }
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn deserialize_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
    String::deserialize(deserializer).map(Secret::new)
}

fn deserialize_optional_secret<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Secret>, D::Error> {
    Option::<String>::deserialize(deserializer).map(|value| value.map(Secret::new))
}

/// `latency = ["0ms", "800ms"]`: a pair of humantime durations.
mod duration_range {
    use std::time::Duration;

    use humantime_serde::Serde;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<(Duration, Duration)>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some((low, high)) => [Serde::from(*low), Serde::from(*high)].serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<(Duration, Duration)>, D::Error> {
        let [low, high] = <[Serde<Duration>; 2]>::deserialize(deserializer)?;
        Ok(Some((low.into_inner(), high.into_inner())))
    }
}

impl Scenario {
    /// Parses and validates a scenario from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|error| ScenarioError::Syntax(error.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Reads, parses and validates a scenario file; errors name the file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::from_toml_str(&text).map_err(|source| ScenarioError::InFile {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Every project id the scenario names (`project_id`, then
    /// `project_ids`); empty when it names none, and then every project is
    /// served.
    pub fn served_projects(&self) -> Vec<String> {
        self.project_id
            .iter()
            .chain(&self.project_ids)
            .cloned()
            .collect()
    }

    /// Checks every rule a parsed scenario must follow; scenarios built in
    /// code are checked by `spawn` and `serve` with this too.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if let Some(project_id) = &self.project_id
            && project_id.is_empty()
        {
            return Err(invalid("project_id", "must not be empty when set"));
        }
        if self.credentials.is_empty() {
            return Err(invalid(
                "credential",
                "at least one [[credential]] is required",
            ));
        }
        let mut access_keys = HashSet::new();
        for (index, credential) in self.credentials.iter().enumerate() {
            let key = format!("credential[{index}]");
            if credential.access_key.is_empty() {
                return Err(invalid(format!("{key}.access_key"), "must not be empty"));
            }
            if credential.secret_key.is_empty() {
                return Err(invalid(format!("{key}.secret_key"), "must not be empty"));
            }
            if credential
                .security_token
                .as_ref()
                .is_some_and(Secret::is_empty)
            {
                return Err(invalid(
                    format!("{key}.security_token"),
                    "must not be empty when set",
                ));
            }
            if !access_keys.insert(credential.access_key.as_str()) {
                return Err(invalid(
                    format!("{key}.access_key"),
                    format!("duplicate access key {:?}", credential.access_key),
                ));
            }
        }
        let mut projects = HashSet::new();
        for (index, project) in self.project_ids.iter().enumerate() {
            if project.is_empty() {
                return Err(invalid(
                    format!("project_ids[{index}]"),
                    "must not be empty",
                ));
            }
            if !projects.insert(project.as_str()) || self.project_id.as_ref() == Some(project) {
                return Err(invalid(
                    format!("project_ids[{index}]"),
                    format!("duplicate project id {project:?}"),
                ));
            }
        }
        validate_jobs(&self.jobs)?;
        validate_projects(&self.jobs, &self.served_projects())?;
        let mut ids = HashSet::new();
        for (index, job) in self.jobs.iter().enumerate() {
            let project = job.project.as_ref().or(self.project_id.as_ref());
            if !ids.insert((job.service, project, job.id.as_str())) {
                return Err(invalid(
                    format!("job[{index}].id"),
                    format!(
                        "duplicate job id {:?} of service {} in one project",
                        job.id, job.service
                    ),
                ));
            }
        }
        validate_faults(&self.faults)
    }
}

/// The deepest nesting of sub-jobs a scenario may describe.
pub const MAX_SUB_JOB_DEPTH: usize = 4;

/// Validates a list of jobs; keys are named `job[N]...`.
pub fn validate_jobs(jobs: &[JobSpec]) -> Result<(), ScenarioError> {
    for (index, job) in jobs.iter().enumerate() {
        let key = format!("job[{index}]");
        if job.id.is_empty() {
            return Err(invalid(format!("{key}.id"), "must not be empty"));
        }
        if job.project.as_ref().is_some_and(String::is_empty) {
            return Err(invalid(
                format!("{key}.project"),
                "must not be empty when set",
            ));
        }
        if let Some(vanish_after) = job.vanish_after
            && vanish_after <= job.visible_after
        {
            return Err(invalid(
                format!("{key}.vanish_after"),
                "must be later than visible_after",
            ));
        }
        if job.service == Service::Cce && job.not_found == Some(NotFoundStyle::Http400) {
            return Err(invalid(
                format!("{key}.not_found"),
                "cce jobs have only the \"404\" answer",
            ));
        }
        validate_fields(
            &key,
            job.service,
            &[
                ("server_id", job.server_id.is_some()),
                ("nic_id", job.nic_id.is_some()),
                ("resource_id", job.resource_id.is_some()),
            ],
        )?;
        validate_timeline(&format!("{key}.timeline"), &job.timeline)?;
        if job.service == Service::Rds && !job.sub_jobs.is_empty() {
            return Err(invalid(
                format!("{key}.sub_job"),
                "rds jobs have no sub-jobs",
            ));
        }
        validate_sub_jobs(&key, job.service, &job.sub_jobs, 1)?;
    }
    Ok(())
}

/// Checks that every job's project is served, when the scenario names
/// projects at all.
pub fn validate_projects(jobs: &[JobSpec], served: &[String]) -> Result<(), ScenarioError> {
    if served.is_empty() {
        return Ok(());
    }
    for (index, job) in jobs.iter().enumerate() {
        if let Some(project) = &job.project
            && !served.contains(project)
        {
            return Err(invalid(
                format!("job[{index}].project"),
                format!("{project:?} is neither project_id nor in project_ids"),
            ));
        }
    }
    Ok(())
}

fn validate_sub_jobs(
    parent: &str,
    service: Service,
    sub_jobs: &[SubJobSpec],
    depth: usize,
) -> Result<(), ScenarioError> {
    let nests = matches!(service, Service::Cce | Service::Eip);
    for (index, sub_job) in sub_jobs.iter().enumerate() {
        let key = format!("{parent}.sub_job[{index}]");
        if sub_job.id.is_empty() && !nests {
            return Err(invalid(format!("{key}.id"), "must not be empty"));
        }
        validate_fields(
            &key,
            service,
            &[
                ("server_id", sub_job.server_id.is_some()),
                ("nic_id", sub_job.nic_id.is_some()),
                ("errorcode_message", sub_job.errorcode_message.is_some()),
                ("resource_id", sub_job.resource_id.is_some()),
            ],
        )?;
        validate_timeline(&format!("{key}.timeline"), &sub_job.timeline)?;
        if !sub_job.sub_jobs.is_empty() {
            if !nests {
                return Err(invalid(
                    format!("{key}.sub_job"),
                    "only cce and eip sub-jobs have sub-jobs of their own",
                ));
            }
            if depth >= MAX_SUB_JOB_DEPTH {
                return Err(invalid(
                    format!("{key}.sub_job"),
                    format!("sub-jobs nest at most {MAX_SUB_JOB_DEPTH} deep"),
                ));
            }
            validate_sub_jobs(&key, service, &sub_job.sub_jobs, depth + 1)?;
        }
    }
    Ok(())
}

/// Refuses the entity fields a service's bodies have no place for.
fn validate_fields(key: &str, service: Service, set: &[(&str, bool)]) -> Result<(), ScenarioError> {
    for &(field, is_set) in set {
        let fits = match field {
            "server_id" => matches!(service, Service::Ecs | Service::Bms | Service::Cce),
            "nic_id" | "errorcode_message" => matches!(service, Service::Ecs | Service::Bms),
            _ => !matches!(service, Service::Ecs | Service::Bms),
        };
        if is_set && !fits {
            return Err(invalid(
                format!("{key}.{field}"),
                format!("{service} jobs have no place for it"),
            ));
        }
    }
    Ok(())
}

fn validate_timeline(key: &str, timeline: &[TimelineEntry]) -> Result<(), ScenarioError> {
    if timeline.is_empty() {
        return Err(invalid(key, "needs at least one entry"));
    }
    let mut previous = Duration::ZERO;
    for (index, entry) in timeline.iter().enumerate() {
        if entry.status.is_empty() {
            return Err(invalid(
                format!("{key}[{index}].status"),
                "must not be empty",
            ));
        }
        if entry
            .progress
            .is_some_and(|progress| !(0.0..=100.0).contains(&progress))
        {
            return Err(invalid(
                format!("{key}[{index}].progress"),
                "must be a percentage from 0 to 100",
            ));
        }
        if entry.at < previous {
            return Err(invalid(
                format!("{key}[{index}].at"),
                "must not be earlier than the entry before it",
            ));
        }
        previous = entry.at;
    }
    Ok(())
}

/// Validates a list of fault rules; keys are named `fault[N]...`.
pub fn validate_faults(faults: &[FaultRule]) -> Result<(), ScenarioError> {
    for (index, fault) in faults.iter().enumerate() {
        let key = format!("fault[{index}]");
        if !(0.0..=1.0).contains(&fault.probability) {
            return Err(invalid(
                format!("{key}.probability"),
                "must be between 0 and 1",
            ));
        }
        if let (Some(from), Some(until)) = (fault.from, fault.until)
            && until <= from
        {
            return Err(invalid(format!("{key}.until"), "must be later than from"));
        }
        if fault.jobs.iter().any(String::is_empty) {
            return Err(invalid(format!("{key}.jobs"), "job ids must not be empty"));
        }
        let kind = fault.kind;
        match fault.status {
            Some(_) if kind != FaultKind::ServerError => {
                return Err(invalid(
                    format!("{key}.status"),
                    "only applies to kind = \"server_error\"",
                ));
            }
            Some(status) if !(500..=599).contains(&status) => {
                return Err(invalid(format!("{key}.status"), "must be a 5xx status"));
            }
            _ => {}
        }
        if kind != FaultKind::Throttle {
            if fault.retry_after.is_some() {
                return Err(invalid(
                    format!("{key}.retry_after"),
                    "only applies to kind = \"throttle\"",
                ));
            }
            if fault.retry_after_http_date {
                return Err(invalid(
                    format!("{key}.retry_after_http_date"),
                    "only applies to kind = \"throttle\"",
                ));
            }
        }
        if fault.retry_after_http_date && fault.retry_after.is_none() {
            return Err(invalid(
                format!("{key}.retry_after_http_date"),
                "needs retry_after",
            ));
        }
        match (kind, fault.latency) {
            (FaultKind::Latency, None) => {
                return Err(invalid(
                    format!("{key}.latency"),
                    "is required for kind = \"latency\"",
                ));
            }
            (FaultKind::Latency, Some((low, high))) if high < low => {
                return Err(invalid(
                    format!("{key}.latency"),
                    "the second duration must not be shorter than the first",
                ));
            }
            (FaultKind::Latency, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(invalid(
                    format!("{key}.latency"),
                    "only applies to kind = \"latency\"",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
