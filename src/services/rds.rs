//! RDS: `GET /v3/{project_id}/jobs?id={job_id}` on `rds`.
//!
//! The job is under `job`: `status` (Running, Completed, Failed), `name`
//! (the operation, e.g. `CreateMysqlSingleHAInstance`), `created` and
//! `ended` (`2018-08-06T10:41:14+0000`), `process` (`"60%"` while running,
//! read as progress), `instance.id`, `entities.resource_ids[]` and
//! `fail_reason`. The instance and the resource ids are the resource ids;
//! RDS jobs have no sub-jobs.
//!
//! Not found: `DBS.200543` (HTTP 400) or `RDS.5041` (HTTP 404), "The job
//! does not exist."; which one RDS sends is unverified, so both count, as
//! does any HTTP 404 or 410. A new RDS job may be unknown for a few
//! seconds after creation, and jobs are kept for a month.

use super::lenient::{
    self, MAX_BODY_BYTES, Number, Obj, Text, Texts, fraction, lenient_object, mapped_status,
    timestamp_ms,
};
use super::{Adapter, JobQuery, ParseError, Refusal};
use crate::huaweicloud::sign::percent_encode;
use crate::job::view::push_unique;
use crate::job::{JobView, Service, Status};

/// The RDS adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rds;

lenient_object! {
    /// A job body of RDS.
    pub struct Body<'a> {
        "job" => job: Obj<Job<'a>>,
    }
}

lenient_object! {
    /// `job`.
    pub struct Job<'a> {
        "id" => id: Text<'a>,
        "name" => name: Text<'a>,
        "status" => status: Text<'a>,
        "created" => created: Text<'a>,
        "ended" => ended: Text<'a>,
        "process" => process: Number,
        "instance" => instance: Obj<Instance<'a>>,
        "entities" => entities: Obj<Entities<'a>>,
        "fail_reason" => fail_reason: Text<'a>,
    }
}

lenient_object! {
    /// `job.instance`.
    pub struct Instance<'a> {
        "id" => id: Text<'a>,
    }
}

lenient_object! {
    /// `job.entities`.
    pub struct Entities<'a> {
        "resource_ids" => resource_ids: Texts<'a>,
    }
}

/// An RDS status word in the common vocabulary.
pub fn status(word: &str) -> Status {
    const WORDS: [(&str, Status); 3] = [
        ("Running", Status::Running),
        ("Completed", Status::Success),
        ("Failed", Status::Fail),
    ];
    mapped_status(word, &WORDS)
}

fn view(body: &Body<'_>) -> Option<JobView> {
    let job = body.job.get()?;
    let word = job.status.get()?;
    let mut view = JobView {
        status: status(word),
        service_status: word.to_string(),
        job_id: job.id.owned(),
        job_type: job.name.owned(),
        begin_time: job.created.owned(),
        end_time: job.ended.owned(),
        begin_ms: job.created.get().and_then(timestamp_ms),
        end_ms: job.ended.get().and_then(timestamp_ms),
        fail_reason: job.fail_reason.owned(),
        progress: fraction(job.process.0),
        ..JobView::default()
    };
    if let Some(id) = job.instance.get().and_then(|i| i.id.get()) {
        push_unique(&mut view.resource_ids, id);
    }
    if let Some(entities) = job.entities.get() {
        for id in &entities.resource_ids.0 {
            push_unique(&mut view.resource_ids, id);
        }
    }
    Some(view)
}

impl Adapter for Rds {
    fn service(&self) -> Service {
        Service::Rds
    }

