//! The job APIs of the Huawei Cloud job family, one adapter per file.
//!
//! An adapter knows one service's job API: where to ask (path and query
//! below the service's endpoint), how to read its body (leniently: every
//! field optional, wrong types read as absent, bodies capped), which
//! refusals mean "no such job", how its status words map to the common
//! vocabulary of [`Status`](crate::job::Status), which resource ids a job names, and its
//! sub-jobs. Nothing outside an adapter's file knows that service's words.
//!
//! [`Poller`] is the seam the scheduler reads jobs through.

pub mod ecs;

use std::future::Future;
use std::pin::Pin;

use crate::huaweicloud::error::ApiError;
use crate::job::{JobKey, JobView, Service};

/// What one job query sends, below the service's endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobQuery {
    /// The path, starting with `/`, each segment percent-encoded.
    pub path: String,
    /// Query parameters (RDS: `id`), in order.
    pub query: Vec<(&'static str, String)>,
}

/// The essentials of a refusal, for an adapter's not-found rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal<'a> {
    /// The HTTP status.
    pub http_status: u16,
    /// The error code from the body, when there is one.
    pub code: Option<&'a str>,
    /// The error message from the body, when there is one.
    pub message: Option<&'a str>,
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
