//! The wire model of `GET /v1/{project_id}/jobs/{job_id}`.
//!
//! Every field of the body may be absent or `null`, `end_time` is `""`
//! while a job runs, and new statuses may appear at any time, so parsing is
//! deliberately lenient: the body goes through `serde_json::Value` and each
//! field is picked out on its own. A field of an unexpected type is read as
//! absent instead of failing the whole body; only a body that is not JSON,
//! is larger than [`MAX_BODY_BYTES`], or has no status at all is refused.

use std::fmt;

use serde_json::{Map, Value};

/// The largest body the client reads; larger ones are refused unread.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The status of a job or sub-job: the known ones, and any other string
/// kept verbatim (treated as not final).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Being initialised.
    Init,
    /// In progress.
    Running,
    /// Done; final.
    Success,
    /// Failed; final.
    Fail,
    /// A yearly/monthly order waits for payment.
    PendingPayment,
    /// A status this version does not know, as the API sent it.
    Other(String),
}

impl JobStatus {
    /// Parses a status string; unknown strings are kept verbatim.
    pub fn parse(value: &str) -> JobStatus {
        match value {
            "INIT" => JobStatus::Init,
            "RUNNING" => JobStatus::Running,
            "SUCCESS" => JobStatus::Success,
            "FAIL" => JobStatus::Fail,
            "PENDING_PAYMENT" => JobStatus::PendingPayment,
            other => JobStatus::Other(other.to_string()),
        }
    }

    /// The status as the API spells it.
    pub fn as_str(&self) -> &str {
        match self {
            JobStatus::Init => "INIT",
            JobStatus::Running => "RUNNING",
            JobStatus::Success => "SUCCESS",
            JobStatus::Fail => "FAIL",
            JobStatus::PendingPayment => "PENDING_PAYMENT",
            JobStatus::Other(other) => other,
        }
    }

    /// SUCCESS and FAIL: the job will never change again.
    pub fn is_final(&self) -> bool {
        matches!(self, JobStatus::Success | JobStatus::Fail)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job as the API describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Job {
    /// The job's status; `None` only in bodies that are not job bodies.
    pub status: Option<JobStatus>,
    /// `job_id`.
    pub job_id: Option<String>,
    /// `job_type`, for example `createServer`.
    pub job_type: Option<String>,
    /// `begin_time` as sent (an ISO 8601 string).
    pub begin_time: Option<String>,
    /// `end_time` as sent; `""` is read as absent.
    pub end_time: Option<String>,
    /// `error_code` of a failed job.
    pub error_code: Option<String>,
    /// `fail_reason` of a failed job.
    pub fail_reason: Option<String>,
    /// `message`, set when the query itself failed.
    pub message: Option<String>,
    /// `code`, set when the query itself failed.
    pub code: Option<String>,
    /// `entities.sub_jobs_total`.
    pub sub_jobs_total: Option<u64>,
    /// `entities.sub_jobs`.
    pub sub_jobs: Vec<SubJob>,
    /// `entities.server_id`.
    pub server_id: Option<String>,
    /// `entities.nic_id`.
    pub nic_id: Option<String>,
}

/// One sub-job of a batch job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubJob {
    /// The sub-job's status.
    pub status: Option<JobStatus>,
    /// `job_id` of the sub-job.
    pub job_id: Option<String>,
    /// `job_type`, for example `createSingleServer`.
    pub job_type: Option<String>,
    /// `begin_time` as sent.
    pub begin_time: Option<String>,
    /// `end_time` as sent; `""` is read as absent.
    pub end_time: Option<String>,
    /// `error_code`.
    pub error_code: Option<String>,
    /// `fail_reason`.
    pub fail_reason: Option<String>,
    /// `entities.server_id`.
    pub server_id: Option<String>,
    /// `entities.nic_id`.
    pub nic_id: Option<String>,
    /// `entities.errorcode_message`.
    pub errorcode_message: Option<String>,
}

impl SubJob {
    /// The reason to report for a failed sub-job: `fail_reason`, else
    /// `entities.errorcode_message`.
    pub fn reason(&self) -> Option<&str> {
        self.fail_reason
            .as_deref()
            .or(self.errorcode_message.as_deref())
    }
}

impl Job {
    /// Every server id the job names: its own and its sub-jobs', in order,
    /// without duplicates.
    pub fn server_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        let all = self.server_id.iter().chain(
            self.sub_jobs
                .iter()
                .filter_map(|sub| sub.server_id.as_ref()),
        );
        for id in all {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        ids
    }

