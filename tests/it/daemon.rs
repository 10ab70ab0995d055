//! The daemon's events as an operator's alert rules see them: the real
//! binary against the simulator, every event of the contract with its
//! fields and level, checked on the JSON lines of stdout.
//!
//! Timing-sensitive jobs are added to the simulator only after
//! `daemon.started`, so their timelines start when the daemon is already
//! polling, however slow the machine is.

use serde_json::{Value, json};

use crate::harness::{Finished, Match, PROJECT, Setup, dump, jobs, sim};

/// The fields of `job.transition` beyond the common ones, in contract order.
const TRANSITION_FIELDS: [&str; 19] = [
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
    "event_id",
];

/// Every stdout line is a JSON object with `timestamp` (RFC 3339, UTC),
/// `level`, `event` and a non-empty `message`.
pub fn check_common_fields(run: &Finished) {
    assert!(
        run.bad_lines.is_empty(),
        "stdout lines that are not JSON objects: {:?}",
        run.bad_lines
    );
    for event in &run.events {
        let timestamp = event["timestamp"].as_str().unwrap_or_default();
        let parsed = chrono::DateTime::parse_from_rfc3339(timestamp);
        assert!(parsed.is_ok(), "timestamp not RFC 3339: {event}");
        assert_eq!(
            parsed.unwrap().offset().local_minus_utc(),
            0,
            "timestamp not UTC: {event}"
        );
        assert!(
            ["INFO", "WARN", "ERROR"].contains(&event["level"].as_str().unwrap_or_default()),
            "level: {event}"
        );
        assert!(event["event"].is_string(), "event: {event}");
        assert!(
            !event["message"].as_str().unwrap_or_default().is_empty(),
            "message: {event}"
        );
    }
}

/// An `event_id` is 32 hexadecimal digits.
fn check_event_id(event: &Value) {
    let id = event["event_id"].as_str().unwrap_or_default();
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "event_id: {event}"
    );
}

fn timestamp_ms(event: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

const LIFECYCLE_JOBS: &str = r#"
[[job]]
id = "job-success"
job_type = "createServer"
server_id = "srv-1"
timeline = [
  { at = "0s", status = "INIT" },
  { at = "4s", status = "RUNNING" },
  { at = "8s", status = "SUCCESS" },
]
[[job.sub_job]]
id = "sub-ok"
job_type = "createSingleServer"
server_id = "srv-2"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "7s", status = "SUCCESS" } ]

[[job]]
id = "job-fail"
job_type = "createServer"
timeline = [
  { at = "0s", status = "RUNNING" },
  { at = "4s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "insufficient EIP quota" },
]
[[job.sub_job]]
id = "sub-reason"
job_type = "createSingleServer"
server_id = "srv-3"
errorcode_message = "not this one"
timeline = [
  { at = "0s", status = "RUNNING" },
  { at = "3s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "EIP quota exceeded" },
]
[[job.sub_job]]
id = "sub-message"
job_type = "createSingleServer"
nic_id = "nic-4"
errorcode_message = "EIP quota exceeded: limit 5, used 5"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "3s", status = "FAIL" } ]
[[job.sub_job]]
id = "sub-fine"
job_type = "createSingleServer"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "2s", status = "SUCCESS" } ]