    fn query(&self, project_id: &str, job_id: &str) -> JobQuery {
        JobQuery {
            path: format!("/v3/{}/jobs", percent_encode(project_id)),
            query: vec![("id", job_id.to_string())],
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<JobView, ParseError> {
        let body: Body<'_> = lenient::parse_body(bytes, MAX_BODY_BYTES)?;
        view(&body).ok_or_else(|| lenient::no_status(bytes))
    }

    /// `DBS.200543` or `RDS.5041` (which one is unverified), or HTTP 404
    /// or 410.
    fn is_not_found(&self, refusal: &Refusal<'_>) -> bool {
        refusal.has_code("DBS.200543")
            || refusal.has_code("RDS.5041")
            || refusal.is_http_not_found()
    }

    fn status(&self, word: &str) -> Status {
        status(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::huaweicloud::error::ErrorKind;
    use crate::services::tests::{classify_as, refusal};

    const COMPLETED: &str = r#"{"job":{"id":"31b8ae23-c687-4d80-b7b4-42a66c9bb886","name":"CreateMysqlSingleHAInstance","status":"Completed","created":"2018-08-06T10:41:14+0000","ended":"2018-08-06T16:41:14+0000","process":"","instance":{"id":"a48e43ff268f4c0e879652d65e63d0fbin01","name":"mysql-single"},"entities":{"resource_ids":["a48e43ff268f4c0e879652d65e63d0fbin01.vm","a48e43ff268f4c0e879652d65e63d0fbin01.volume"]},"fail_reason":null}}"#;

    #[test]
    fn reference_body() {
        let view = Rds.parse(COMPLETED.as_bytes()).unwrap();
        assert_eq!(view.status, Status::Success);
        assert_eq!(view.service_status, "Completed");
        assert_eq!(
            view.job_type.as_deref(),
            Some("CreateMysqlSingleHAInstance")
        );
        assert_eq!(view.begin_ms, Some(1_533_552_074_000));
        assert_eq!(
            view.end_ms.zip(view.begin_ms).map(|(e, b)| e - b),
            Some(21_600_000)
        );
        assert_eq!(view.progress, None);
        assert_eq!(
            view.resource_ids,
            [
                "a48e43ff268f4c0e879652d65e63d0fbin01",
                "a48e43ff268f4c0e879652d65e63d0fbin01.vm",
                "a48e43ff268f4c0e879652d65e63d0fbin01.volume",
            ]
        );
        assert!(view.sub_jobs.is_empty());
    }

    #[test]
    fn running_with_progress_and_failure() {
        let view = Rds
            .parse(br#"{"job":{"status":"Running","process":"60%","ended":""}}"#)
            .unwrap();
        assert_eq!((view.status, view.progress), (Status::Running, Some(0.6)));
        assert_eq!(view.end_time, None);
        let view = Rds
            .parse(br#"{"job":{"status":"Failed","fail_reason":"disk full","entities":{"resource_ids":"x"}}}"#)
            .unwrap();
        assert_eq!(view.status, Status::Fail);
        assert_eq!(view.fail_reason.as_deref(), Some("disk full"));
        assert!(view.resource_ids.is_empty());
        assert_eq!(status("Pending").as_str(), "PENDING");
    }

    #[test]
    fn query_carries_the_id() {
        let query = Rds.query("p/1", "j k");
        assert_eq!(query.path, "/v3/p%2F1/jobs");
        assert_eq!(query.query, vec![("id", "j k".to_string())]);
    }

    #[test]
    fn not_found_answers() {
        let dbs = r#"{"error_code":"DBS.200543","error_msg":"The job does not exist."}"#;
        let rds = r#"{"error_code":"RDS.5041","error_msg":"The job does not exist."}"#;
        assert_eq!(classify_as(&Rds, 400, dbs), Err(ErrorKind::NotFound));
        assert_eq!(classify_as(&Rds, 404, rds), Err(ErrorKind::NotFound));
        assert_eq!(classify_as(&Rds, 200, dbs), Err(ErrorKind::NotFound));
        assert_eq!(
            classify_as(&Rds, 200, r#"{"job":{}}"#),
            Err(ErrorKind::Decode)
        );
        assert!(!Rds.is_not_found(&refusal(400, Some("Common.0011"))));
    }
}
