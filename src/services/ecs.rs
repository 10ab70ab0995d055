//! ECS: `GET /v1/{project_id}/jobs/{job_id}` on `ecs`.
//!
//! Every field of the body may be absent or `null`, `end_time` is `""`
//! while a job runs, and new statuses may appear at any time. The status
//! words are INIT, RUNNING, SUCCESS, FAIL and PENDING_PAYMENT; sub-jobs
//! (`entities.sub_jobs[]`) use the first four. Resource ids are the
//! servers and NICs of the job and its sub-jobs (`entities.server_id`,
//! `entities.nic_id`); a failed sub-job's reason is its `fail_reason`, else
//! `entities.errorcode_message`. Not found: HTTP 404 or 410, or
//! `Common.0011` (HTTP 400) with any status.
//!
//! The body's structs are shared with BMS, whose jobs have the same shape
//! ([`view`] takes the status mapping of the service that calls it).
//!
//! [`Client::get_job`] reads one ECS job of a client's default project,
//! for tools and tests that have a client and no fleet.

use super::lenient::{
    self, Count, Obj, Objects, Text, lenient_object, mapped_status, position_key, timestamp_ms,
};
use super::{Adapter, JobQuery, ParseError, Refusal};
use crate::huaweicloud::client::Client;
use crate::huaweicloud::error::{ApiError, ErrorKind};
use crate::job::view::push_unique;
use crate::job::{JobView, Service, Status, SubJobView};

pub use super::lenient::MAX_BODY_BYTES;

/// The ECS adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ecs;

lenient_object! {
    /// A job body of ECS (and BMS).
    pub struct Body<'a> {
        "status" => status: Text<'a>,
        "job_id" => job_id: Text<'a>,
        "job_type" => job_type: Text<'a>,
        "begin_time" => begin_time: Text<'a>,
        "end_time" => end_time: Text<'a>,
        "error_code" => error_code: Text<'a>,
        "fail_reason" => fail_reason: Text<'a>,
        /// Set when the query itself failed.
        "message" => message: Text<'a>,
        /// Set when the query itself failed.
        "code" => code: Text<'a>,
        "entities" => entities: Obj<Entities<'a>>,
    }
}

lenient_object! {
    /// `entities` of a job.
    pub struct Entities<'a> {
        "sub_jobs_total" => sub_jobs_total: Count,
        "sub_jobs" => sub_jobs: Objects<SubJobBody<'a>>,
        "server_id" => server_id: Text<'a>,
        "nic_id" => nic_id: Text<'a>,
    }
}

lenient_object! {
    /// One element of `entities.sub_jobs`.
    pub struct SubJobBody<'a> {
        "status" => status: Text<'a>,
        "job_id" => job_id: Text<'a>,
        "job_type" => job_type: Text<'a>,
        "begin_time" => begin_time: Text<'a>,
        "end_time" => end_time: Text<'a>,
        "error_code" => error_code: Text<'a>,
        "fail_reason" => fail_reason: Text<'a>,
        "entities" => entities: Obj<SubEntities<'a>>,
    }
}

lenient_object! {
    /// `entities` of a sub-job.
    pub struct SubEntities<'a> {
        "server_id" => server_id: Text<'a>,
        "nic_id" => nic_id: Text<'a>,
        "errorcode_message" => errorcode_message: Text<'a>,
    }
}

/// An ECS status word in the common vocabulary.
pub fn status(word: &str) -> Status {
    const WORDS: [(&str, Status); 5] = [
        ("INIT", Status::Init),
        ("RUNNING", Status::Running),
        ("SUCCESS", Status::Success),
        ("FAIL", Status::Fail),
        ("PENDING_PAYMENT", Status::PendingPayment),
    ];
    mapped_status(word, &WORDS)
}