    /// The number of sub-jobs in FAIL.
    pub fn sub_jobs_failed(&self) -> usize {
        self.sub_jobs
            .iter()
            .filter(|sub| sub.status == Some(JobStatus::Fail))
            .count()
    }
}

/// Why a body could not be read as a job.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More than [`MAX_BODY_BYTES`].
    #[error("response body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Not JSON, or JSON nested too deeply.
    #[error("response body is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("response body is not a JSON object")]
    NotAnObject,
}

/// Parses a job body. Never panics, whatever the bytes.
pub fn parse_job(body: &[u8]) -> Result<Job, DecodeError> {
    let object = parse_object(body)?;
    Ok(job_from_object(&object))
}

/// Parses any body into a JSON object (the step shared by job bodies and
/// error bodies).
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(DecodeError::TooLarge);
    }
    // serde_json refuses nesting deeper than 128 levels, so hostile input
    // cannot exhaust the stack.
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(DecodeError::NotAnObject),
        Err(error) => Err(DecodeError::Json(error.to_string())),
    }
}

/// Builds a job from an already parsed object.
pub fn job_from_object(object: &Map<String, Value>) -> Job {
    let entities = object.get("entities").and_then(Value::as_object);
    let sub_jobs = entities
        .and_then(|e| e.get("sub_jobs"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .map(sub_job_from_object)
                .collect()
        })
        .unwrap_or_default();
    Job {
        status: status(object),
        job_id: text(object, "job_id"),
        job_type: text(object, "job_type"),
        begin_time: text(object, "begin_time"),
        end_time: text(object, "end_time"),
        error_code: text(object, "error_code"),
        fail_reason: text(object, "fail_reason"),
        message: text(object, "message"),
        code: text(object, "code"),
        sub_jobs_total: entities.and_then(|e| count(e, "sub_jobs_total")),
        sub_jobs,
        server_id: entities.and_then(|e| text(e, "server_id")),
        nic_id: entities.and_then(|e| text(e, "nic_id")),
    }
}

fn sub_job_from_object(object: &Map<String, Value>) -> SubJob {
    let entities = object.get("entities").and_then(Value::as_object);
    SubJob {
        status: status(object),
        job_id: text(object, "job_id"),
        job_type: text(object, "job_type"),
        begin_time: text(object, "begin_time"),
        end_time: text(object, "end_time"),
        error_code: text(object, "error_code"),
        fail_reason: text(object, "fail_reason"),
        server_id: entities.and_then(|e| text(e, "server_id")),
        nic_id: entities.and_then(|e| text(e, "nic_id")),
        errorcode_message: entities.and_then(|e| text(e, "errorcode_message")),
    }
}

fn status(object: &Map<String, Value>) -> Option<JobStatus> {
    text(object, "status").map(|s| JobStatus::parse(&s))
}

