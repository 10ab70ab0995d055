//! The ECS adapter on the reference's bodies and hostile ones.

use super::*;
use crate::huaweicloud::error::ErrorKind;
use crate::services::tests::{classify_as, refusal};

const RUNNING: &str = r#"{"begin_time":"2022-02-17T05:41:55.441Z","end_time":"",
 "entities":{"sub_jobs":[{"begin_time":"2022-02-17T05:41:55.554Z","end_time":"",
   "entities":{"server_id":"1c74e090-c569-4b52-9eaa-fd34776cec28"},
   "job_id":"ff8080827e7810fb017f06338ae3132c","job_type":"createSingleServer","status":"RUNNING"}],
   "sub_jobs_total":1},
 "job_id":"ff8080827e7810fb017f06338a731328","job_type":"createServer","status":"RUNNING"}"#;

const SUCCESS: &str = r#"{"status":"SUCCESS",
 "entities":{"sub_jobs_total":1,"sub_jobs":[{"status":"SUCCESS",
   "entities":{"server_id":"bae51750-0089-41a1-9b18-5c777978ff6d"},
   "job_id":"2c9eb2c5544cbf6101544f0635672b60","job_type":"createSingleServer",
   "begin_time":"2016-04-25T20:04:47.591Z","end_time":"2016-04-25T20:08:21.328Z",
   "error_code":null,"fail_reason":null}]},
 "job_id":"2c9eb2c5544cbf6101544f0602af2b4f","job_type":"createServer",
 "begin_time":"2016-04-25T20:04:34.604Z","end_time":"2016-04-25T20:08:41.593Z",
 "error_code":null,"fail_reason":null}"#;

#[test]
fn real_running_body() {
    let view = Ecs.parse(RUNNING.as_bytes()).unwrap();
    assert_eq!(view.status, Status::Running);
    assert_eq!(view.service_status, "RUNNING");
    assert_eq!(view.job_type.as_deref(), Some("createServer"));
    assert_eq!(view.end_time, None);
    assert_eq!(view.begin_ms, Some(1_645_076_515_441));
    assert_eq!(view.end_ms, None);
    assert_eq!(view.sub_jobs_total, Some(1));
    assert_eq!(view.sub_jobs.len(), 1);
    assert_eq!(view.sub_jobs[0].status, Status::Running);
    assert_eq!(view.sub_jobs[0].key, "ff8080827e7810fb017f06338ae3132c");
    assert_eq!(view.server_ids, ["1c74e090-c569-4b52-9eaa-fd34776cec28"]);
    assert_eq!(view.resource_ids, view.server_ids);
    assert_eq!(view.progress, None);
}

#[test]
fn documented_success_body() {
    let view = Ecs.parse(SUCCESS.as_bytes()).unwrap();
    assert_eq!(view.status, Status::Success);
    assert!(view.status.is_final());
    assert_eq!(view.end_time.as_deref(), Some("2016-04-25T20:08:41.593Z"));
    assert_eq!(view.begin_ms, Some(1_461_614_674_604));
    assert_eq!(view.end_ms, Some(1_461_614_921_593));
    assert_eq!(view.error_code, None);
    assert_eq!(view.sub_jobs_failed(), 0);
    assert_eq!(view.sub_jobs_finished(), 1);
}

#[test]
fn failed_sub_job_reason_falls_back_to_errorcode_message() {
    let body = r#"{"status":"FAIL","error_code":"Ecs.0013","fail_reason":"quota",
      "entities":{"server_id":"s0","nic_id":"n0","sub_jobs":[
        {"status":"FAIL","job_id":"a","entities":{"server_id":"s1","errorcode_message":"no EIP"}},
        {"status":"FAIL","job_id":"b","fail_reason":"disk","entities":{"server_id":"s1"}},
        {"status":"SUCCESS","entities":{"nic_id":"n2"}}]}}"#;
    let view = Ecs.parse(body.as_bytes()).unwrap();
    assert_eq!(view.status, Status::Fail);
    assert_eq!(view.error_code.as_deref(), Some("Ecs.0013"));
    assert_eq!(view.sub_jobs_failed(), 2);
    assert_eq!(view.sub_jobs[0].fail_reason.as_deref(), Some("no EIP"));
    assert_eq!(view.sub_jobs[1].fail_reason.as_deref(), Some("disk"));
    assert_eq!(view.sub_jobs[2].key, "#2");
    assert_eq!(view.sub_jobs[2].nic_id.as_deref(), Some("n2"));
    assert_eq!(view.server_ids, ["s0", "s1"]);
    assert_eq!(view.resource_ids, ["s0", "n0", "s1", "n2"]);
}

