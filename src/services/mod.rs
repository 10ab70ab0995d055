//! The job APIs of the Huawei Cloud job family, one adapter per file.
//!
//! An adapter knows one service's job API: where to ask (path and query
//! below the service's endpoint), how to read its body (leniently: every
//! field optional, wrong types read as absent, bodies capped; see
//! [`lenient`]), which refusals mean "no such job", how its status words
//! map to the common vocabulary of [`Status`], which resource ids a job
//! names, and its sub-jobs. Nothing outside an adapter's file knows that
//! service's words. [`adapter`] hands out the adapter of a service.
//!
//! [`Poller`] is the seam the scheduler reads jobs through; [`fleet::Fleet`]
//! is the real one, [`read_answer`] the pure step from an HTTP answer to a
//! [`JobView`] that it takes.

pub mod bms;
pub mod cce;
pub mod ecs;
pub mod eip;
pub mod evs;
pub mod fleet;
pub mod ims;
pub mod lenient;
pub mod rds;

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use crate::huaweicloud::error::{self, AnswerHeaders, ApiError};
use crate::job::{JobKey, JobView, Service, Status};

pub use crate::huaweicloud::error::Refusal;

/// What one job query sends, below the service's endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobQuery {
    /// The path, starting with `/`, each segment percent-encoded.
    pub path: String,
    /// Query parameters (RDS: `id`), in order, not encoded.
    pub query: Vec<(&'static str, String)>,
}

impl JobQuery {
    /// `/v1/{project_id}/jobs/{job_id}`, each segment encoded, no query:
    /// the shape ECS, BMS, EVS and EIP share.
    pub fn v1_project_job(project_id: &str, job_id: &str) -> JobQuery {
        JobQuery {
            path: format!(
                "/v1/{}/jobs/{}",
                crate::huaweicloud::sign::percent_encode(project_id),
                crate::huaweicloud::sign::percent_encode(job_id)
            ),
            query: Vec::new(),
        }
    }
}

/// Why a 2xx body could not be read as a job.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// More than the adapter's cap.
    #[error("response body larger than {0} bytes")]
    TooLarge(usize),
    /// Not JSON, or JSON nested too deeply.
    #[error("response body is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not an object.
    #[error("response body is not a JSON object")]
    NotAnObject,
    /// A JSON object without a job status; `code` and `message` are set
    /// when the body reports a failed query instead.
    #[error("the answer has no job status")]
    NoStatus {
        /// The error code the body carries.
        code: Option<String>,
        /// Its message.
        message: Option<String>,
    },
}

/// One service's job API.
pub trait Adapter: Send + Sync + 'static {
    /// The service.
    fn service(&self) -> Service;
    /// Where to ask for `job_id` of `project_id`.
    fn query(&self, project_id: &str, job_id: &str) -> JobQuery;
    /// Reads a 2xx body.
    fn parse(&self, body: &[u8]) -> Result<JobView, ParseError>;
    /// Whether a refusal means that the job is unknown (not yet visible,
    /// expired, or never existed).
    fn is_not_found(&self, refusal: &Refusal<'_>) -> bool;
    /// A status word of this service (of a job or of a sub-job) in the
    /// common vocabulary.
    fn status(&self, word: &str) -> Status;
    /// The largest body read; the client stops reading past it.
    fn max_body_bytes(&self) -> usize {
        lenient::MAX_BODY_BYTES
    }
}

/// The adapter of `service`.
pub fn adapter(service: Service) -> &'static dyn Adapter {
    match service {
        Service::Ecs => &ecs::Ecs,
        Service::Bms => &bms::Bms,
        Service::Evs => &evs::Evs,
        Service::Ims => &ims::Ims,
        Service::Cce => &cce::Cce,
        Service::Rds => &rds::Rds,
        Service::Eip => &eip::Eip,
    }
}

/// Reads one complete HTTP answer of `adapter`'s job API: the job, or the
/// error the answer means (classified by [`error::classify`] with the
/// adapter's not-found rule; a 2xx body without a job status by
/// [`error::refused`]). `now` resolves a `Retry-After` given as a date.
pub fn read_answer(
    adapter: &dyn Adapter,
    status: u16,
    headers: AnswerHeaders<'_>,
    body: &[u8],
    now: SystemTime,
) -> Result<JobView, ApiError> {
    let rule = |refusal: &Refusal<'_>| adapter.is_not_found(refusal);
    let body = error::classify(status, headers, body, now, &rule)?;
    match adapter.parse(body) {
        Ok(view) => Ok(view),
        Err(ParseError::NoStatus { code, message }) => Err(error::refused(
            status,
            headers,
            code.as_deref(),
            message.as_deref(),
            now,
            &rule,
        )),
        Err(other) => Err(error::undecodable(status, headers, other.to_string())),
    }
}

/// One answer of a job API, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Polled {
    /// The job.
    pub view: JobView,
    /// The server's clock at the answer (its `Date` header), Unix ms.
    pub server_now_ms: Option<i64>,
}

/// The future of one poll.
pub type PollFuture = Pin<Box<dyn Future<Output = Result<Polled, ApiError>> + Send>>;

/// Something that can read one job: the real client of every service
/// and project, or a fake in tests.
pub trait Poller: Send + Sync + 'static {
    /// Reads the job.
    fn poll(&self, key: &JobKey) -> PollFuture;
    /// The generation of the credentials in use (changes when they do).
    fn credentials_generation(&self) -> u64;
}

#[cfg(test)]
mod tests;