/// A string field; numbers and booleans are turned into their text, empty
/// strings and every other type read as absent.
fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A count; a numeric string is accepted too.
fn count(object: &Map<String, Value>, key: &str) -> Option<u64> {
    match object.get(key)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: &str = r#"{"begin_time":"2022-02-17T05:41:55.441Z","end_time":"",
 "entities":{"sub_jobs":[{"begin_time":"2022-02-17T05:41:55.554Z","end_time":"",
   "entities":{"server_id":"1c74e090-c569-4b52-9eaa-fd34776cec28"},
   "job_id":"ff8080827e7810fb017f06338ae3132c","job_type":"createSingleServer","status":"RUNNING"}],
   "sub_jobs_total":1},
 "job_id":"ff8080827e7810fb017f06338a731328","job_type":"createServer","status":"RUNNING"}"#;

    const SUCCESS: &str = r#"{"status":"SUCCESS",
 "entities":{"sub_jobs_total":1,"sub_jobs":[{"status":"SUCCESS",
   "entities":{"server_id":"bae51750-0089-41a1-9b18-5c777978ff6d"},
   "job_id":"2c9eb2c5544cbf6101544f0635672b60","job_type":"createSingleServer",
   "begin_time":"2016-04-25T20:04:47.591Z","end_time":"2016-04-25T20:08:21.328Z",
   "error_code":null,"fail_reason":null}]},
 "job_id":"2c9eb2c5544cbf6101544f0602af2b4f","job_type":"createServer",
 "begin_time":"2016-04-25T20:04:34.604Z","end_time":"2016-04-25T20:08:41.593Z",
 "error_code":null,"fail_reason":null}"#;

    #[test]
    fn real_running_body() {
        let job = parse_job(RUNNING.as_bytes()).unwrap();
        assert_eq!(job.status, Some(JobStatus::Running));
        assert_eq!(job.job_type.as_deref(), Some("createServer"));
        assert_eq!(job.end_time, None);
        assert_eq!(job.sub_jobs_total, Some(1));
        assert_eq!(job.sub_jobs.len(), 1);
        assert_eq!(job.sub_jobs[0].status, Some(JobStatus::Running));
        assert_eq!(
            job.server_ids(),
            vec!["1c74e090-c569-4b52-9eaa-fd34776cec28".to_string()]
        );
    }

    #[test]
    fn documented_success_body() {
        let job = parse_job(SUCCESS.as_bytes()).unwrap();
        assert_eq!(job.status, Some(JobStatus::Success));
        assert!(job.status.as_ref().unwrap().is_final());
        assert_eq!(job.end_time.as_deref(), Some("2016-04-25T20:08:41.593Z"));
        assert_eq!(job.error_code, None);
        assert_eq!(job.sub_jobs_failed(), 0);
    }

    #[test]
    fn failed_sub_job_reason_falls_back_to_errorcode_message() {
        let body = r#"{"status":"FAIL","error_code":"Ecs.0013","fail_reason":"quota",
          "entities":{"server_id":"s0","nic_id":"n0","sub_jobs":[
            {"status":"FAIL","job_id":"a","entities":{"server_id":"s1","errorcode_message":"no EIP"}},
            {"status":"FAIL","job_id":"b","fail_reason":"disk","entities":{"server_id":"s1"}},
            {"status":"SUCCESS","job_id":"c"}]}}"#;
        let job = parse_job(body.as_bytes()).unwrap();
        assert_eq!(job.sub_jobs_failed(), 2);
        assert_eq!(job.sub_jobs[0].reason(), Some("no EIP"));
        assert_eq!(job.sub_jobs[1].reason(), Some("disk"));
        assert_eq!(job.server_ids(), vec!["s0".to_string(), "s1".to_string()]);
        assert_eq!(job.nic_id.as_deref(), Some("n0"));
    }

    #[test]
    fn statuses_are_an_open_set() {
        for (text, final_) in [
            ("INIT", false),
            ("RUNNING", false),
            ("SUCCESS", true),
            ("FAIL", true),
            ("PENDING_PAYMENT", false),
            ("ROLLING_BACK", false),
            ("success", false),
        ] {
            let status = JobStatus::parse(text);
            assert_eq!(status.as_str(), text);
            assert_eq!(status.is_final(), final_, "{text}");
        }
        let job = parse_job(br#"{"status":"ROLLING_BACK"}"#).unwrap();
        assert_eq!(job.status, Some(JobStatus::Other("ROLLING_BACK".into())));
    }

    #[test]
    fn lenient_fields() {
        let check =
            |body: &str, expected: Job| assert_eq!(parse_job(body.as_bytes()).unwrap(), expected);
        check("{}", Job::default());
        check(
            r#"{"status":null,"entities":null,"job_id":7,"end_time":"","sub_jobs_total":"x"}"#,
            Job {
                job_id: Some("7".into()),
                ..Job::default()
            },
        );
        check(
            r#"{"entities":{"sub_jobs_total":"3","sub_jobs":[1,null,{"status":"FAIL"}]}}"#,
            Job {
                sub_jobs_total: Some(3),
                sub_jobs: vec![SubJob {
                    status: Some(JobStatus::Fail),
                    ..SubJob::default()
                }],
                ..Job::default()
            },
        );
        check(r#"{"status":["RUNNING"],"entities":[]}"#, Job::default());
    }

    #[test]
    fn refusals() {
        assert!(matches!(parse_job(b""), Err(DecodeError::Json(_))));
        assert!(matches!(
            parse_job(b"{\"status\":\"RUN"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(parse_job(b"\xff\xfe"), Err(DecodeError::Json(_))));
        assert_eq!(parse_job(b"[]"), Err(DecodeError::NotAnObject));
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse_job(deep.as_bytes()),
            Err(DecodeError::Json(_))
        ));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse_job(&big), Err(DecodeError::TooLarge));
    }
}
