//! A state database written by the release before the job family (schema
//! version 2, `tests/data/state-v2.db`, described beside it) upgrades in
//! place: no job is lost, no recorded fact is announced again, the
//! announced sub-job failure, the durations and the outbox survive.

use ecs_jobwatch::job::{JobKey, Service};
use ecs_jobwatch::output::event::fact_id;
use ecs_jobwatch::store::{Store, outbox};
use serde_json::Value;

use crate::harness::{Match, Setup, dump, sim};

/// The simulator's view of the fixture's jobs: the finished ones as they
/// ended, the running one ends now, the unpaid one still waits.
const JOBS: &str = r#"
[[job]]
id = "fixture-success"
job_type = "createServer"
timeline = [ { at = "0s", status = "SUCCESS" } ]

[[job]]
id = "fixture-fail"
job_type = "deleteVMs"
timeline = [ { at = "0s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "quota" } ]

[[job]]
id = "fixture-running"
job_type = "batchCreateServers"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "2s", status = "SUCCESS" } ]
[[job.sub_job]]
id = "fixture-running-sub1"
job_type = "createSingleServer"
server_id = "srv-1"
timeline = [ { at = "0s", status = "FAIL", fail_reason = "no EIP" } ]

[[job]]
id = "fixture-pending"
job_type = "createServer"
timeline = [ { at = "0s", status = "PENDING_PAYMENT" } ]
"#;

const WATCH: &str = "fixture-success team=web\nfixture-fail team=db\n\
                     fixture-running team=batch env=prod\nfixture-pending team=finance\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_version_2_database_upgrades_in_place() {
    let sim = sim(JOBS).await;
    // The fixture's running job was recorded when the fixture was made, so
    // it has run for hours by now: no job.timeout may join the one new fact.
    let setup = Setup::new(&sim)
        .set("poll.job_timeout", "3650d")
        .watch_file("fixture.jobs", WATCH)
        .set("notify.webhook", {
            let mut sink = toml::Table::new();
            sink.insert("url".into(), "http://127.0.0.1:9/hook".into());
            toml::Value::Array(vec![toml::Value::Table(sink)])
        });
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/state-v2.db");
    std::fs::copy(&fixture, setup.state_dir().join("state.db")).expect("fixture copied");

    let mut daemon = setup.start().await;
    let done = daemon
        .await_event(&Match::transition("fixture-running", "SUCCESS"))
        .await;
    // The unpaid job is polled again (its first poll may come after the
    // running job's end).
    sim.await_stats("the unpaid job polled", |stats| {
        stats
            .jobs
            .get("fixture-pending")
            .is_some_and(|job| job.requests > 0)
    })
    .await;
    let run = daemon.stop_cleanly().await;

    // The one new fact, with the id the old release would have given it.
    assert_eq!(done["previous_status"], "RUNNING", "{done}");
    let expected = fact_id(&[
        "job.transition",
        "fixture-running",
        "RUNNING",
        "SUCCESS",
        "1",
    ]);
    assert_eq!(done["event_id"], expected.as_str(), "{done}");
    assert_eq!(done["labels"]["env"], "prod");
    let job_events: Vec<&Value> = run
        .events
        .iter()
        .filter(|event| event["job_id"].is_string())
        .collect();
    assert_eq!(job_events.len(), 1, "{}", dump(&run.events));
    for finished in ["fixture-success", "fixture-fail"] {
        assert_eq!(sim.requests(finished), 0, "{finished} was polled again");
    }

    let store = Store::open_read_only(&setup.state_dir()).expect("the store opens");
    let jobs = store.load_jobs().expect("jobs load");
    let summary: Vec<(String, Option<String>, bool, usize)> = jobs
        .iter()
        .map(|job| {
            assert_eq!(job.key.service, Service::Ecs);
            assert!(job.key.project.is_default());
            (
                job.key.to_string(),
                job.status.clone(),
                job.finished,
                job.labels.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("fixture-fail".into(), Some("FAIL".into()), true, 1),
            (
                "fixture-pending".into(),
                Some("PENDING_PAYMENT".into()),
                false,
                1
            ),
            ("fixture-running".into(), Some("SUCCESS".into()), true, 2),
            ("fixture-success".into(), Some("SUCCESS".into()), true, 1),
        ]
    );
    let running = JobKey::parse("fixture-running").expect("a key");
    assert_eq!(store.announced(&running).expect("announced").len(), 1);
    let durations = store.durations(10).expect("durations");
    assert!(durations.len() >= 3, "{durations:?}");
    drop(store);

    let connection =
        rusqlite::Connection::open(setup.state_dir().join("state.db")).expect("the database opens");
    let queued = outbox::sinks(&connection).expect("the outbox reads");
    let total: i64 = queued.iter().map(|(_, rows)| rows).sum();
    assert!(total >= 4, "the migrated outbox rows are kept: {queued:?}");
    // Keyed by the URL in the old release, by the sink's name now.
    assert!(
        queued.iter().all(|(sink, _)| sink == "webhook-1"),
        "the rows moved to the sink's name: {queued:?}"
    );

    let status = setup.cli(&["status", "--json"]).await;
    assert_eq!(status.code, Some(0), "{status:?}");
    let rows: Value = serde_json::from_str(&status.stdout).expect("JSON");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter()
            .all(|row| row["service"] == "ecs" && row["project"] == "default")
    );
}
