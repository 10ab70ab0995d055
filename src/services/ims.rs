//! IMS: `GET /v1/cloudimages/job/{job_id}` on `ims`, the new job API
//! (no project id in the path; the deprecated
//! `/v1/{project_id}/jobs/{job_id}` is not used).
//!
//! Status words: INIT, RUNNING, SUCCESS, FAIL; member jobs report each
//! member's result in lower case (`success`), read without regard to case.
//! The image is `entities.image_id` (with `image_name`); a multi-image or
//! OVA job lists `entities.sub_jobs_result[]`, each with its own
//! `entities.image_id`; a member job lists `entities.results[]` (one per
//! member: `image_id`, `project_id`, `status`). Both become sub-jobs, the
//! results after the sub-job results. Images are the resource ids.
//!
//! Progress: `entities.process_percent`, a number whose unit no source
//! states. It is read as a percentage from 0 to 100 (the name says so) and
//! reported as a fraction from 0 to 1; unverified.
//!
//! Not found, unverified: HTTP 404 or 410; `Common.0011` (the code of the
//! job service behind IMS's deprecated path); or an `IMG.` code (IMS
//! refuses with HTTP 400 and `{"error":{"code":"IMG.xxxx",...}}`, code
//! unknown) whose message says the job does not exist or was not found.

use super::lenient::{
    self, MAX_BODY_BYTES, Number, Obj, Objects, Text, fraction, lenient_object, mapped_status,
    position_key, timestamp_ms,
};
use super::{Adapter, JobQuery, ParseError, Refusal};
use crate::huaweicloud::sign::percent_encode;
use crate::job::view::push_unique;
use crate::job::{JobView, Service, Status, SubJobView};

/// The IMS adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ims;

lenient_object! {
    /// A job body of IMS.
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
        "image_id" => image_id: Text<'a>,
        "process_percent" => process_percent: Number,
        "sub_jobs_result" => sub_jobs_result: Objects<SubJobBody<'a>>,
        "results" => results: Objects<MemberResult<'a>>,
    }
}

lenient_object! {
    /// One element of `entities.sub_jobs_result`.
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
    /// `entities` of a sub-job result.
    pub struct SubEntities<'a> {
        "image_id" => image_id: Text<'a>,
    }
}

lenient_object! {
    /// One element of `entities.results` (member jobs).
    pub struct MemberResult<'a> {
        "status" => status: Text<'a>,
        "image_id" => image_id: Text<'a>,
        "project_id" => project_id: Text<'a>,
    }
}

/// An IMS status word in the common vocabulary.
pub fn status(word: &str) -> Status {
    const WORDS: [(&str, Status); 4] = [
        ("INIT", Status::Init),
        ("RUNNING", Status::Running),
        ("SUCCESS", Status::Success),
        ("FAIL", Status::Fail),
    ];
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
        progress: fraction(entities.and_then(|e| e.process_percent.0)),
        ..JobView::default()
    };
    let Some(entities) = entities else {
        return Some(view);
    };
    if let Some(id) = entities.image_id.get() {
        push_unique(&mut view.resource_ids, id);
    }
    for (position, sub) in entities.sub_jobs_result.0.iter().enumerate() {
        let word = sub.status.get().unwrap_or_default();
        let image_id = sub.entities.get().and_then(|e| e.image_id.get());
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
            resource_ids: image_id.map(str::to_string).into_iter().collect(),
            ..SubJobView::default()
        });
        if let Some(id) = image_id {
            push_unique(&mut view.resource_ids, id);
        }
    }
    let offset = view.sub_jobs.len();
    for (position, result) in entities.results.0.iter().enumerate() {
        let word = result.status.get().unwrap_or_default();
        let image_id = result.image_id.get();
        view.sub_jobs.push(SubJobView {
            key: position_key(None, &[offset + position]),
            status: status(word),
            service_status: word.to_string(),
            resource_ids: image_id.map(str::to_string).into_iter().collect(),
            ..SubJobView::default()
        });
        if let Some(id) = image_id {
            push_unique(&mut view.resource_ids, id);
        }
    }
    Some(view)
}

/// Whether an IMS message says that the job does not exist.
fn says_no_such_job(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("job")
        && ["not exist", "not found", "no job", "does not exist"]
            .iter()
            .any(|phrase| message.contains(phrase))
}

impl Adapter for Ims {
    fn service(&self) -> Service {
        Service::Ims
    }

