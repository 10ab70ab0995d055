use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::*;
use crate::job::{JobKey, JobView, Status, SubJobView};
use crate::output::event::{TransitionContext, job_subjob_failed, job_transition};

fn job(key: &str) -> JobRef {
    JobRef {
        key: JobKey::parse(key).unwrap(),
        project_id: Arc::from("0123"),
        region: Some(Arc::from("cn-north-4")),
        labels: Arc::new(Labels::from([
            ("team".to_string(), "db \"core\"".to_string()),
            ("app.tier".to_string(), "web".to_string()),
        ])),
    }
}

fn failure() -> Event {
    let view = JobView {
        status: Status::Fail,
        service_status: "Failed".into(),
        job_type: Some("CreateCluster".into()),
        fail_reason: Some("line\nbreak".into()),
        resource_ids: vec!["c1".into()],
        ..JobView::default()
    };
    job_transition(
        job("sh/cce:abc"),
        TransitionContext {
            previous: Some(&Status::Running),
            sequence: 1,
        },
        &view,
    )
}

#[test]
fn json_has_every_field_at_the_top_level_in_order() {
    let event = failure();
    let line = json(&event, "2026-12-01T00:00:00.000Z");
    let parsed: Json = serde_json::from_str(&line).expect("valid JSON");
    let object = parsed.as_object().unwrap();
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "timestamp",
            "level",
            "event",
            "message",
            "job_id",
            "service",
            "project",
            "project_id",
            "region",
            "status",
            "service_status",
            "previous_status",
            "job_type",
            "begin_time",
            "end_time",
            "error_code",
            "fail_reason",
            "resource_ids",
            "server_ids",
            "sub_jobs_total",
            "sub_jobs_failed",
            "labels",
            "event_id"
        ]
    );
    assert_eq!(object["level"], "ERROR");
    assert_eq!(object["status"], "FAIL");
    assert_eq!(object["service_status"], "Failed");
    assert_eq!(object["service"], "cce");
    assert_eq!(object["project"], "sh");
    assert_eq!(object["job_id"], "abc");
    assert_eq!(object["fail_reason"], "line\nbreak");
    assert_eq!(object["begin_time"], Json::Null);
    assert_eq!(object["resource_ids"], json!(["c1"]));
    assert_eq!(object["server_ids"], json!([]));
    assert_eq!(
        object["labels"],
        json!({"app.tier": "web", "team": "db \"core\""})
    );
    assert!(!line.contains('\n'));
}

#[test]
fn text_leaves_out_nulls() {
    let line = text(&failure(), "T");
    assert!(line.starts_with("T ERROR job.transition: job sh/cce:abc is now FAIL (was RUNNING)"));
    assert!(line.contains(" status=\"FAIL\""));
    assert!(line.contains(" resource_ids=[\"c1\"]"));
    assert!(!line.contains("begin_time"));
}

#[test]
fn journal_fields_are_upper_case_with_labels_apart() {
    let sub = SubJobView {
        key: "s1".into(),
        status: Status::Fail,
        server_id: Some("srv".into()),
        ..SubJobView::default()
    };
    for event in [failure(), job_subjob_failed(job("j1"), &sub)] {
        let fields = journal_fields(&event, "T");
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PRIORITY"), Some("3"));
        assert_eq!(get("SYSLOG_IDENTIFIER"), Some("ecs-jobwatch"));
        assert_eq!(get("MESSAGE_ID").map(str::len), Some(32));
        assert_eq!(get("EVENT"), Some(event.name()));
        assert_eq!(get("EVENT_ID"), event.event_id());
        assert_eq!(get("LABEL_TEAM"), Some("db \"core\""));
        assert_eq!(get("LABEL_APP_TIER"), Some("web"));
        assert!(get("BEGIN_TIME").is_none());
        for (name, _) in &fields {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
        }
    }
    let fields = journal_fields(&failure(), "T");
    assert!(fields.contains(&("STATUS".into(), "FAIL".into())));
    assert!(fields.contains(&("RESOURCE_IDS".into(), "[\"c1\"]".into())));
}

#[test]
fn every_event_name_has_its_own_message_id() {
    let mut ids: Vec<&str> = crate::output::event::NAMES
        .iter()
        .map(|name| message_id(name))
        .collect();
    ids.push(message_id(crate::output::event::LOG));
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count);
    assert!(ids.iter().all(|id| id.len() == 32));
}
