//! CCE: `GET /api/v3/projects/{project_id}/jobs/{job_id}` on `cce`; job
//! ids are UUIDs.
//!
//! A CCE job is a Kubernetes-style object: `metadata` (`uid`,
//! `creationTimestamp`, `updateTimestamp`), `spec` (`type`, `clusterUID`,
//! `resourceID`, `extendParam.serverID`, and `subJobs[]`, which are jobs
//! again and may nest), and `status` (`phase`: Initializing, Running,
//! Success, Failed; `reason`). Sub-jobs are flattened depth-first; one
//! without a `uid` is keyed by its position (`#1.0` is the first child of
//! the second sub-job). Resource ids are the `resourceID`, `clusterUID` and
//! `extendParam.serverID` of the job and then of its sub-jobs; CCE jobs
//! name no servers in `server_ids`.
//!
//! Times are written `2018-08-02 08:12:40.672772389 +0000 UTC`. A job's
//! begin is its `creationTimestamp`; its end is its `updateTimestamp` once
//! the phase is final (that the last update of a finished job is its end is
//! an assumption). The `reason` of a failed job is its fail reason.
//!
//! Not found, unverified: `CCE.01404001` "Resource not found." (in CCE's
//! error shape `{"errorCode","errorMessage"}`) with any status, or HTTP 404
//! or 410.

use super::lenient::{
    self, MAX_BODY_BYTES, Obj, Objects, Text, lenient_object, mapped_status, position_key,
    timestamp_ms,
};
use super::{Adapter, JobQuery, ParseError, Refusal};
use crate::huaweicloud::sign::percent_encode;
use crate::job::view::push_unique;
use crate::job::{JobView, Service, Status, SubJobView};

/// The CCE adapter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cce;

/// The deepest nesting of sub-jobs read; deeper ones are skipped.
pub const MAX_SUB_JOB_DEPTH: usize = 8;

lenient_object! {
    /// A CCE job, at the top or as a sub-job.
    pub struct Body<'a> {
        "metadata" => metadata: Obj<Metadata<'a>>,
        "spec" => spec: Obj<Spec<'a>>,
        "status" => status: Obj<JobState<'a>>,
    }
}

lenient_object! {
    /// `metadata`.
    pub struct Metadata<'a> {
        "uid" => uid: Text<'a>,
        "creationTimestamp" => creation_timestamp: Text<'a>,
        "updateTimestamp" => update_timestamp: Text<'a>,
    }
}

lenient_object! {
    /// `spec`.
    pub struct Spec<'a> {
        "type" => job_type: Text<'a>,
        "clusterUID" => cluster_uid: Text<'a>,
        "resourceID" => resource_id: Text<'a>,
        "extendParam" => extend_param: Obj<ExtendParam<'a>>,
        "subJobs" => sub_jobs: Objects<Body<'a>>,
    }
}

lenient_object! {
    /// `spec.extendParam`.
    pub struct ExtendParam<'a> {
        "serverID" => server_id: Text<'a>,
    }
}

lenient_object! {
    /// `status`.
    pub struct JobState<'a> {
        "phase" => phase: Text<'a>,
        "reason" => reason: Text<'a>,
    }
}

/// A CCE phase in the common vocabulary.
pub fn status(word: &str) -> Status {
    const WORDS: [(&str, Status); 4] = [
        ("Initializing", Status::Init),
        ("Running", Status::Running),
        ("Success", Status::Success),
        ("Failed", Status::Fail),
    ];
    mapped_status(word, &WORDS)
}

/// What one job (top or sub) says, in the common terms.
struct Read {
    word: String,
    status: Status,
    job_id: Option<String>,
    job_type: Option<String>,
    begin_time: Option<String>,
    end_time: Option<String>,
    fail_reason: Option<String>,
    resource_ids: Vec<String>,
}

fn read(body: &Body<'_>) -> Read {
    let metadata = body.metadata.get();
    let spec = body.spec.get();
    let state = body.status.get();
    let word = state.and_then(|s| s.phase.get()).unwrap_or_default();
    let status = status(word);
    let end_time = if status.is_final() {
        metadata.and_then(|m| m.update_timestamp.owned())
    } else {
        None
    };
    let fail_reason = if status == Status::Fail {
        state.and_then(|s| s.reason.owned())
    } else {
        None
    };
    let mut resource_ids = Vec::new();
    if let Some(spec) = spec {
        let server = spec.extend_param.get().and_then(|e| e.server_id.get());
        for id in [spec.resource_id.get(), spec.cluster_uid.get(), server]
            .into_iter()
            .flatten()
        {
            push_unique(&mut resource_ids, id);
        }
    }
    Read {
        word: word.to_string(),
        status,
        job_id: metadata.and_then(|m| m.uid.owned()),
        job_type: spec.and_then(|s| s.job_type.owned()),
        begin_time: metadata.and_then(|m| m.creation_timestamp.owned()),
        end_time,
        fail_reason,
        resource_ids,
    }
}