#[test]
fn statuses_are_an_open_set() {
    for (word, common, is_final) in [
        ("INIT", "INIT", false),
        ("RUNNING", "RUNNING", false),
        ("SUCCESS", "SUCCESS", true),
        ("FAIL", "FAIL", true),
        ("PENDING_PAYMENT", "PENDING_PAYMENT", false),
        ("ROLLING_BACK", "ROLLING_BACK", false),
        ("success", "SUCCESS", true),
        ("Rolling_back", "ROLLING_BACK", false),
    ] {
        let status = status(word);
        assert_eq!(status.as_str(), common, "{word}");
        assert_eq!(status.is_final(), is_final, "{word}");
    }
    let view = Ecs.parse(br#"{"status":"ROLLING_BACK"}"#).unwrap();
    assert_eq!(view.status, Status::other("ROLLING_BACK"));
    assert_eq!(view.service_status, "ROLLING_BACK");
}

#[test]
fn lenient_fields() {
    let view = Ecs
        .parse(br#"{"status":"INIT","entities":null,"job_id":7,"end_time":"","begin_time":"yesterday","sub_jobs_total":"x"}"#)
        .unwrap();
    assert_eq!(view.job_id.as_deref(), Some("7"));
    assert_eq!(view.end_time, None);
    assert_eq!(view.begin_time.as_deref(), Some("yesterday"));
    assert_eq!(view.begin_ms, None);
    let view = Ecs
        .parse(br#"{"status":"RUNNING","entities":{"sub_jobs_total":"3","sub_jobs":[1,null,{"status":"FAIL"}]}}"#)
        .unwrap();
    assert_eq!(view.sub_jobs_total, Some(3));
    assert_eq!(view.sub_jobs.len(), 1);
    assert_eq!(view.sub_jobs[0].key, "#0");
    assert_eq!(view.sub_jobs[0].status, Status::Fail);
    assert_eq!(
        Ecs.parse(br#"{"status":["RUNNING"],"entities":[]}"#),
        Err(ParseError::NoStatus {
            code: None,
            message: None
        })
    );
    // The last of repeated keys wins, as in a map; unknown keys are skipped.
    let view = Ecs
        .parse(br#"{"status":"INIT","x":{"y":[1,2,{"z":null}]},"status":"RUNNING"}"#)
        .unwrap();
    assert_eq!(view.status, Status::Running);
    // Escaped strings are read like plain ones.
    let view = Ecs
        .parse(br#"{"status":"RUNN\u0049NG","job_id":"a\/b"}"#)
        .unwrap();
    assert_eq!(view.status, Status::Running);
    assert_eq!(view.job_id.as_deref(), Some("a/b"));
}

#[test]
fn refusals() {
    assert!(matches!(Ecs.parse(b""), Err(ParseError::Json(_))));
    assert!(matches!(
        Ecs.parse(b"{\"status\":\"RUN"),
        Err(ParseError::Json(_))
    ));
    assert!(matches!(Ecs.parse(b"\xff\xfe"), Err(ParseError::Json(_))));
    assert_eq!(Ecs.parse(b"[]"), Err(ParseError::NotAnObject));
    assert_eq!(Ecs.parse(b"\"x\""), Err(ParseError::NotAnObject));
    let deep = "[".repeat(100_000);
    assert!(matches!(
        Ecs.parse(deep.as_bytes()),
        Err(ParseError::Json(_))
    ));
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    assert_eq!(Ecs.parse(&big), Err(ParseError::TooLarge(MAX_BODY_BYTES)));
    assert_eq!(
        Ecs.parse(br#"{"code":"Ecs.9999","message":"query failed"}"#),
        Err(ParseError::NoStatus {
            code: Some("Ecs.9999".into()),
            message: Some("query failed".into())
        })
    );
}

#[test]
fn not_found_rule() {
    assert!(Ecs.is_not_found(&refusal(404, Some("Ecs.0103"))));
    assert!(Ecs.is_not_found(&refusal(410, None)));
    assert!(Ecs.is_not_found(&refusal(400, Some("Common.0011"))));
    assert!(!Ecs.is_not_found(&refusal(400, Some("Ecs.0005"))));
    assert_eq!(
        classify_as(&Ecs, 400, r#"{"error":{"code":"Common.0011"}}"#),
        Err(ErrorKind::NotFound)
    );
    assert_eq!(Ecs.query("p/q", "j").path, "/v1/p%2Fq/jobs/j");
}
