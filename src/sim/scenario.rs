//! The simulator's scenario: which credentials the simulated gateway
//! accepts, which jobs exist and how their status moves over time, and
//! which faults are injected.
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
    /// When set, requests for another project get 403.
    #[serde(default)]
    pub project_id: Option<String>,
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

/// How the 404s of one job look.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum NotFoundStyle {
    /// HTTP 404 with `{"error":{"code":"Ecs.0103",...}}`.
    #[default]
    #[serde(rename = "404")]
    Ecs0103,
    /// HTTP 400 with `{"error":{"code":"Common.0011",...}}`.
    #[serde(rename = "Common.0011")]
    Common0011,
}

/// One `[[job]]` entry: a job and the statuses it goes through.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job id, as it appears in the request path.
    pub id: String,
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
    /// How this job's 404s look.
    #[serde(default)]
    pub not_found: NotFoundStyle,
    /// `entities.server_id` of the job itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// `entities.nic_id` of the job itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_id: Option<String>,
    /// The statuses over time; the entry whose `at` was passed last applies.
    pub timeline: Vec<TimelineEntry>,
    /// The sub-jobs (`[[job.sub_job]]`), listed in `entities.sub_jobs`.
    #[serde(default, rename = "sub_job", skip_serializing_if = "Vec::is_empty")]
    pub sub_jobs: Vec<SubJobSpec>,
}

/// One `[[job.sub_job]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubJobSpec {
    /// The sub-job id.
    pub id: String,
    /// The sub-job's `job_type`, for example `createSingleServer`.
    pub job_type: String,
    /// `entities.server_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    /// `entities.nic_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_id: Option<String>,
    /// `entities.errorcode_message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errorcode_message: Option<String>,
    /// The statuses over time, on the same clock as the parent job's.
    pub timeline: Vec<TimelineEntry>,
}

/// One status of a timeline and the moment it starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    /// The offset from the job's base (simulator start, or the moment the
    /// job was added) at which this status starts.
    #[serde(with = "humantime_serde")]
    pub at: Duration,
    /// The status string, served verbatim.
    pub status: String,
    /// `error_code` while this entry applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `fail_reason` while this entry applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_reason: Option<String>,
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
    /// When not empty, only requests for these job ids are affected.
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
    /// to a request for `job_id` (`None` when the path names no job).
    pub fn is_active(&self, elapsed: Duration, job_id: Option<&str>) -> bool {
        if self.from.is_some_and(|from| elapsed < from) {
            return false;
        }
        if self.until.is_some_and(|until| elapsed >= until) {
            return false;
        }
        if self.jobs.is_empty() {
            return true;
        }
        job_id.is_some_and(|id| self.jobs.iter().any(|listed| listed == id))
    }
}

fn always() -> f64 {
    1.0
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
        validate_jobs(&self.jobs)?;
        let mut ids = HashSet::new();
        for (index, job) in self.jobs.iter().enumerate() {
            if !ids.insert(job.id.as_str()) {
                return Err(invalid(
                    format!("job[{index}].id"),
                    format!("duplicate job id {:?}", job.id),
                ));
            }
        }
        validate_faults(&self.faults)
    }
}

