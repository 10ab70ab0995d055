//! BMS: `GET /v1/{project_id}/jobs/{job_id}` on `bms`.
//!
//! Bare Metal Server jobs have the shape of ECS jobs (the BMS API
//! reference documents the same fields: `entities.server_id`,
//! `entities.nic_id`, `entities.sub_jobs[]`), so the body is read with
//! ECS's structs and [`super::ecs::view`]; the status words are BMS's own:
//! INIT, RUNNING, SUCCESS, FAIL, and PENDING_PAYMENT (which the docs list
//! for yearly/monthly servers). Job types are `baremetalBatchCreate`,
//! `baremetalBatchOperate`, ... with sub-jobs `baremetalSingleCreate`, ...
//!
//! Not found: unverified (no source shows BMS's answer for an unknown
//! job); the rule is ECS's, HTTP 404 or 410, or `Common.0011` (the code of
//! the job service BMS shares with ECS).

use super::ecs::{self, Body};
use super::lenient::{self, MAX_BODY_BYTES, mapped_status};
use super::{Adapter, JobQuery, ParseError, Refusal};
use crate::job::{JobView, Service, Status};

/// The BMS adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bms;

/// A BMS status word in the common vocabulary.
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

impl Adapter for Bms {
    fn service(&self) -> Service {
        Service::Bms
    }

    fn query(&self, project_id: &str, job_id: &str) -> JobQuery {
        JobQuery::v1_project_job(project_id, job_id)
    }

    fn parse(&self, bytes: &[u8]) -> Result<JobView, ParseError> {
        let body: Body<'_> = lenient::parse_body(bytes, MAX_BODY_BYTES)?;
        ecs::view(&body, status).ok_or_else(|| lenient::no_status(bytes))
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
    use crate::huaweicloud::error::ErrorKind;
    use crate::services::tests::{classify_as, refusal};

    #[test]
    fn batch_creation_with_servers() {
        let body = br#"{"status":"RUNNING","job_id":"j","job_type":"baremetalBatchCreate",
          "begin_time":"2019-03-01T08:00:00.000Z","end_time":"",
          "entities":{"sub_jobs_total":2,"sub_jobs":[
            {"status":"SUCCESS","job_id":"s1","job_type":"baremetalSingleCreate","entities":{"server_id":"bms-1"}},
            {"status":"FAIL","job_id":"s2","job_type":"baremetalSingleCreate","fail_reason":"no capacity","entities":{"server_id":"bms-2"}}]}}"#;
        let view = Bms.parse(body).unwrap();
        assert_eq!(view.status, Status::Running);
        assert_eq!(view.job_type.as_deref(), Some("baremetalBatchCreate"));
        assert_eq!(view.server_ids, ["bms-1", "bms-2"]);
        assert_eq!(view.resource_ids, ["bms-1", "bms-2"]);
        assert_eq!(view.sub_jobs_total, Some(2));
        assert_eq!(view.sub_jobs_failed(), 1);
        assert_eq!(view.sub_jobs[1].fail_reason.as_deref(), Some("no capacity"));
        assert_eq!(view.begin_ms, Some(1_551_427_200_000));
        assert_eq!(view.end_ms, None);
    }

    #[test]
    fn words_and_refusals() {
        assert_eq!(status("PENDING_PAYMENT"), Status::PendingPayment);
        assert_eq!(status("Rolling_Back").as_str(), "ROLLING_BACK");
        assert!(Bms.is_not_found(&refusal(404, None)));
        assert!(Bms.is_not_found(&refusal(400, Some("Common.0011"))));
        assert!(!Bms.is_not_found(&refusal(400, Some("BMS.0001"))));
        assert_eq!(classify_as(&Bms, 200, "{}"), Err(ErrorKind::Decode));
        assert_eq!(Bms.query("p", "j").path, "/v1/p/jobs/j");
    }
}