    fn query(&self, _project_id: &str, job_id: &str) -> JobQuery {
        JobQuery {
            path: format!("/v1/cloudimages/job/{}", percent_encode(job_id)),
            query: Vec::new(),
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<JobView, ParseError> {
        let body: Body<'_> = lenient::parse_body(bytes, MAX_BODY_BYTES)?;
        view(&body).ok_or_else(|| lenient::no_status(bytes))
    }

    /// Unverified: 404 or 410; `Common.0011`; or an `IMG.` code whose
    /// message says the job does not exist.
    fn is_not_found(&self, refusal: &Refusal<'_>) -> bool {
        refusal.is_http_not_found()
            || refusal.has_code("Common.0011")
            || (refusal.code.is_some_and(|code| code.starts_with("IMG."))
                && refusal.message.is_some_and(says_no_such_job))
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

    const SUCCESS: &str = r#"{"job_id":"9a175ac792fa12d20193002100dd2762","job_type":"imsCreateImageByInstance","begin_time":"2024-11-06T06:19:43.195Z","end_time":"2024-11-06T06:23:25.158Z","status":"SUCCESS","error_code":null,"fail_reason":null,"entities":{"image_name":"test","image_id":"3f7185de-b59a-4bb8-aa1d-7a513528b0e9"}}"#;

    #[test]
    fn reference_body() {
        let view = Ims.parse(SUCCESS.as_bytes()).unwrap();
        assert_eq!(view.status, Status::Success);
        assert_eq!(
            view.job_id.as_deref(),
            Some("9a175ac792fa12d20193002100dd2762")
        );
        assert_eq!(view.resource_ids, ["3f7185de-b59a-4bb8-aa1d-7a513528b0e9"]);
        assert_eq!(view.begin_ms, Some(1_730_873_983_195));
        assert_eq!(view.end_ms, Some(1_730_874_205_158));
        assert_eq!(view.progress, None);
        assert!(view.server_ids.is_empty());
    }

    #[test]
    fn progress_is_a_percentage() {
        let check = |percent: &str, expected: Option<f64>| {
            let body =
                format!(r#"{{"status":"RUNNING","entities":{{"process_percent":{percent}}}}}"#);
            assert_eq!(
                Ims.parse(body.as_bytes()).unwrap().progress,
                expected,
                "{percent}"
            );
        };
        check("45.5", Some(0.455));
        check("0", Some(0.0));
        check("100", Some(1.0));
        check("250", Some(1.0));
        check("-3", Some(0.0));
        check("\"60%\"", Some(0.6));
        check("\"soon\"", None);
        check("null", None);
        check("[50]", None);
    }

    #[test]
    fn sub_job_results_and_member_results() {
        let body = br#"{"status":"RUNNING","job_type":"imsImportOvaImageJob","entities":{
            "sub_jobs_result":[
              {"status":"SUCCESS","job_id":"s1","entities":{"image_id":"img-1"}},
              {"status":"FAIL","fail_reason":"bad disk","entities":{"image_id":"img-2"}}],
            "results":[{"status":"success","image_id":"img-3","project_id":"p"},
                       {"status":"failed","image_id":"img-4"}]}}"#;
        let view = Ims.parse(body).unwrap();
        let keys: Vec<&str> = view.sub_jobs.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["s1", "#1", "#2", "#3"]);
        assert_eq!(view.resource_ids, ["img-1", "img-2", "img-3", "img-4"]);
        assert_eq!(view.sub_jobs[2].status, Status::Success);
        assert_eq!(view.sub_jobs[2].service_status, "success");
        assert_eq!(view.sub_jobs[3].status.as_str(), "FAILED");
        assert_eq!(view.sub_jobs_failed(), 1);
    }

    #[test]
    fn path_has_no_project() {
        assert_eq!(
            Ims.query("ignored", "ff80/80").path,
            "/v1/cloudimages/job/ff80%2F80"
        );
    }

    #[test]
    fn not_found_answers() {
        assert!(Ims.is_not_found(&refusal(404, None)));
        assert!(Ims.is_not_found(&refusal(400, Some("Common.0011"))));
        let img = Refusal {
            http_status: 400,
            code: Some("IMG.0404"),
            message: Some("The job does not exist."),
        };
        assert!(Ims.is_not_found(&img));
        let other = Refusal {
            message: Some("The image does not exist."),
            ..img
        };
        assert!(!Ims.is_not_found(&other));
        assert!(!Ims.is_not_found(&refusal(400, Some("IMG.0404"))));
        let body = r#"{"error":{"code":"IMG.0404","message":"The job does not exist."}}"#;
        assert_eq!(classify_as(&Ims, 400, body), Err(ErrorKind::NotFound));
    }
}