/// Appends the sub-jobs of `body` to `view`, depth-first; `path` is the
/// position of `body` in the tree (empty for the top job).
fn flatten(body: &Body<'_>, path: &mut Vec<usize>, view: &mut JobView) {
    let Some(spec) = body.spec.get() else {
        return;
    };
    if path.len() >= MAX_SUB_JOB_DEPTH {
        return;
    }
    for (position, sub) in spec.sub_jobs.0.iter().enumerate() {
        path.push(position);
        let read = read(sub);
        for id in &read.resource_ids {
            push_unique(&mut view.resource_ids, id);
        }
        view.sub_jobs.push(SubJobView {
            key: position_key(read.job_id.as_deref(), path),
            job_id: read.job_id,
            status: read.status,
            service_status: read.word,
            job_type: read.job_type,
            begin_time: read.begin_time,
            end_time: read.end_time,
            fail_reason: read.fail_reason,
            resource_ids: read.resource_ids,
            ..SubJobView::default()
        });
        flatten(sub, path, view);
        path.pop();
    }
}

fn view(body: &Body<'_>) -> Option<JobView> {
    body.status.get()?.phase.get()?;
    let read = read(body);
    let mut view = JobView {
        status: read.status,
        service_status: read.word,
        job_id: read.job_id,
        job_type: read.job_type,
        begin_ms: read.begin_time.as_deref().and_then(timestamp_ms),
        end_ms: read.end_time.as_deref().and_then(timestamp_ms),
        begin_time: read.begin_time,
        end_time: read.end_time,
        fail_reason: read.fail_reason,
        resource_ids: read.resource_ids,
        ..JobView::default()
    };
    flatten(body, &mut Vec::new(), &mut view);
    Some(view)
}

impl Adapter for Cce {
    fn service(&self) -> Service {
        Service::Cce
    }

