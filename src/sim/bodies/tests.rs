//! Each service's body and "no such job" answer, checked against the
//! reference's shapes and read back through the service's own adapter, so
//! the simulator and the adapters cannot drift apart.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::huaweicloud::error::{AnswerHeaders, ErrorKind};
use crate::job::{JobView, Status};
use crate::services::{adapter, read_answer};
use crate::sim::scenario::Scenario;

fn jobs(tables: &str) -> Vec<JobSpec> {
    let text = format!("[[credential]]\naccess_key = \"AK\"\nsecret_key = \"SK\"\n{tables}");
    match Scenario::from_toml_str(&text) {
        Ok(scenario) => scenario.jobs,
        Err(error) => panic!("{error}\n{text}"),
    }
}

fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2016-04-25T20:04:34.604Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn body_at(job: &JobSpec, seconds: u64) -> Value {
    let served = render(job, Duration::from_secs(seconds), base());
    serde_json::from_slice(&served.body).unwrap()
}

/// The body at `seconds`, read by the job's service's adapter.
fn view_at(job: &JobSpec, seconds: u64) -> JobView {
    let served = render(job, Duration::from_secs(seconds), base());
    match adapter(job.service).parse(&served.body) {
        Ok(view) => view,
        Err(error) => panic!("{error}: {}", String::from_utf8_lossy(&served.body)),
    }
}

