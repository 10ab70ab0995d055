//! The scenario format: parsing, defaults, and every validation error
//! naming its key.

use super::*;

const MINIMAL: &str = r#"
[[credential]]
access_key = "AK"
secret_key = "SK"
"#;

#[test]
fn example_scenario_parses() {
    let scenario = Scenario::from_toml_str(include_str!("../../../config/sim-scenario.toml"))
        .expect("config/sim-scenario.toml must parse");
    assert!(!scenario.credentials.is_empty());
    assert!(!scenario.jobs.is_empty());
    assert!(!scenario.faults.is_empty());
}

#[test]
fn documentation_shows_the_example_scenario() {
    let documentation = include_str!("../../../docs/simulator.md");
    let example = include_str!("../../../config/sim-scenario.toml");
    assert!(
        documentation.contains(&format!("```toml\n{example}```")),
        "docs/simulator.md must show config/sim-scenario.toml verbatim"
    );
}

#[test]
fn minimal_scenario_parses_with_defaults() {
    let scenario = Scenario::from_toml_str(MINIMAL).unwrap();
    assert_eq!(scenario.project_id, None);
    assert_eq!(scenario.limits.requests_per_second, 0);
    assert!(scenario.jobs.is_empty());
    assert!(scenario.faults.is_empty());
    assert!(!scenario.credentials[0].forbidden);
}

