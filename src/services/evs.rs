//! EVS: `GET /v1/{project_id}/jobs/{job_id}` on `evs` (v1, even though
//! volumes use v2 and v3).
//!
//! Status words: INIT, RUNNING, SUCCESS, FAIL, and WAITING_EXECUTE and
//! LISTENING, which are not final and have no common word (they stay
//! themselves). A job's volume is `entities.volume_id` (with
//! `volume_type`, `size`, `name`); a batch job lists its sub-jobs in
//! `entities.sub_jobs[]`, each with its own `entities.volume_id`, and then
//! the job's own entity fields are absent. Volumes are the resource ids;
//! EVS jobs name no servers.
//!
//! Not found: `Common.0011` with HTTP 400 ("No jobs found." or "query job
//! fail.", the same for a job of another project), or HTTP 404 or 410.

use super::lenient::{
    self, Count, MAX_BODY_BYTES, Obj, Objects, Text, lenient_object, mapped_status, position_key,
    timestamp_ms,
};
use super::{Adapter, JobQuery, ParseError, Refusal};
use crate::job::view::push_unique;
use crate::job::{JobView, Service, Status, SubJobView};

/// The EVS adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Evs;

lenient_object! {
    /// A job body of EVS.
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
    /// `entities` of a job.
    pub struct Entities<'a> {
        "volume_id" => volume_id: Text<'a>,
        "sub_jobs_total" => sub_jobs_total: Count,
        "sub_jobs" => sub_jobs: Objects<SubJobBody<'a>>,
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
        "volume_id" => volume_id: Text<'a>,
    }
}

/// An EVS status word in the common vocabulary.
pub fn status(word: &str) -> Status {
    const WORDS: [(&str, Status); 4] = [
        ("INIT", Status::Init),
        ("RUNNING", Status::Running),
        ("SUCCESS", Status::Success),
        ("FAIL", Status::Fail),
    ];
    // WAITING_EXECUTE and LISTENING have no common word: they are kept,
    // upper-cased, and are not final.
    mapped_status(word, &WORDS)
}

fn view(body: &Body<'_>) -> Option<JobView> {
    let word = body.status.get()?;
    let entities = body.entities.get();
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
        sub_jobs_total: entities.and_then(|e| e.sub_jobs_total.0),
        ..JobView::default()
    };
    let Some(entities) = entities else {
        return Some(view);
    };
    if let Some(id) = entities.volume_id.get() {
        push_unique(&mut view.resource_ids, id);
    }
    for (position, sub) in entities.sub_jobs.0.iter().enumerate() {
        let word = sub.status.get().unwrap_or_default();
        let volume_id = sub.entities.get().and_then(|e| e.volume_id.owned());
        let mut resource_ids = Vec::new();
        if let Some(id) = &volume_id {
            push_unique(&mut resource_ids, id);
            push_unique(&mut view.resource_ids, id);
        }
        view.sub_jobs.push(SubJobView {
            key: position_key(sub.job_id.get(), &[position]),
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
    }
    Some(view)
}

impl Adapter for Evs {
    fn service(&self) -> Service {
        Service::Evs
    }

    fn query(&self, project_id: &str, job_id: &str) -> JobQuery {
        JobQuery::v1_project_job(project_id, job_id)
    }

    fn parse(&self, bytes: &[u8]) -> Result<JobView, ParseError> {
        let body: Body<'_> = lenient::parse_body(bytes, MAX_BODY_BYTES)?;
        view(&body).ok_or_else(|| lenient::no_status(bytes))
    }

    /// `Common.0011` (HTTP 400, documented), or HTTP 404 or 410.
    fn is_not_found(&self, refusal: &Refusal<'_>) -> bool {
        refusal.has_code("Common.0011") || refusal.is_http_not_found()
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

    const RUNNING: &str = r#"{"status":"RUNNING","entities":{"volume_id":"bdf1bb37-f20f-4266-9a04-f43e0a127376"},"job_id":"4010a32d535527910153552b492c0002","job_type":"createVolume","begin_time":"2016-03-08T07:40:13.219Z","end_time":"","error_code":null,"fail_reason":null}"#;

    const BATCH: &str = r#"{"status":"SUCCESS","entities":{"sub_jobs":[{"status":"SUCCESS","entities":{"volume_id":"0b549095-4937-4849-8e4c-52aa027d64f7"},"job_id":"21917a8d52a19b040152a9f2f2e50041","job_type":"createVolume","begin_time":"2016-02-04T01:43:37.445Z","end_time":"2016-02-04T01:44:02.239Z","error_code":null,"fail_reason":null}]},"job_id":"21917a8d52a19b040152a9f2f1eb003e","job_type":"batchCreateVolume","begin_time":"2016-02-04T01:43:37.193Z","end_time":"2016-02-04T01:44:08.283Z","error_code":null,"fail_reason":null}"#;

    #[test]
    fn reference_running_body() {
        let view = Evs.parse(RUNNING.as_bytes()).unwrap();
        assert_eq!(view.status, Status::Running);
        assert_eq!(view.service_status, "RUNNING");
        assert_eq!(view.job_type.as_deref(), Some("createVolume"));
        assert_eq!(view.resource_ids, ["bdf1bb37-f20f-4266-9a04-f43e0a127376"]);
        assert!(view.server_ids.is_empty());
        assert_eq!(view.end_time, None);
        assert_eq!(view.begin_ms, Some(1_457_422_813_219));
        assert_eq!(view.end_ms, None);
        assert_eq!(view.error_code, None);
    }

    #[test]
    fn reference_batch_body() {
        let view = Evs.parse(BATCH.as_bytes()).unwrap();
        assert_eq!(view.status, Status::Success);
        assert_eq!(view.sub_jobs.len(), 1);
        let sub = &view.sub_jobs[0];
        assert_eq!(sub.key, "21917a8d52a19b040152a9f2f2e50041");
        assert_eq!(sub.status, Status::Success);
        assert_eq!(sub.resource_ids, ["0b549095-4937-4849-8e4c-52aa027d64f7"]);
        assert_eq!(view.resource_ids, sub.resource_ids);
        assert_eq!(
            view.end_ms.zip(view.begin_ms).map(|(e, b)| e - b),
            Some(31_090)
        );
    }

    #[test]
    fn words_of_its_own_are_kept() {
        for (word, common, is_final) in [
            ("WAITING_EXECUTE", "WAITING_EXECUTE", false),
            ("LISTENING", "LISTENING", false),
            ("Listening", "LISTENING", false),
            ("FAIL", "FAIL", true),
            ("success", "SUCCESS", true),
        ] {
            let status = status(word);
            assert_eq!(status.as_str(), common, "{word}");
            assert_eq!(status.is_final(), is_final, "{word}");
        }
        let body = br#"{"status":"WAITING_EXECUTE","entities":{"volume_id":7}}"#;
        let view = Evs.parse(body).unwrap();
        assert_eq!(view.service_status, "WAITING_EXECUTE");
        assert_eq!(view.resource_ids, ["7"]);
    }

    #[test]
    fn not_found_answers() {
        assert!(Evs.is_not_found(&refusal(400, Some("Common.0011"))));
        assert!(Evs.is_not_found(&refusal(404, None)));
        assert!(!Evs.is_not_found(&refusal(400, Some("EVS.2024"))));
        let body = r#"{"error":{"code":"Common.0011","message":"No jobs found."}}"#;
        assert_eq!(classify_as(&Evs, 400, body), Err(ErrorKind::NotFound));
        assert_eq!(classify_as(&Evs, 200, body), Err(ErrorKind::NotFound));
    }
}