const ECS_JOB: &str = r#"
[[job]]
id = "ff80808288d41e1b018990260955686a"
job_type = "createServer"
timeline = [
  { at = "0s",  status = "INIT" },
  { at = "2s",  status = "RUNNING" },
  { at = "20s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "insufficient EIP quota" },
]
[[job.sub_job]]
id = "ff80808288d41e1b018990260955686b"
job_type = "createSingleServer"
server_id = "1c74e090-c569-4b52-9eaa-fd34776cec28"
errorcode_message = "no EIP"
timeline = [ { at = "1s", status = "RUNNING" }, { at = "18s", status = "FAIL", fail_reason = "quota" } ]
"#;

#[test]
fn ecs_wire_shape_matches_the_reference() {
    let job = &jobs(ECS_JOB)[0];
    let expected = json!({
        "status": "FAIL",
        "entities": {
            "sub_jobs_total": 1,
            "sub_jobs": [{
                "status": "FAIL",
                "entities": {
                    "server_id": "1c74e090-c569-4b52-9eaa-fd34776cec28",
                    "errorcode_message": "no EIP"
                },
                "job_id": "ff80808288d41e1b018990260955686b",
                "job_type": "createSingleServer",
                "begin_time": "2016-04-25T20:04:35.604Z",
                "end_time": "2016-04-25T20:04:52.604Z",
                "error_code": null,
                "fail_reason": "quota"
            }]
        },
        "job_id": "ff80808288d41e1b018990260955686a",
        "job_type": "createServer",
        "begin_time": "2016-04-25T20:04:34.604Z",
        "end_time": "2016-04-25T20:04:54.604Z",
        "error_code": "Ecs.0013",
        "fail_reason": "insufficient EIP quota"
    });
    assert_eq!(body_at(job, 30), expected);
    let running = body_at(job, 5);
    assert_eq!(running["status"], "RUNNING");
    assert_eq!(running["end_time"], "");
    assert_eq!(running["error_code"], Value::Null);
    let mut plain = job.clone();
    plain.sub_jobs.clear();
    let body = body_at(&plain, 0);
    assert_eq!(body["entities"], json!({}));
    let view = view_at(job, 30);
    assert_eq!(view.status, Status::Fail);
    assert_eq!(view.server_ids, ["1c74e090-c569-4b52-9eaa-fd34776cec28"]);
    assert_eq!(
        view.end_ms.zip(view.begin_ms).map(|(e, b)| e - b),
        Some(20_000)
    );
    assert_eq!(view.sub_jobs[0].fail_reason.as_deref(), Some("quota"));
}

#[test]
fn evs_volumes_and_words_of_its_own() {
    let jobs = jobs(
        r#"
[[job]]
id = "evs-1"
service = "evs"
job_type = "createVolume"
resource_id = "vol-1"
timeline = [ { at = "0s", status = "WAITING_EXECUTE" }, { at = "5s", status = "SUCCESS" } ]
[[job]]
id = "evs-2"
service = "evs"
job_type = "batchCreateVolume"
resource_id = "not-served-beside-sub-jobs"
timeline = [ { at = "0s", status = "RUNNING" } ]
[[job.sub_job]]
id = "evs-2a"
job_type = "createVolume"
resource_id = "vol-2a"
timeline = [ { at = "0s", status = "LISTENING" } ]
"#,
    );
    let body = body_at(&jobs[0], 0);
    assert_eq!(body["entities"], json!({"volume_id": "vol-1"}));
    let view = view_at(&jobs[0], 0);
    assert_eq!(view.status.as_str(), "WAITING_EXECUTE");
    assert!(!view.status.is_final());
    assert_eq!(view_at(&jobs[0], 9).status, Status::Success);
    let body = body_at(&jobs[1], 0);
    assert!(body["entities"].get("volume_id").is_none(), "{body}");
    let view = view_at(&jobs[1], 0);
    assert_eq!(view.resource_ids, ["vol-2a"]);
    assert_eq!(view.sub_jobs[0].service_status, "LISTENING");
}

#[test]
fn ims_images_and_progress() {
    let job = &jobs(
        r#"
[[job]]
id = "ims-1"
service = "ims"
job_type = "imsCreateImageByInstance"
resource_id = "img-1"
timeline = [ { at = "0s", status = "RUNNING", progress = 45.0 }, { at = "9s", status = "SUCCESS", progress = 100.0 } ]
[[job.sub_job]]
id = "ims-1a"
job_type = "imsImportImageJob"
resource_id = "img-1a"
timeline = [ { at = "0s", status = "RUNNING" } ]
"#,
    )[0];
    let body = body_at(job, 0);
    assert_eq!(body["entities"]["process_percent"], 45.0);
    assert_eq!(
        body["entities"]["sub_jobs_result"][0]["entities"]["image_id"],
        "img-1a"
    );
    let view = view_at(job, 0);
    assert_eq!(view.progress, Some(0.45));
    assert_eq!(view.resource_ids, ["img-1", "img-1a"]);
    let view = view_at(job, 10);
    assert_eq!((view.status, view.progress), (Status::Success, Some(1.0)));
    assert_eq!(
        view.end_ms.zip(view.begin_ms).map(|(e, b)| e - b),
        Some(9_000)
    );
}

#[test]
fn cce_nested_sub_jobs_and_its_time_format() {
    let job = &jobs(
        r#"
[[job]]
id = "354331b2-229a-11e8-9c75-0255ac100ceb"
service = "cce"
job_type = "CreateCluster"
resource_id = "cluster-1"
server_id = "server-1"
timeline = [ { at = "0s", status = "Initializing" }, { at = "3s", status = "Running" }, { at = "30s", status = "Failed", fail_reason = "master failed" } ]
[[job.sub_job]]
id = "sub-a"
job_type = "InstallMaster"
resource_id = "master-a"
timeline = [ { at = "0s", status = "Running" }, { at = "20s", status = "Failed", fail_reason = "disk" } ]
[[job.sub_job.sub_job]]
id = ""
job_type = "PrepareNode"
timeline = [ { at = "0s", status = "Success" } ]
[[job.sub_job]]
id = ""
job_type = "InstallAddon"
timeline = [ { at = "0s", status = "Running" } ]
"#,
    )[0];
    let body = body_at(job, 40);
    assert_eq!(body["kind"], "Job");
    assert_eq!(
        body["status"],
        json!({"phase": "Failed", "reason": "master failed"})
    );
    assert_eq!(
        body["metadata"]["creationTimestamp"],
        "2016-04-25 20:04:34.604000000 +0000 UTC"
    );
    assert_eq!(body["spec"]["extendParam"], json!({"serverID": "server-1"}));
    let nested = &body["spec"]["subJobs"][0]["spec"]["subJobs"][0];
    assert_eq!(nested["status"]["phase"], "Success");
    assert!(nested["metadata"].get("uid").is_none());
    let view = view_at(job, 40);
    assert_eq!(view.status, Status::Fail);
    assert_eq!(view.service_status, "Failed");
    assert_eq!(view.fail_reason.as_deref(), Some("master failed"));
    assert_eq!(
        view.end_ms.zip(view.begin_ms).map(|(e, b)| e - b),
        Some(30_000)
    );
    let keys: Vec<&str> = view.sub_jobs.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["sub-a", "#0.0", "#1"]);
    assert_eq!(view.resource_ids, ["cluster-1", "server-1", "master-a"]);
    let view = view_at(job, 0);
    assert_eq!((view.status, view.end_ms), (Status::Init, None));
}

