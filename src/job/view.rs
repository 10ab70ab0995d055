//! What a service adapter makes of one answer of its job API: the same
//! shape for every service, in the common vocabulary, with the service's
//! own words kept beside it.

use super::status::Status;

/// One job as its service described it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobView {
    /// The status in the common vocabulary.
    pub status: Status,
    /// The status word as the service sent it (`Failed`, `Completed`,
    /// `WAITING_EXECUTE`, ...).
    pub service_status: String,
    /// The job id as the body states it, when it does.
    pub job_id: Option<String>,
    /// The operation: `createServer`, `CreateCluster`,
    /// `CreateMysqlSingleHAInstance`, ...
    pub job_type: Option<String>,
    /// When the job began, as sent.
    pub begin_time: Option<String>,
    /// When the job ended, as sent (absent while it runs).
    pub end_time: Option<String>,
    /// `begin_time` read as Unix milliseconds, when it could be read.
    pub begin_ms: Option<i64>,
    /// `end_time` read as Unix milliseconds, when it could be read.
    pub end_ms: Option<i64>,
    /// The error code of a failed job.
    pub error_code: Option<String>,
    /// Why the job failed.
    pub fail_reason: Option<String>,
    /// What the job made or changed: servers, volumes, images, clusters,
    /// DB instances; in order, without duplicates.
    pub resource_ids: Vec<String>,
    /// Server ids (ECS and BMS only; empty for other services).
    pub server_ids: Vec<String>,
    /// How many sub-jobs the job announced (`sub_jobs_total`), when it did.
    pub sub_jobs_total: Option<u64>,
    /// The sub-jobs, nested ones flattened depth-first.
    pub sub_jobs: Vec<SubJobView>,
    /// Progress from 0 to 1 where the service reports one (IMS
    /// `process_percent`, RDS `process`).
    pub progress: Option<f64>,
}

/// One sub-job of a job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubJobView {
    /// What identifies the sub-job within its job: its id, else its
    /// position (`#0`, or `#1.0` for the first child of the second
    /// sub-job).
    pub key: String,
    /// The sub-job's own id, when it has one.
    pub job_id: Option<String>,
    /// The status in the common vocabulary.
    pub status: Status,
    /// The status word as sent.
    pub service_status: String,
    /// Its operation.
    pub job_type: Option<String>,
    /// When it began, as sent.
    pub begin_time: Option<String>,
    /// When it ended, as sent.
    pub end_time: Option<String>,
    /// The error code of a failed sub-job.
    pub error_code: Option<String>,
    /// Why it failed: its `fail_reason`, else what the service offers
    /// instead (ECS `entities.errorcode_message`).
    pub fail_reason: Option<String>,
    /// The server it made (ECS, BMS).
    pub server_id: Option<String>,
    /// The NIC it made (ECS).
    pub nic_id: Option<String>,
    /// What it made or changed.
    pub resource_ids: Vec<String>,
}

impl JobView {
    /// How many sub-jobs are in FAIL.
    pub fn sub_jobs_failed(&self) -> usize {
        self.sub_jobs
            .iter()
            .filter(|sub| sub.status == Status::Fail)
            .count()
    }

    /// How many sub-jobs are final (SUCCESS or FAIL).
    pub fn sub_jobs_finished(&self) -> usize {
        self.sub_jobs
            .iter()
            .filter(|sub| sub.status.is_final())
            .count()
    }
}

/// Appends `id` to `ids` unless it is there already (ids keep their
/// first-seen order).
pub fn push_unique(ids: &mut Vec<String>, id: &str) {
    if !id.is_empty() && !ids.iter().any(|known| known == id) {
        ids.push(id.to_string());
    }
}