    fn query(&self, project_id: &str, job_id: &str) -> JobQuery {
        JobQuery {
            path: format!(
                "/api/v3/projects/{}/jobs/{}",
                percent_encode(project_id),
                percent_encode(job_id)
            ),
            query: Vec::new(),
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<JobView, ParseError> {
        let body: Body<'_> = lenient::parse_body(bytes, MAX_BODY_BYTES)?;
        view(&body).ok_or_else(|| lenient::no_status(bytes))
    }

    /// Unverified: `CCE.01404001`, or HTTP 404 or 410.
    fn is_not_found(&self, refusal: &Refusal<'_>) -> bool {
        refusal.has_code("CCE.01404001") || refusal.is_http_not_found()
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

    const RUNNING: &str = r#"{"kind":"Job","apiVersion":"v3","metadata":{"uid":"354331b2c-229a-11e8-9c75-0255ac100ceb","creationTimestamp":"2018-08-02 08:12:40.672772389 +0000 UTC","updateTimestamp":"2018-08-02 08:21:50.478108569 +0000 UTC"},"spec":{"type":"CreateCluster","clusterUID":"4d1ecb2c-229a-11e8-9c75-0255ac100ceb","resourceID":"6f4dcb2c-229a-11e8-9c75-0255ac100ceb","resourceName":"cluster-name","extendParam":{"serverID":"bc467e3a-2338-11e8-825b-0255ac100c13"},"subJobs":[{"kind":"Job","apiVersion":"v3","metadata":{"uid":"fd474fab-9606-11e8-baa9-0255ac10215d"},"spec":{"type":"InstallMaster","resourceID":"fd3b4ac0-0000-0000-0000-000000000000"},"status":{"phase":"Success"}}]},"status":{"phase":"Running","reason":""}}"#;

    #[test]
    fn reference_body() {
        let view = Cce.parse(RUNNING.as_bytes()).unwrap();
        assert_eq!(view.status, Status::Running);
        assert_eq!(view.service_status, "Running");
        assert_eq!(
            view.job_id.as_deref(),
            Some("354331b2c-229a-11e8-9c75-0255ac100ceb")
        );
        assert_eq!(view.job_type.as_deref(), Some("CreateCluster"));
        assert_eq!(view.begin_ms, Some(1_533_197_560_672));
        assert_eq!(view.end_time, None);
        assert_eq!(view.end_ms, None);
        assert_eq!(view.fail_reason, None);
        assert_eq!(
            view.resource_ids,
            [
                "6f4dcb2c-229a-11e8-9c75-0255ac100ceb",
                "4d1ecb2c-229a-11e8-9c75-0255ac100ceb",
                "bc467e3a-2338-11e8-825b-0255ac100c13",
                "fd3b4ac0-0000-0000-0000-000000000000",
            ]
        );
        assert!(view.server_ids.is_empty());
        assert_eq!(view.sub_jobs.len(), 1);
        let sub = &view.sub_jobs[0];
        assert_eq!(sub.key, "fd474fab-9606-11e8-baa9-0255ac10215d");
        assert_eq!(sub.status, Status::Success);
        assert_eq!(sub.job_type.as_deref(), Some("InstallMaster"));
    }

    #[test]
    fn failed_job_ends_at_its_last_update() {
        let body = br#"{"metadata":{"creationTimestamp":"2018-08-02 08:12:40.672772389 +0000 UTC",
            "updateTimestamp":"2018-08-02 08:21:50.478108569 +0000 UTC"},
            "status":{"phase":"Failed","reason":"quota exceeded"}}"#;
        let view = Cce.parse(body).unwrap();
        assert_eq!(view.status, Status::Fail);
        assert_eq!(view.service_status, "Failed");
        assert_eq!(view.fail_reason.as_deref(), Some("quota exceeded"));
        assert_eq!(
            view.end_ms.zip(view.begin_ms).map(|(e, b)| e - b),
            Some(549_806)
        );
    }

    #[test]
    fn nested_sub_jobs_flatten_depth_first() {
        let body = br#"{"status":{"phase":"Running"},"spec":{"subJobs":[
            {"status":{"phase":"Success"},"spec":{"resourceID":"a","subJobs":[
                {"status":{"phase":"Failed","reason":"disk"},"spec":{"resourceID":"a0"}},
                {"metadata":{"uid":"u-a1"},"status":{"phase":"Initializing"}}]}},
            {"status":{"phase":"Running"},"spec":{"subJobs":[
                {"status":{"phase":"Pending"},"spec":{"subJobs":[{"status":{"phase":"Running"}}]}}]}},
            "not a job"]}}"#;
        let view = Cce.parse(body).unwrap();
        let keys: Vec<(&str, &str)> = view
            .sub_jobs
            .iter()
            .map(|s| (s.key.as_str(), s.status.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("#0", "SUCCESS"),
                ("#0.0", "FAIL"),
                ("u-a1", "INIT"),
                ("#1", "RUNNING"),
                ("#1.0", "PENDING"),
                ("#1.0.0", "RUNNING"),
            ]
        );
        assert_eq!(view.sub_jobs[1].fail_reason.as_deref(), Some("disk"));
        assert_eq!(view.resource_ids, ["a", "a0"]);
        assert_eq!(view.sub_jobs_failed(), 1);
    }

    #[test]
    fn deep_nesting_is_cut() {
        let mut body = String::from(r#"{"status":{"phase":"Running"}}"#);
        for _ in 0..20 {
            body = format!(r#"{{"status":{{"phase":"Running"}},"spec":{{"subJobs":[{body}]}}}}"#);
        }
        let view = Cce.parse(body.as_bytes()).unwrap();
        assert_eq!(view.sub_jobs.len(), MAX_SUB_JOB_DEPTH);
        let hostile = format!(
            "{}{}",
            r#"{"spec":{"subJobs":["#.repeat(200),
            "]}}".repeat(200)
        );
        assert!(Cce.parse(hostile.as_bytes()).is_err());
    }

    #[test]
    fn no_phase_is_no_status() {
        let body = r#"{"errorCode":"CCE.01404001","errorMessage":"Resource not found."}"#;
        assert_eq!(
            Cce.parse(body.as_bytes()),
            Err(ParseError::NoStatus {
                code: Some("CCE.01404001".into()),
                message: Some("Resource not found.".into())
            })
        );
        assert_eq!(classify_as(&Cce, 404, body), Err(ErrorKind::NotFound));
        assert_eq!(classify_as(&Cce, 200, body), Err(ErrorKind::NotFound));
        assert!(Cce.is_not_found(&refusal(410, None)));
        assert!(!Cce.is_not_found(&refusal(400, Some("CCE.01400001"))));
        assert_eq!(
            classify_as(&Cce, 200, r#"{"status":"Running"}"#),
            Err(ErrorKind::Decode)
        );
        assert_eq!(Cce.query("p", "u-1").path, "/api/v3/projects/p/jobs/u-1");
    }
}