#[test]
fn full_job_and_fault_parse() {
    let text = format!(
        "{MINIMAL}{}",
        r#"
[[job]]
id = "j1"
job_type = "createServer"
visible_after = "1s"
vanish_after = "10m"
not_found = "Common.0011"
timeline = [
  { at = "0s", status = "INIT" },
  { at = "20s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "quota" },
]
[[job.sub_job]]
id = "s1"
job_type = "createSingleServer"
server_id = "srv"
errorcode_message = "boom"
timeline = [ { at = "0s", status = "RUNNING" } ]

[[fault]]
kind = "latency"
latency = ["0ms", "800ms"]
[[fault]]
kind = "throttle"
probability = 0.5
from = "1s"
until = "2s"
jobs = ["j1"]
retry_after = "2s"
retry_after_http_date = true
"#
    );
    let scenario = Scenario::from_toml_str(&text).unwrap();
    let job = &scenario.jobs[0];
    assert_eq!(job.visible_after, Duration::from_secs(1));
    assert_eq!(job.vanish_after, Some(Duration::from_secs(600)));
    assert_eq!(job.not_found, Some(NotFoundStyle::Http400));
    assert_eq!(job.timeline[1].error_code.as_deref(), Some("Ecs.0013"));
    assert_eq!(job.sub_jobs[0].server_id.as_deref(), Some("srv"));
    assert_eq!(
        scenario.faults[0].latency,
        Some((Duration::ZERO, Duration::from_millis(800)))
    );
    assert_eq!(scenario.faults[1].kind, FaultKind::Throttle);
    assert!(scenario.faults[1].retry_after_http_date);
}

/// Each bad scenario must fail with a message that contains the key.
#[test]
fn bad_scenarios_name_the_key() {
    let check = |extra: &str, expected: &str| {
        let text = format!("{MINIMAL}{extra}");
        let error = Scenario::from_toml_str(&text).expect_err(extra).to_string();
        assert!(
            error.contains(expected),
            "{extra:?}: {error:?} should contain {expected:?}"
        );
    };
    check("colour = 1\n", "colour");
    check("[limits]\nburst = 3\n", "burst");
    check(
        "[limits]\nrequests_per_second = -1\n",
        "requests_per_second",
    );
    check(
        "[[job]]\nid = \"\"\njob_type = \"t\"\ntimeline = [{ at = \"0s\", status = \"INIT\" }]\n",
        "job[0].id",
    );
    check(
        "[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = [{ at = \"2s\", status = \"INIT\" }, { at = \"1s\", status = \"RUNNING\" }]\n",
        "job[0].timeline[1].at",
    );
    check(
        "[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = []\n",
        "job[0].timeline",
    );
    check(
        "[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = [{ at = \"soon\", status = \"INIT\" }]\n",
        "at",
    );
    check(
        "[[job]]\nid = \"a\"\njob_type = \"t\"\nnot_found = \"410\"\ntimeline = [{ at = \"0s\", status = \"INIT\" }]\n",
        "not_found",
    );
    check(
        "[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = [{ at = \"0s\", status = \"INIT\" }]\n[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = [{ at = \"0s\", status = \"INIT\" }]\n",
        "job[1].id",
    );
    check(
        "[[job]]\nid = \"a\"\njob_type = \"t\"\ntimeline = [{ at = \"0s\", status = \"INIT\" }]\n[[job.sub_job]]\nid = \"s\"\njob_type = \"t\"\ntimeline = [{ at = \"0s\", status = \"\" }]\n",
        "job[0].sub_job[0].timeline[0].status",
    );
    check(
        "[[fault]]\nkind = \"drop\"\nprobability = 1.5\n",
        "fault[0].probability",
    );
    check("[[fault]]\nkind = \"explode\"\n", "kind");
    check("[[fault]]\nkind = \"latency\"\n", "fault[0].latency");
    check(
        "[[fault]]\nkind = \"drop\"\nstatus = 503\n",
        "fault[0].status",
    );
    check(
        "[[fault]]\nkind = \"server_error\"\nstatus = 404\n",
        "fault[0].status",
    );
    check(
        "[[fault]]\nkind = \"throttle\"\nretry_after_http_date = true\n",
        "fault[0].retry_after_http_date",
    );
    check(
        "[[fault]]\nkind = \"drop\"\nfrom = \"5s\"\nuntil = \"1s\"\n",
        "fault[0].until",
    );
    check(
        "[[credential]]\naccess_key = \"AK\"\nsecret_key = \"x\"\n",
        "credential[1].access_key",
    );
    let error = Scenario::from_toml_str("project_id = \"p\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("credential"), "{error}");
}

#[test]
fn load_names_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("broken.toml");
    std::fs::write(&path, "[[fault]]\nkind = \"drop\"\n").unwrap();
    let error = Scenario::load(&path).unwrap_err().to_string();
    assert!(error.contains("broken.toml"), "{error}");
    assert!(error.contains("credential"), "{error}");
    let missing = directory.path().join("missing.toml");
    let error = Scenario::load(&missing).unwrap_err().to_string();
    assert!(error.contains("missing.toml"), "{error}");
}

#[test]
fn job_spec_round_trips_through_json() {
    let text = r#"[{"id":"j","job_type":"deleteVMs","visible_after":"1s",
        "timeline":[{"at":"0s","status":"RUNNING"},{"at":"1m 30s","status":"SUCCESS"}],
        "sub_job":[{"id":"s","job_type":"x","timeline":[{"at":"0s","status":"INIT"}]}]}]"#;
    let jobs: Vec<JobSpec> = serde_json::from_str(text).unwrap();
    assert_eq!(jobs[0].timeline[1].at, Duration::from_secs(90));
    let again: Vec<JobSpec> = serde_json::from_str(&serde_json::to_string(&jobs).unwrap()).unwrap();
    assert_eq!(again, jobs);
    let faults = vec![FaultRule {
        latency: Some((Duration::from_millis(1), Duration::from_millis(2))),
        ..FaultRule::always(FaultKind::Latency)
    }];
    let again: Vec<FaultRule> =
        serde_json::from_str(&serde_json::to_string(&faults).unwrap()).unwrap();
    assert_eq!(again, faults);
}

#[test]
fn fault_windows_and_job_filters() {
    let rule = FaultRule {
        from: Some(Duration::from_secs(1)),
        until: Some(Duration::from_secs(2)),
        jobs: vec!["a".into()],
        ..FaultRule::always(FaultKind::Drop)
    };
    let check = |secs: f64, job: Option<&str>, expected: bool| {
        let names: Vec<&str> = job.into_iter().collect();
        assert_eq!(
            rule.is_active(Duration::from_secs_f64(secs), &names),
            expected,
            "{secs} {job:?}"
        );
    };
    check(0.5, Some("a"), false);
    check(1.0, Some("a"), true);
    check(1.5, Some("b"), false);
    check(1.5, None, false);
    check(2.0, Some("a"), false);
    assert!(FaultRule::always(FaultKind::Drop).is_active(Duration::ZERO, &[]));
    let keyed = FaultRule {
        jobs: vec!["cce:a".into()],
        ..FaultRule::always(FaultKind::Drop)
    };
    assert!(keyed.is_active(Duration::ZERO, &["a", "cce:a"]));
    assert!(!keyed.is_active(Duration::ZERO, &["a", "evs:a"]));
}