/// Reads a body of this shape into a [`JobView`] with the status mapping
/// `status_of`; `None` when it has no status. The servers of the job and
/// its sub-jobs are its `server_ids`; with the NICs they are its
/// `resource_ids`.
pub fn view(body: &Body<'_>, status_of: fn(&str) -> Status) -> Option<JobView> {
    let word = body.status.get()?;
    let entities = body.entities.get();
    let mut view = JobView {
        status: status_of(word),
        service_status: word.to_string(),
        job_id: body.job_id.owned(),
        job_type: body.job_type.owned(),
        begin_time: body.begin_time.owned(),
        end_time: body.end_time.owned(),
        begin_ms: body.begin_time.get().and_then(timestamp_ms),
        end_ms: body.end_time.get().and_then(timestamp_ms),
        error_code: body.error_code.owned(),
        fail_reason: body.fail_reason.owned(),
        sub_jobs_total: entities.and_then(|e| e.sub_jobs_total.0),
        ..JobView::default()
    };
    if let Some(entities) = entities {
        note_ids(&mut view, entities.server_id.get(), entities.nic_id.get());
        for (position, sub) in entities.sub_jobs.0.iter().enumerate() {
            let sub = sub_job_view(sub, position, status_of);
            note_ids(&mut view, sub.server_id.as_deref(), sub.nic_id.as_deref());
            view.sub_jobs.push(sub);
        }
    }
    Some(view)
}

fn note_ids(view: &mut JobView, server_id: Option<&str>, nic_id: Option<&str>) {
    if let Some(id) = server_id {
        push_unique(&mut view.server_ids, id);
        push_unique(&mut view.resource_ids, id);
    }
    if let Some(id) = nic_id {
        push_unique(&mut view.resource_ids, id);
    }
}

fn sub_job_view(
    sub: &SubJobBody<'_>,
    position: usize,
    status_of: fn(&str) -> Status,
) -> SubJobView {
    let entities = sub.entities.get();
    let word = sub.status.get().unwrap_or_default();
    let server_id = entities.and_then(|e| e.server_id.owned());
    let nic_id = entities.and_then(|e| e.nic_id.owned());
    let mut resource_ids = Vec::new();
    for id in [&server_id, &nic_id].into_iter().flatten() {
        push_unique(&mut resource_ids, id);
    }
    SubJobView {
        key: position_key(sub.job_id.get(), &[position]),
        job_id: sub.job_id.owned(),
        status: status_of(word),
        service_status: word.to_string(),
        job_type: sub.job_type.owned(),
        begin_time: sub.begin_time.owned(),
        end_time: sub.end_time.owned(),
        error_code: sub.error_code.owned(),
        fail_reason: sub
            .fail_reason
            .owned()
            .or_else(|| entities.and_then(|e| e.errorcode_message.owned())),
        server_id,
        nic_id,
        resource_ids,
    }
}

impl Adapter for Ecs {
    fn service(&self) -> Service {
        Service::Ecs
    }

    fn query(&self, project_id: &str, job_id: &str) -> JobQuery {
        JobQuery::v1_project_job(project_id, job_id)
    }

    fn parse(&self, bytes: &[u8]) -> Result<JobView, ParseError> {
        let body: Body<'_> = lenient::parse_body(bytes, MAX_BODY_BYTES)?;
        view(&body, status).ok_or_else(|| lenient::no_status(bytes))
    }

    /// 404 or 410, or `Common.0011` "Failed to query system tasks" (HTTP
    /// 400 in the Open Telekom Cloud error table); which one an expired
    /// job gets is unverified.
    fn is_not_found(&self, refusal: &Refusal<'_>) -> bool {
        refusal.is_http_not_found() || refusal.has_code("Common.0011")
    }

    fn status(&self, word: &str) -> Status {
        status(word)
    }
}

impl Client {
    /// `GET /v1/{project_id}/jobs/{job_id}` of the client's default project
    /// (the one of [`crate::huaweicloud::client::ClientConfig`]), read as
    /// the daemon reads it ([`super::fleet::read_job`] with this adapter).
    pub async fn get_job(&self, job_id: &str) -> Result<JobView, ApiError> {
        let Some((endpoint, project_id)) = self.default_target() else {
            return Err(ApiError::transport(
                ErrorKind::Client,
                "this client has no default project; read jobs through a Fleet",
            ));
        };
        let polled = super::fleet::read_job(self, endpoint, project_id, &Ecs, job_id).await?;
        Ok(polled.view)
    }
}

#[cfg(test)]
mod tests;