/// Validates a list of jobs; keys are named `job[N]...`.
pub fn validate_jobs(jobs: &[JobSpec]) -> Result<(), ScenarioError> {
    for (index, job) in jobs.iter().enumerate() {
        let key = format!("job[{index}]");
        if job.id.is_empty() {
            return Err(invalid(format!("{key}.id"), "must not be empty"));
        }
        if let Some(vanish_after) = job.vanish_after
            && vanish_after <= job.visible_after
        {
            return Err(invalid(
                format!("{key}.vanish_after"),
                "must be later than visible_after",
            ));
        }
        validate_timeline(&format!("{key}.timeline"), &job.timeline)?;
        for (sub_index, sub_job) in job.sub_jobs.iter().enumerate() {
            let sub_key = format!("{key}.sub_job[{sub_index}]");
            if sub_job.id.is_empty() {
                return Err(invalid(format!("{sub_key}.id"), "must not be empty"));
            }
            validate_timeline(&format!("{sub_key}.timeline"), &sub_job.timeline)?;
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
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[credential]]
access_key = "AK"
secret_key = "SK"
"#;

    #[test]
    fn example_scenario_parses() {
        let scenario = Scenario::from_toml_str(include_str!("../../config/sim-scenario.toml"))
            .expect("config/sim-scenario.toml must parse");
        assert!(!scenario.credentials.is_empty());
        assert!(!scenario.jobs.is_empty());
        assert!(!scenario.faults.is_empty());
    }

    #[test]
    fn documentation_shows_the_example_scenario() {
        let documentation = include_str!("../../docs/simulator.md");
        let example = include_str!("../../config/sim-scenario.toml");
        assert!(
            documentation.contains(&format!("```toml\n{example}```")),
            "docs/simulator.md must show config/sim-scenario.toml verbatim"
        );
    }

    #[test]
    fn minimal_scenario_parses_with_defaults() {
        let scenario = Scenario::from_toml_str(MINIMAL).unwrap();
        assert_eq!(scenario.project_id, None);
        assert_eq!(scenario.limits.requests_per_second, 0);
        assert!(scenario.jobs.is_empty());
        assert!(scenario.faults.is_empty());
        assert!(!scenario.credentials[0].forbidden);
    }

    #[test]
    fn full_job_and_fault_parse() {
        let text = format!(
            "{MINIMAL}{}",
            r#"
[[job]]
id = "j1"
job_type = "createServer"
visible_after = "1s"
vanish_after = "10m"
not_found = "Common.0011"
timeline = [
  { at = "0s", status = "INIT" },
  { at = "20s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "quota" },
]
[[job.sub_job]]
id = "s1"
job_type = "createSingleServer"
server_id = "srv"
errorcode_message = "boom"
timeline = [ { at = "0s", status = "RUNNING" } ]

[[fault]]
kind = "latency"
latency = ["0ms", "800ms"]
[[fault]]
kind = "throttle"
probability = 0.5
from = "1s"
until = "2s"
jobs = ["j1"]
retry_after = "2s"
retry_after_http_date = true
"#
        );
        let scenario = Scenario::from_toml_str(&text).unwrap();
        let job = &scenario.jobs[0];
        assert_eq!(job.visible_after, Duration::from_secs(1));
        assert_eq!(job.vanish_after, Some(Duration::from_secs(600)));
        assert_eq!(job.not_found, NotFoundStyle::Common0011);
        assert_eq!(job.timeline[1].error_code.as_deref(), Some("Ecs.0013"));
        assert_eq!(job.sub_jobs[0].server_id.as_deref(), Some("srv"));
        assert_eq!(
            scenario.faults[0].latency,
            Some((Duration::ZERO, Duration::from_millis(800)))
        );
        assert_eq!(scenario.faults[1].kind, FaultKind::Throttle);
        assert!(scenario.faults[1].retry_after_http_date);
    }

    /// Each bad scenario must fail with a message that contains the key.
    #[test]
    fn bad_scenarios_name_the_key() {
        let check = |extra: &str, expected: &str| {
            let text = format!("{MINIMAL}{extra}");
            let error = Scenario::from_toml_str(&text).expect_err(extra).to_string();
            assert!(
                error.contains(expected),
                "{extra:?}: {error:?} should contain {expected:?}"
            );
        };
        check("colour = 1\n", "colour");
        check("[limits]\nburst = 3\n", "burst");
        check(
            "[limits]\nrequests_per_second = -1\n",
            "requests_per_second",
        );
        check(
            "[[job]]\nid = \"\"\njob_type = \"t\"\ntimeline = [{ at = \"0s\", status = \"INIT\" }]\n",
            "job[0].id",
        );
        check(
            "[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = [{ at = \"2s\", status = \"INIT\" }, { at = \"1s\", status = \"RUNNING\" }]\n",
            "job[0].timeline[1].at",
        );
        check(
            "[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = []\n",
            "job[0].timeline",
        );
        check(
            "[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = [{ at = \"soon\", status = \"INIT\" }]\n",
            "at",
        );
        check(
            "[[job]]\nid = \"a\"\njob_type = \"t\"\nnot_found = \"410\"\ntimeline = [{ at = \"0s\", status = \"INIT\" }]\n",
            "not_found",
        );
        check(
            "[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = [{ at = \"0s\", status = \"INIT\" }]\n[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = [{ at = \"0s\", status = \"INIT\" }]\n",
            "job[1].id",
        );
        check(
            "[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = [{ at = \"0s\", status = \"INIT\" }]\n[[job.sub_job]]\nid = \"s\"\njob_type = \"t\"\ntimeline = [{ at = \"0s\", status = \"\" }]\n",
            "job[0].sub_job[0].timeline[0].status",
        );
        check(
            "[[fault]]\nkind = \"drop\"\nprobability = 1.5\n",
            "fault[0].probability",
        );
        check("[[fault]]\nkind = \"explode\"\n", "kind");
        check("[[fault]]\nkind = \"latency\"\n", "fault[0].latency");
        check(
            "[[fault]]\nkind = \"drop\"\nstatus = 503\n",
            "fault[0].status",
        );
        check(
            "[[fault]]\nkind = \"server_error\"\nstatus = 404\n",
            "fault[0].status",
        );
        check(
            "[[fault]]\nkind = \"throttle\"\nretry_after_http_date = true\n",
            "fault[0].retry_after_http_date",
        );
        check(
            "[[fault]]\nkind = \"drop\"\nfrom = \"5s\"\nuntil = \"1s\"\n",
            "fault[0].until",
        );
        check(
            "[[credential]]\naccess_key = \"AK\"\nsecret_key = \"x\"\n",
            "credential[1].access_key",
        );
        let error = Scenario::from_toml_str("project_id = \"p\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("credential"), "{error}");
    }

    #[test]
    fn load_names_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("broken.toml");
        std::fs::write(&path, "[[fault]]\nkind = \"drop\"\n").unwrap();
        let error = Scenario::load(&path).unwrap_err().to_string();
        assert!(error.contains("broken.toml"), "{error}");
        assert!(error.contains("credential"), "{error}");
        let missing = directory.path().join("missing.toml");
        let error = Scenario::load(&missing).unwrap_err().to_string();
        assert!(error.contains("missing.toml"), "{error}");
    }

    #[test]
    fn job_spec_round_trips_through_json() {
        let text = r#"[{"id":"j","job_type":"deleteVMs","visible_after":"1s",
            "timeline":[{"at":"0s","status":"RUNNING"},{"at":"1m 30s","status":"SUCCESS"}],
            "sub_job":[{"id":"s","job_type":"x","timeline":[{"at":"0s","status":"INIT"}]}]}]"#;
        let jobs: Vec<JobSpec> = serde_json::from_str(text).unwrap();
        assert_eq!(jobs[0].timeline[1].at, Duration::from_secs(90));
        let again: Vec<JobSpec> =
            serde_json::from_str(&serde_json::to_string(&jobs).unwrap()).unwrap();
        assert_eq!(again, jobs);
        let faults = vec![FaultRule {
            latency: Some((Duration::from_millis(1), Duration::from_millis(2))),
            ..FaultRule::always(FaultKind::Latency)
        }];
        let again: Vec<FaultRule> =
            serde_json::from_str(&serde_json::to_string(&faults).unwrap()).unwrap();
        assert_eq!(again, faults);
    }

    #[test]
    fn fault_windows_and_job_filters() {
        let rule = FaultRule {
            from: Some(Duration::from_secs(1)),
            until: Some(Duration::from_secs(2)),
            jobs: vec!["a".into()],
            ..FaultRule::always(FaultKind::Drop)
        };
        let check = |secs: f64, job: Option<&str>, expected: bool| {
            assert_eq!(
                rule.is_active(Duration::from_secs_f64(secs), job),
                expected,
                "{secs} {job:?}"
            );
        };
        check(0.5, Some("a"), false);
        check(1.0, Some("a"), true);
        check(1.5, Some("b"), false);
        check(1.5, None, false);
        check(2.0, Some("a"), false);
        assert!(FaultRule::always(FaultKind::Drop).is_active(Duration::ZERO, None));
    }
}
