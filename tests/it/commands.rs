//! The commands besides `run` as scripts use them: `status --json` agrees
//! with what the daemon announced, and `check-config` and `run` judge a
//! configuration with the exit codes and messages of the contract.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::daemon::check_common_fields;
use crate::harness::{AK, Match, SK, Setup, dump, jobs, sim};

const STATUS_JOBS: &str = r#"
[[job]]
id = "job-ok"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "2s", status = "SUCCESS" } ]

[[job]]
id = "job-failed"
job_type = "createServer"
timeline = [ { at = "0s", status = "INIT" }, { at = "3s", status = "FAIL" } ]

[[job]]
id = "job-running"
job_type = "resizeServer"
timeline = [ { at = "0s", status = "RUNNING" } ]

[[job]]
id = "job-unpaid"
job_type = "createServer"
timeline = [ { at = "0s", status = "PENDING_PAYMENT" } ]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn status_json_lists_every_job_with_its_last_announced_status() {
    // (job, the status to await)
    let plan = [
        ("job-ok", "SUCCESS"),
        ("job-failed", "FAIL"),
        ("job-running", "RUNNING"),
        ("job-unpaid", "PENDING_PAYMENT"),
    ];
    let sim = sim("").await;
    let setup = Setup::new(&sim).watch_file(
        "all.jobs",
        "job-ok\njob-failed\njob-running team=a\njob-unpaid\n",
    );
    let mut daemon = setup.start().await;
    daemon.await_event(&Match::event("daemon.started")).await;
    sim.add_jobs(jobs(STATUS_JOBS));
    for (id, status) in plan {
        daemon.await_event(&Match::transition(id, status)).await;
    }
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);

    let mut announced: BTreeMap<String, Value> = BTreeMap::new();
    for event in Match::event("job.transition").all(&run.events) {
        announced.insert(
            event["job_id"].as_str().unwrap().to_string(),
            event["status"].clone(),
        );
    }
    let output = setup.cli(&["status", "--json"]).await;
    assert_eq!(output.code, Some(0), "{output:?}");
    let rows: Value = serde_json::from_str(&output.stdout).expect("status --json prints JSON");
    let listed: BTreeMap<String, Value> = rows
        .as_array()
        .expect("an array of jobs")
        .iter()
        .map(|row| {
            (
                row["job_id"].as_str().unwrap().to_string(),
                row["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        announced,
        "{}\n{}",
        output.stdout,
        dump(&run.events)
    );
    assert_eq!(listed.len(), plan.len());
    let running = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["job_id"] == "job-running")
        .unwrap();
    assert_eq!(running["labels"], serde_json::json!({"team": "a"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_accepts_a_good_configuration_and_prints_no_secret() {
    let sim = sim("").await;
    let setup = Setup::new(&sim).watch(&["job-a"]);
    let output = setup.cli(&["check-config"]).await;
    assert_eq!(output.code, Some(0), "{output:?}");
    assert!(output.stdout.contains("[cloud]"), "{}", output.stdout);
    assert!(output.stdout.contains(&sim.base_url()), "{}", output.stdout);
    assert!(output.stdout.contains("[poll]"), "{}", output.stdout);
    for secret in [AK, SK] {
        assert!(
            !output.stdout.contains(secret) && !output.stderr.contains(secret),
            "{secret} printed: {output:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configurations_exit_78_naming_the_key() {
    // (key, bad value, what the one stderr line must contain). An unknown
    // key and a bad value are named by file:line and the dotted key.
    let cases: [(&str, toml::Value, &[&str]); 6] = [
        (
            "poll.initial_intervall",
            "1s".into(),
            &[
                "ecs-jobwatch.toml:",
                "poll.initial_intervall: unknown field",
            ],
        ),
        (
            "poll.initial_interval",
            "0s".into(),
            &["poll.initial_interval"],
        ),
        ("poll.max_interval", "500ms".into(), &["poll.max_interval"]),
        ("limits.max_in_flight", 0.into(), &["limits.max_in_flight"]),
        (
            "cloud.endpoint",
            "http://example.com".into(),
            &["cloud.endpoint"],
        ),
        (
            "watch.jobs",
            vec![toml::Value::from("bad/id")].into(),
            &["watch.jobs"],
        ),
    ];
    let sim = sim("").await;
    let mut wrong = Vec::new();
    for (key, value, named) in cases {
        let setup = Setup::new(&sim).watch(&["job-a"]).set(key, value.clone());
        let check = setup.cli(&["check-config"]).await;
        if check.code != Some(78) || !named.iter().all(|part| check.stderr.contains(part)) {
            wrong.push(format!("check-config with {key} = {value}: {check:?}"));
        }
        let run = setup.cli(&["run"]).await;
        let lines: Vec<&str> = run.stderr.lines().collect();
        if run.code != Some(78)
            || lines.len() != 1
            || !named.iter().all(|part| lines[0].contains(part))
        {
            wrong.push(format!("run with {key} = {value}: {run:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "not exit 78 with one line naming the key:\n{}",
        wrong.join("\n")
    );
}
