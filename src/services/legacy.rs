//! The ECS-only model the scheduler, the events and the cadence read
//! before [`JobView`](crate::job::JobView): [`Job`], [`SubJob`],
//! [`JobStatus`] (ECS's words verbatim), [`parse_job`], the
//! classification [`classify_ecs`] and [`Client::get_job`] for the
//! default project's ECS jobs.
//!
//! It is kept so that those callers go on compiling while they move to
//! [`super::Poller`] and [`super::fleet::Fleet`]; it reads bodies with the
//! ECS adapter's typed structs (no `serde_json::Value`), and goes when the
//! last caller has moved.

use std::fmt;
use std::time::SystemTime;

use super::ecs::{self, Body};
use super::lenient::{self, MAX_BODY_BYTES, Text};
use super::{Adapter, ParseError, Refusal};
use crate::huaweicloud::client::{Client, Request};
use crate::huaweicloud::error::{self, AnswerHeaders, ApiError, ErrorKind};

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
    match lenient::parse_body::<Body<'_>>(body, MAX_BODY_BYTES) {
        Ok(parsed) => Ok(job_of(&parsed)),
        Err(ParseError::TooLarge(_)) => Err(DecodeError::TooLarge),
        Err(ParseError::NotAnObject) => Err(DecodeError::NotAnObject),
        Err(ParseError::Json(message)) => Err(DecodeError::Json(message)),
        // `parse_body` never answers this; an empty job is the nearest.
        Err(ParseError::NoStatus { .. }) => Ok(Job::default()),
    }
}

fn status_of(text: &Text<'_>) -> Option<JobStatus> {
    text.get().map(JobStatus::parse)
}

fn job_of(body: &Body<'_>) -> Job {
    let entities = body.entities.get();
    let sub_jobs = entities
        .map(|e| {
            e.sub_jobs
                .0
                .iter()
                .map(|sub| {
                    let entities = sub.entities.get();
                    SubJob {
                        status: status_of(&sub.status),
                        job_id: sub.job_id.owned(),
                        job_type: sub.job_type.owned(),
                        begin_time: sub.begin_time.owned(),
                        end_time: sub.end_time.owned(),
                        error_code: sub.error_code.owned(),
                        fail_reason: sub.fail_reason.owned(),
                        server_id: entities.and_then(|e| e.server_id.owned()),
                        nic_id: entities.and_then(|e| e.nic_id.owned()),
                        errorcode_message: entities.and_then(|e| e.errorcode_message.owned()),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Job {
        status: status_of(&body.status),
        job_id: body.job_id.owned(),
        job_type: body.job_type.owned(),
        begin_time: body.begin_time.owned(),
        end_time: body.end_time.owned(),
        error_code: body.error_code.owned(),
        fail_reason: body.fail_reason.owned(),
        message: body.message.owned(),
        code: body.code.owned(),
        sub_jobs_total: entities.and_then(|e| e.sub_jobs_total.0),
        sub_jobs,
        server_id: entities.and_then(|e| e.server_id.owned()),
        nic_id: entities.and_then(|e| e.nic_id.owned()),
    }
}

/// Classifies a complete answer of ECS's job API into the legacy [`Job`]:
/// the same classification as [`super::read_answer`] with the ECS
/// adapter, returning the old model.
pub fn classify_ecs(
    status: u16,
    headers: AnswerHeaders<'_>,
    body: &[u8],
    now: SystemTime,
) -> Result<Job, ApiError> {
    let rule = |refusal: &Refusal<'_>| ecs::Ecs.is_not_found(refusal);
    let body = error::classify(status, headers, body, now, &rule)?;
    let job = parse_job(body).map_err(|e| error::undecodable(status, headers, e.to_string()))?;
    if job.status.is_some() {
        return Ok(job);
    }
    let fields = error::error_fields(body);
    Err(error::refused(
        status,
        headers,
        fields.code.as_deref(),
        fields.message.as_deref(),
        now,
        &rule,
    ))
}

impl Client {
    /// `GET /v1/{project_id}/jobs/{job_id}` of the client's default
    /// project (the one of [`crate::huaweicloud::client::ClientConfig`]),
    /// signed, classified, read into the legacy [`Job`].
    pub async fn get_job(&self, job_id: &str) -> Result<Job, ApiError> {
        let Some((endpoint, project_id)) = self.default_target() else {
            return Err(ApiError::transport(
                ErrorKind::Client,
                "this client has no default project; read jobs through a Fleet",
            ));
        };
        let query = ecs::Ecs.query(project_id, job_id);
        let request = Request::get(endpoint, &query.path, Some(project_id), MAX_BODY_BYTES);
        let answer = self.send(&request).await?;
        classify_ecs(
            answer.status,
            answer.headers(),
            &answer.body,
            SystemTime::now(),
        )
    }
}
