//! EIP: `GET /v1/{project_id}/jobs/{job_id}` on `vpc` (the VPC service
//! answers for elastic IP jobs, such as `createBatchPublicip`).
//!
//! The body has ECS's top-level fields (`status`, `job_id`, `job_type`,
//! `begin_time`, `end_time`, `error_code`, `fail_reason`); `entities`
//! holds `sub_jobs[]`, "of the same type as the main job", so sub-jobs may
//! nest and are flattened depth-first (`#1.0` for an unnamed first child of
//! the second sub-job). The status words are presumably ECS's: INIT,
//! RUNNING, SUCCESS, FAIL, and PENDING_PAYMENT for yearly/monthly IPs.
//!
//! Unverified: which ids a job names. `entities.publicip_id` and
//! `entities.bandwidth_id`, of the job and of its sub-jobs, are read as
//! resource ids when present. Not found, unverified as well: as ECS, HTTP
//! 404 or 410, or `Common.0011`.

use super::lenient::{
    self, MAX_BODY_BYTES, Obj, Objects, Text, lenient_object, mapped_status, position_key,
    timestamp_ms,
};
use super::{Adapter, JobQuery, ParseError, Refusal};
use crate::job::view::push_unique;
use crate::job::{JobView, Service, Status, SubJobView};

/// The EIP adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Eip;

/// The deepest nesting of sub-jobs read; deeper ones are skipped.
pub const MAX_SUB_JOB_DEPTH: usize = 8;

lenient_object! {
    /// An EIP job, at the top or as a sub-job.
    pub struct Body<'a> {
        "status" => status: Text<'a>,
        "job_id" => job_id: Text<'a>,
        "job_type" => job_type: Text<'a>,
        "begin_time" => begin_time: Text<'a>,
        "end_time" => end_time: Text<'a>,
        "error_code" => error_code: Text<'a>,
        "fail_reason" => fail_reason: Text<'a>,
        "entities" => entities: Obj<Entities<'a>>,
    }
}

lenient_object! {
    /// `entities`.
    pub struct Entities<'a> {
        "sub_jobs" => sub_jobs: Objects<Body<'a>>,
        "publicip_id" => publicip_id: Text<'a>,
        "bandwidth_id" => bandwidth_id: Text<'a>,
    }
}

/// An EIP status word in the common vocabulary.
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

fn own_ids(body: &Body<'_>) -> Vec<String> {
    let mut ids = Vec::new();
    if let Some(entities) = body.entities.get() {
        for id in [entities.publicip_id.get(), entities.bandwidth_id.get()]
            .into_iter()
            .flatten()
        {
            push_unique(&mut ids, id);
        }
    }
    ids
}

/// Appends the sub-jobs of `body` to `view`, depth-first.
fn flatten(body: &Body<'_>, path: &mut Vec<usize>, view: &mut JobView) {
    let Some(entities) = body.entities.get() else {
        return;
    };
    if path.len() >= MAX_SUB_JOB_DEPTH {
        return;
    }
    for (position, sub) in entities.sub_jobs.0.iter().enumerate() {
        path.push(position);
        let word = sub.status.get().unwrap_or_default();
        let resource_ids = own_ids(sub);
        for id in &resource_ids {
            push_unique(&mut view.resource_ids, id);
        }
        view.sub_jobs.push(SubJobView {
            key: position_key(sub.job_id.get(), path),
            job_id: sub.job_id.owned(),
            status: status(word),
            service_status: word.to_string(),
            job_type: sub.job_type.owned(),
            begin_time: sub.begin_time.owned(),
            end_time: sub.end_time.owned(),
            error_code: sub.error_code.owned(),
            fail_reason: sub.fail_reason.owned(),
            resource_ids,
            ..SubJobView::default()
        });
        flatten(sub, path, view);
        path.pop();
    }
}

fn view(body: &Body<'_>) -> Option<JobView> {
    let word = body.status.get()?;
    let mut view = JobView {
        status: status(word),
        service_status: word.to_string(),
        job_id: body.job_id.owned(),
        job_type: body.job_type.owned(),
        begin_time: body.begin_time.owned(),
        end_time: body.end_time.owned(),
        begin_ms: body.begin_time.get().and_then(timestamp_ms),
        end_ms: body.end_time.get().and_then(timestamp_ms),
        error_code: body.error_code.owned(),
        fail_reason: body.fail_reason.owned(),
        resource_ids: own_ids(body),
        ..JobView::default()
    };
    flatten(body, &mut Vec::new(), &mut view);
    Some(view)
}

impl Adapter for Eip {
    fn service(&self) -> Service {
        Service::Eip
    }

    fn query(&self, project_id: &str, job_id: &str) -> JobQuery {
        JobQuery::v1_project_job(project_id, job_id)
    }

    fn parse(&self, bytes: &[u8]) -> Result<JobView, ParseError> {
        let body: Body<'_> = lenient::parse_body(bytes, MAX_BODY_BYTES)?;
        view(&body).ok_or_else(|| lenient::no_status(bytes))
    }

    /// Unverified: as ECS, 404 or 410, or `Common.0011`.
    fn is_not_found(&self, refusal: &Refusal<'_>) -> bool {
        refusal.is_http_not_found() || refusal.has_code("Common.0011")
    }

    fn status(&self, word: &str) -> Status {
        status(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::tests::refusal;

    const SUCCESS: &str = r#"{"job_id":"ff808082843684110184e155fdb36461","job_type":"createBatchPublicip","begin_time":"2022-12-05T08:10:19.951Z","end_time":"2022-12-05T08:10:21.864Z","status":"SUCCESS","error_code":null,"fail_reason":null,"entities":{"sub_jobs":[]}}"#;

    #[test]
    fn reference_body() {
        let view = Eip.parse(SUCCESS.as_bytes()).unwrap();
        assert_eq!(view.status, Status::Success);
        assert_eq!(view.job_type.as_deref(), Some("createBatchPublicip"));
        assert_eq!(
            view.end_ms.zip(view.begin_ms).map(|(e, b)| e - b),
            Some(1_913)
        );
        assert!(view.sub_jobs.is_empty() && view.resource_ids.is_empty());
    }

    #[test]
    fn sub_jobs_of_the_same_shape_nest() {
        let body = br#"{"status":"RUNNING","entities":{"sub_jobs":[
            {"status":"SUCCESS","job_id":"s0","entities":{"publicip_id":"ip-0","sub_jobs":[
                {"status":"FAIL","fail_reason":"quota","entities":{"bandwidth_id":"bw-1"}}]}},
            {"status":"PENDING_PAYMENT"}]}}"#;
        let view = Eip.parse(body).unwrap();
        let keys: Vec<&str> = view.sub_jobs.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["s0", "#0.0", "#1"]);
        assert_eq!(view.resource_ids, ["ip-0", "bw-1"]);
        assert_eq!(view.sub_jobs[2].status, Status::PendingPayment);
        assert_eq!(view.sub_jobs_failed(), 1);
        assert!(Eip.is_not_found(&refusal(404, None)));
        assert_eq!(Eip.query("p", "j").path, "/v1/p/jobs/j");
    }
}