#[test]
fn rds_completed_with_process() {
    let job = &jobs(
        r#"
[[job]]
id = "31b8ae23-c687-4d80-b7b4-42a66c9bb886"
service = "rds"
job_type = "CreateMysqlSingleHAInstance"
resource_id = "a48e43ff268f4c0e879652d65e63d0fbin01"
timeline = [ { at = "0s", status = "Running", progress = 60.0 }, { at = "6h", status = "Completed" } ]
"#,
    )[0];
    let running = body_at(job, 0);
    assert_eq!(running["job"]["process"], "60%");
    assert_eq!(running["job"]["created"], "2016-04-25T20:04:34+0000");
    assert!(running["job"].get("ended").is_none());
    let view = view_at(job, 0);
    assert_eq!((view.status, view.progress), (Status::Running, Some(0.6)));
    let view = view_at(job, 6 * 3600);
    assert_eq!(view.status, Status::Success);
    assert_eq!(view.service_status, "Completed");
    assert_eq!(
        view.end_ms.zip(view.begin_ms).map(|(e, b)| e - b),
        Some(21_600_000)
    );
    assert_eq!(view.resource_ids, ["a48e43ff268f4c0e879652d65e63d0fbin01"]);
}

#[test]
fn eip_and_bms_in_the_v1_shape() {
    let jobs = jobs(
        r#"
[[job]]
id = "eip-1"
service = "eip"
job_type = "createBatchPublicip"
timeline = [ { at = "0s", status = "RUNNING" } ]
[[job.sub_job]]
id = "eip-1a"
job_type = "createPublicip"
resource_id = "ip-1"
timeline = [ { at = "0s", status = "SUCCESS" } ]
[[job.sub_job.sub_job]]
id = ""
job_type = "bindBandwidth"
timeline = [ { at = "0s", status = "FAIL" } ]
[[job]]
id = "bms-1"
service = "bms"
job_type = "baremetalBatchCreate"
timeline = [ { at = "0s", status = "PENDING_PAYMENT" } ]
[[job.sub_job]]
id = "bms-1a"
job_type = "baremetalSingleCreate"
server_id = "bms-server"
timeline = [ { at = "0s", status = "INIT" } ]
"#,
    );
    let body = body_at(&jobs[0], 0);
    assert!(body["entities"].get("sub_jobs_total").is_none());
    let view = view_at(&jobs[0], 0);
    let keys: Vec<&str> = view.sub_jobs.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["eip-1a", "#0.0"]);
    assert_eq!(view.resource_ids, ["ip-1"]);
    assert_eq!(view.sub_jobs_failed(), 1);
    let view = view_at(&jobs[1], 0);
    assert_eq!(view.status, Status::PendingPayment);
    assert_eq!(view.server_ids, ["bms-server"]);
}

#[test]
fn every_not_found_answer_is_not_found_for_its_adapter() {
    let styles = [NotFoundStyle::Http404, NotFoundStyle::Http400];
    for service in Service::ALL {
        for style in styles {
            if service == Service::Cce && style == NotFoundStyle::Http400 {
                continue;
            }
            let (status, body) = not_found(service, style);
            let error = read_answer(
                adapter(service),
                status,
                AnswerHeaders::default(),
                &body,
                SystemTime::UNIX_EPOCH,
            )
            .unwrap_err();
            assert_eq!(
                error.kind,
                ErrorKind::NotFound,
                "{service} {style:?}: {error}"
            );
            assert!(error.error_code.is_some(), "{service} {style:?}");
        }
    }
    assert_eq!(not_found(Service::Rds, NotFoundStyle::Http400).0, 400);
    assert_eq!(not_found(Service::Rds, NotFoundStyle::Http404).0, 404);
    assert_eq!(not_found(Service::Evs, NotFoundStyle::Http400).0, 400);
}

#[test]
fn time_formats() {
    assert_eq!(format_time(base()), "2016-04-25T20:04:34.604Z");
    assert_eq!(
        format_cce_time(base()),
        "2016-04-25 20:04:34.604000000 +0000 UTC"
    );
    assert_eq!(format_rds_time(base()), "2016-04-25T20:04:34+0000");
}