[[job]]
id = "job-payment"
job_type = "createServer"
timeline = [ { at = "0s", status = "PENDING_PAYMENT" } ]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_transitions_and_failed_sub_jobs_carry_their_fields_and_levels() {
    let sim = sim("").await;
    let setup = Setup::new(&sim).watch_file(
        "team.jobs",
        "job-success team=blue\njob-fail team=red env=prod\njob-payment\n",
    );
    let mut daemon = setup.start().await;
    let started = daemon.await_event(&Match::event("daemon.started")).await;
    sim.add_jobs(jobs(LIFECYCLE_JOBS));

    daemon
        .await_event(&Match::transition("job-success", "SUCCESS"))
        .await;
    daemon
        .await_event(&Match::transition("job-fail", "FAIL"))
        .await;
    daemon
        .await_event(&Match::transition("job-payment", "PENDING_PAYMENT"))
        .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    let events = &run.events;

    assert_eq!(started["level"], "INFO");
    assert_eq!(started["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(started["jobs_tracked"], 3);
    let stopping = Match::event("daemon.stopping").all(events);
    assert_eq!(stopping.len(), 1, "{}", dump(events));
    assert_eq!(stopping[0]["level"], "INFO");
    assert_eq!(stopping[0]["version"], env!("CARGO_PKG_VERSION"));
    assert!(stopping[0]["jobs_tracked"].is_u64(), "{}", stopping[0]);

    for transition in Match::event("job.transition").all(events) {
        let keys: Vec<&str> = transition
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|key| TRANSITION_FIELDS.contains(key))
            .collect();
        assert_eq!(keys, TRANSITION_FIELDS, "{transition}");
        assert_eq!(transition["project_id"], PROJECT, "{transition}");
        assert!(transition["server_ids"].is_array(), "{transition}");
        check_event_id(transition);
    }

    // (job, status, previous status, level, labels)
    let expected = [
        (
            "job-success",
            "INIT",
            Value::Null,
            "INFO",
            json!({"team": "blue"}),
        ),
        (
            "job-success",
            "RUNNING",
            json!("INIT"),
            "INFO",
            json!({"team": "blue"}),
        ),
        (
            "job-success",
            "SUCCESS",
            json!("RUNNING"),
            "INFO",
            json!({"team": "blue"}),
        ),
        (
            "job-fail",
            "RUNNING",
            Value::Null,
            "INFO",
            json!({"team": "red", "env": "prod"}),
        ),
        (
            "job-fail",
            "FAIL",
            json!("RUNNING"),
            "ERROR",
            json!({"team": "red", "env": "prod"}),
        ),
        (
            "job-payment",
            "PENDING_PAYMENT",
            Value::Null,
            "WARN",
            json!({}),
        ),
    ];
    for (job_id, status, previous, level, labels) in expected {
        let found = Match::transition(job_id, status).all(events);
        assert_eq!(found.len(), 1, "{job_id} {status}: {}", dump(events));
        let event = found[0];
        assert_eq!(event["previous_status"], previous, "{event}");
        assert_eq!(event["level"], level, "{event}");
        assert_eq!(event["labels"], labels, "{event}");
        assert_eq!(event["job_type"], "createServer", "{event}");
        assert!(event["begin_time"].is_string(), "{event}");
    }
    for (job_id, count) in [("job-success", 3), ("job-fail", 2), ("job-payment", 1)] {
        let found = Match::event("job.transition")
            .with("job_id", job_id)
            .all(events);
        assert_eq!(
            found.len(),
            count,
            "transitions of {job_id}: {}",
            dump(events)
        );
    }

    let success = Match::transition("job-success", "SUCCESS").all(events)[0];
    assert_eq!(
        success["server_ids"],
        json!(["srv-1", "srv-2"]),
        "{success}"
    );
    assert_eq!(success["sub_jobs_total"], 1, "{success}");
    assert_eq!(success["sub_jobs_failed"], 0, "{success}");
    assert!(
        !success["end_time"].as_str().unwrap_or_default().is_empty(),
        "{success}"
    );
    assert_eq!(success["error_code"], Value::Null, "{success}");

    let fail = Match::transition("job-fail", "FAIL").all(events)[0];
    assert_eq!(fail["error_code"], "Ecs.0013", "{fail}");
    assert_eq!(fail["fail_reason"], "insufficient EIP quota", "{fail}");
    assert_eq!(fail["sub_jobs_total"], 3, "{fail}");
    assert_eq!(fail["sub_jobs_failed"], 2, "{fail}");
    assert_eq!(fail["server_ids"], json!(["srv-3"]), "{fail}");

    // (sub-job, server_id, nic_id, error_code, fail_reason)
    let failed_sub_jobs = [
        (
            "sub-reason",
            json!("srv-3"),
            Value::Null,
            json!("Ecs.0013"),
            "EIP quota exceeded",
        ),
        (
            "sub-message",
            Value::Null,
            json!("nic-4"),
            Value::Null,
            "EIP quota exceeded: limit 5, used 5",
        ),
    ];
    let all_sub = Match::event("job.subjob_failed").all(events);
    assert_eq!(all_sub.len(), failed_sub_jobs.len(), "{}", dump(events));
    for (sub_job_id, server_id, nic_id, error_code, reason) in failed_sub_jobs {
        let found = Match::event("job.subjob_failed")
            .with("sub_job_id", sub_job_id)
            .all(events);
        assert_eq!(found.len(), 1, "{sub_job_id}: {}", dump(events));
        let event = found[0];
        assert_eq!(event["level"], "ERROR", "{event}");
        assert_eq!(event["job_id"], "job-fail", "{event}");
        assert_eq!(event["server_id"], server_id, "{event}");
        assert_eq!(event["nic_id"], nic_id, "{event}");
        assert_eq!(event["error_code"], error_code, "{event}");
        assert_eq!(event["fail_reason"], reason, "{event}");
        assert_eq!(
            event["labels"],
            json!({"team": "red", "env": "prod"}),
            "{event}"
        );
        check_event_id(event);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn not_found_for_a_never_seen_job_after_the_grace_and_for_a_vanished_job() {
    let sim = sim("").await;
    let setup = Setup::new(&sim)
        .watch_file("x.jobs", "job-never kind=ghost\njob-vanish\n")
        .set("poll.not_found_grace", "5s");
    let mut daemon = setup.start().await;
    let started = daemon.await_event(&Match::event("daemon.started")).await;
    sim.add_jobs(jobs(
        r#"
[[job]]
id = "job-vanish"
job_type = "deleteServers"
vanish_after = "4s"
timeline = [ { at = "0s", status = "RUNNING" } ]
"#,
    ));
    let never = daemon
        .await_event(&Match::event("job.not_found").with("job_id", "job-never"))
        .await;
    let vanished = daemon
        .await_event(&Match::event("job.not_found").with("job_id", "job-vanish"))
        .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);

    assert_eq!(never["level"], "ERROR", "{never}");
    assert_eq!(never["last_status"], Value::Null, "{never}");
    assert_eq!(never["labels"], json!({"kind": "ghost"}), "{never}");
    check_event_id(&never);
    // Not before the grace: the daemon's own clock, a lower bound only.
    assert!(
        timestamp_ms(&never) - timestamp_ms(&started) >= 5_000,
        "{started}\n{never}"
    );
    // Unknown ids have no entry of their own in the simulator's stats.
    let stats = sim.stats();
    assert!(
        stats.requests_total - stats.jobs["job-vanish"].requests >= 2,
        "{stats:?}"
    );

    assert_eq!(vanished["level"], "ERROR", "{vanished}");
    assert_eq!(vanished["last_status"], "RUNNING", "{vanished}");
    assert_eq!(vanished["labels"], json!({}), "{vanished}");
    check_event_id(&vanished);
    let running = Match::transition("job-vanish", "RUNNING").all(&run.events);
    assert_eq!(running.len(), 1, "{}", dump(&run.events));
    for job_id in ["job-never", "job-vanish"] {
        let announced = Match::event("job.not_found")
            .with("job_id", job_id)
            .all(&run.events);
        assert_eq!(announced.len(), 1, "{}", dump(&run.events));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_is_announced_once_and_polling_goes_on() {
    let sim = sim(r#"
[[job]]
id = "job-stuck"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" } ]
"#)
    .await;
    let setup = Setup::new(&sim)
        .watch(&["job-stuck"])
        .set("poll.job_timeout", "3s");
    let mut daemon = setup.start().await;
    let timeout = daemon.await_event(&Match::event("job.timeout")).await;
    let polls_at_timeout = sim.requests("job-stuck");
    // Three more polls after the timeout: polling goes on, at max_interval.
    sim.await_stats("three more polls of job-stuck", |stats| {
        stats.jobs["job-stuck"].requests >= polls_at_timeout + 3
    })
    .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);

    assert_eq!(timeout["level"], "ERROR", "{timeout}");
    assert_eq!(timeout["job_id"], "job-stuck", "{timeout}");
    assert_eq!(timeout["status"], "RUNNING", "{timeout}");
    assert!(timeout["elapsed_s"].as_u64().unwrap() >= 3, "{timeout}");
    assert_eq!(timeout["labels"], json!({}), "{timeout}");
    check_event_id(&timeout);
    let timeouts = Match::event("job.timeout").all(&run.events);
    assert_eq!(timeouts.len(), 1, "{}", dump(&run.events));
}

#[tokio::test(flavor = "multi_thread")]
async fn api_errors_carry_type_status_code_request_id_and_count() {
    // (job, fault, error_type, http_status, error_code)
    let cases = [
        (
            "job-5xx",
            "kind = \"server_error\"\nstatus = 503",
            "server",
            503,
            "Ecs.0500",
        ),
        (
            "job-400",
            "kind = \"client_error\"",
            "client",
            400,
            "Ecs.0005",
        ),
        (
            "job-202",
            "kind = \"throttle_202\"",
            "throttled",
            202,
            "Common.0024",
        ),
    ];
    let mut tables = String::new();
    for (job_id, fault, ..) in cases {
        tables.push_str(&format!(
            "[[job]]\nid = \"{job_id}\"\njob_type = \"createServer\"\ntimeline = [ {{ at = \"0s\", status = \"RUNNING\" }} ]\n\n"
        ));
        tables.push_str(&format!("[[fault]]\n{fault}\njobs = [\"{job_id}\"]\n\n"));
    }
    let sim = sim(&tables).await;
    let ids: Vec<&str> = cases.iter().map(|case| case.0).collect();
    let mut daemon = Setup::new(&sim).watch(&ids).start().await;
    for (_, _, error_type, http_status, error_code) in cases {
        let event = daemon
            .await_event(&Match::event("api.error").with("error_type", error_type))
            .await;
        assert_eq!(event["level"], "WARN", "{event}");
        assert_eq!(event["http_status"], http_status, "{event}");
        assert_eq!(event["error_code"], error_code, "{event}");
        let request_id = event["request_id"].as_str().unwrap_or_default();
        assert!(
            request_id.len() == 32 && request_id.chars().all(|c| c.is_ascii_hexdigit()),
            "request_id: {event}"
        );
        assert!(event["count"].as_u64().unwrap_or(0) >= 1, "{event}");
    }
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
}

#[tokio::test(flavor = "multi_thread")]
async fn late_visible_job_is_not_reported_missing_and_gets_its_transitions() {
    let sim = sim("").await;
    let setup = Setup::new(&sim)
        .watch(&["job-late"])
        .set("poll.not_found_grace", "10s");
    let mut daemon = setup.start().await;
    daemon.await_event(&Match::event("daemon.started")).await;
    sim.add_jobs(jobs(
        r#"
[[job]]
id = "job-late"
job_type = "deleteVMs"
visible_after = "3s"
timeline = [ { at = "3s", status = "RUNNING" }, { at = "6s", status = "SUCCESS" } ]
"#,
    ));
    daemon
        .await_event(&Match::transition("job-late", "SUCCESS"))
        .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    assert!(
        Match::event("job.not_found").all(&run.events).is_empty(),
        "{}",
        dump(&run.events)
    );
    let statuses: Vec<(&Value, &Value)> = Match::event("job.transition")
        .all(&run.events)
        .into_iter()
        .map(|event| (&event["previous_status"], &event["status"]))
        .collect();
    assert_eq!(
        statuses,
        [
            (&Value::Null, &json!("RUNNING")),
            (&json!("RUNNING"), &json!("SUCCESS"))
        ],
        "{}",
        dump(&run.events)
    );
    // It was asked for while still invisible.
    assert!(sim.requests("job-late") >= 3, "{:?}", sim.stats());
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_status_is_reported_verbatim_and_polling_continues() {
    let sim = sim("").await;
    let mut daemon = Setup::new(&sim).watch(&["job-odd"]).start().await;
    daemon.await_event(&Match::event("daemon.started")).await;
    sim.add_jobs(jobs(
        r#"
[[job]]
id = "job-odd"
job_type = "resizeServer"
timeline = [
  { at = "0s", status = "RUNNING" },
  { at = "3s", status = "ROLLING_BACK" },
  { at = "7s", status = "SUCCESS" },
]
"#,
    ));
    let odd = daemon
        .await_event(&Match::transition("job-odd", "ROLLING_BACK"))
        .await;
    let done = daemon
        .await_event(&Match::transition("job-odd", "SUCCESS"))
        .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    assert_eq!(odd["previous_status"], "RUNNING", "{odd}");
    assert_eq!(odd["level"], "INFO", "{odd}");
    assert_eq!(done["previous_status"], "ROLLING_BACK", "{done}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_watch_lines_are_reported_with_file_and_line_and_new_lines_are_picked_up() {
    let sim = sim(r#"
[[job]]
id = "job-good"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" } ]

[[job]]
id = "job-added"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" } ]
"#)
    .await;
    let setup = Setup::new(&sim).watch_file(
        "ci.jobs",
        "job-good pipeline=ci\nbad/id owner=ci\njob-bad-label 1st=x\n",
    );
    let mut daemon = setup.start().await;
    let started = daemon.await_event(&Match::event("daemon.started")).await;
    let problems = daemon.await_events(&Match::event("watch.problem"), 2).await;
    daemon
        .await_event(&Match::transition("job-good", "RUNNING"))
        .await;
    assert_eq!(started["jobs_tracked"], 1, "{started}");
    for (problem, place) in problems.iter().zip(["ci.jobs:2:", "ci.jobs:3:"]) {
        assert_eq!(problem["level"], "WARN", "{problem}");
        assert!(
            problem["problem"]
                .as_str()
                .unwrap_or_default()
                .contains(place),
            "{place}: {problem}"
        );
    }

    let file = setup.watch_dir().join("ci.jobs");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("job-added pipeline=late\n");
    std::fs::write(&file, text).unwrap();
    let added = daemon
        .await_event(&Match::transition("job-added", "RUNNING"))
        .await;
    assert_eq!(added["labels"], json!({"pipeline": "late"}), "{added}");
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    assert_eq!(
        Match::transition("job-good", "RUNNING").all(&run.events)[0]["labels"],
        json!({"pipeline": "ci"})
    );
    assert!(
        run.events
            .iter()
            .all(|event| event["job_id"] != "job-bad-label"),
        "{}",
        dump(&run.events)
    );
}
