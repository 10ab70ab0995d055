use super::*;
use crate::job::{JobView, ProjectName, SubJobView};

fn job(key: &str) -> JobRef {
    JobRef {
        key: JobKey::parse(key).unwrap(),
        project_id: Arc::from("p"),
        region: Some(Arc::from("cn-north-4")),
        labels: Arc::new(Labels::from([("team".to_string(), "x".to_string())])),
    }
}

fn failed_view() -> JobView {
    JobView {
        status: Status::Fail,
        service_status: "FAIL".into(),
        job_type: Some("createServer".into()),
        error_code: Some("Ecs.0013".into()),
        fail_reason: Some("quota".into()),
        sub_jobs_total: Some(2),
        sub_jobs: vec![
            SubJobView {
                key: "s1".into(),
                status: Status::Fail,
                ..SubJobView::default()
            },
            SubJobView {
                key: "s2".into(),
                status: Status::Success,
                ..SubJobView::default()
            },
        ],
        ..JobView::default()
    }
}

#[test]
fn transition_levels_and_ids() {
    let view = failed_view();
    let context = TransitionContext {
        previous: Some(&Status::Running),
        sequence: 2,
    };
    let event = job_transition(job("j1"), context, &view);
    assert_eq!(event.level, Level::Error);
    assert_eq!(event.name(), JOB_TRANSITION);
    assert_eq!(event.status(), Some(&Status::Fail));
    assert_eq!(event.message, "job j1 is now FAIL (was RUNNING)");
    let Kind::Transition(t) = &event.kind else {
        panic!("a transition")
    };
    assert_eq!(t.sub_jobs_failed, 1);

    let first = job_transition(
        job("j1"),
        TransitionContext {
            previous: None,
            sequence: 0,
        },
        &view,
    );
    assert_ne!(first.event_id(), event.event_id());
    assert_eq!(
        job_transition(job("j1"), context, &view).event_id(),
        event.event_id()
    );

    assert_eq!(transition_level(&Status::PendingPayment), Level::Warn);
    assert_eq!(transition_level(&Status::Success), Level::Info);
    assert_eq!(transition_level(&Status::other("x")), Level::Info);
}

#[test]
fn ecs_jobs_of_the_default_project_keep_their_old_event_ids() {
    // The ids the release before projects and services computed, for the
    // same facts (fact_id over the event name, the job id and the parts).
    let view = failed_view();
    let context = TransitionContext {
        previous: Some(&Status::Running),
        sequence: 2,
    };
    let old = fact_id(&[JOB_TRANSITION, "j1", "RUNNING", "FAIL", "2"]);
    assert_eq!(
        job_transition(job("j1"), context, &view).event_id(),
        Some(old.as_str())
    );
    assert_eq!(
        job_not_found(job("j1"), None).event_id(),
        Some(fact_id(&[JOB_NOT_FOUND, "j1", ""]).as_str())
    );
    assert_eq!(
        subjob_failed_id(&JobKey::parse("j1").unwrap(), "s1"),
        fact_id(&[JOB_SUBJOB_FAILED, "j1", "s1"])
    );
    assert_eq!(
        job_timeout(job("j1"), &Status::Running, 5).event_id(),
        Some(fact_id(&[JOB_TIMEOUT, "j1"]).as_str())
    );
}

#[test]
fn equal_job_ids_of_two_services_or_projects_never_collide() {
    let keys = ["j1", "evs:j1", "sh/ecs:j1", "sh/evs:j1", "ims:j1"];
    let mut ids: Vec<String> = keys
        .iter()
        .map(|key| {
            job_not_found(job(key), None)
                .event_id()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), keys.len());
    assert_eq!(
        job("sh/evs:j1").key.project,
        ProjectName::parse("sh").unwrap()
    );
}

#[test]
fn fact_ids_are_stable_and_distinct() {
    assert_eq!(fact_id(&["a", "b"]), fact_id(&["a", "b"]));
    assert_ne!(fact_id(&["a", "b"]), fact_id(&["ab", ""]));
    assert_eq!(fact_id(&["x"]).len(), 32);
    assert_ne!(
        job_not_found(job("j"), None).event_id(),
        job_not_found(job("j"), Some(&Status::Running)).event_id()
    );
    assert_eq!(
        job_timeout(job("j"), &Status::Running, 5).event_id(),
        job_timeout(job("j"), &Status::Running, 9).event_id()
    );
}

#[test]
fn levels_and_plurals() {
    let mut report = ApiErrorReport {
        error_type: "auth",
        http_status: Some(401),
        error_code: Some("APIGW.0301".into()),
        request_id: None,
        count: 1,
        detail: "bad signature".into(),
    };
    assert_eq!(api_error(&report).level, Level::Error);
    report.error_type = "throttled";
    assert_eq!(api_error(&report).level, Level::Warn);
    assert_eq!(
        daemon_started(1).message,
        format!(
            "ecs-jobwatch {} started, tracking 1 job",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(
        daemon_reloaded(2).message,
        "configuration reloaded, tracking 2 jobs"
    );
    assert_eq!(jobs(0), "0 jobs");
    for name in NAMES {
        assert!(name.contains('.'), "{name}");
    }
}
