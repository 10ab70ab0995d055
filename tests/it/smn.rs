//! SMN sinks end to end: the real binary publishes to a topic of the
//! simulator, which checks each publish's signature and records the
//! message. Every FAIL and PENDING_PAYMENT reaches the topic once per
//! event id across an SMN outage, a `kill -9` and a whole-simulator
//! outage; publishes count against the one request budget; a 403 from SMN
//! pauses that sink and nothing else.

use std::collections::{BTreeMap, BTreeSet};

use ecs_jobwatch::sim::SmnMessage;
use serde_json::Value;

use crate::harness::{DEADLINE, Match, PROJECT, Setup, Sim, dump, faults, jobs, sim};

const REGION: &str = "cn-north-4";

fn topic_urn() -> String {
    format!("urn:smn:{REGION}:{PROJECT}:ecs-jobs")
}

/// A configuration with one SMN sink named `oncall` on the simulator's
/// topic (default events and statuses: FAIL and PENDING_PAYMENT).
fn with_topic(sim: &Sim) -> Setup {
    let mut sink = toml::Table::new();
    sink.insert("topic_urn".into(), topic_urn().into());
    sink.insert("name".into(), "oncall".into());
    let mut endpoints = toml::Table::new();
    endpoints.insert("smn".into(), sim.smn_url().into());
    Setup::new(sim)
        .set("cloud.region", REGION)
        .set("cloud.endpoints", endpoints)
        .set("notify.smn", toml::Value::Array(vec![sink.into()]))
}

/// Awaits messages on the topic until `done` holds (checked every 50 ms:
/// observation, not a wait for a fixed time).
async fn await_messages(
    sim: &Sim,
    what: &str,
    done: impl Fn(&[SmnMessage]) -> bool,
) -> Vec<SmnMessage> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let messages = sim.smn_messages();
        if done(&messages) {
            return messages;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out awaiting {what}; messages so far: {messages:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn event_ids(messages: &[SmnMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|message| message.event_id().expect("every message carries an event"))
        .collect()
}

/// The events of `events` an SMN sink with the default filter takes.
fn published_kind(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|event| {
            event["event"] == "job.transition"
                && (event["status"] == "FAIL" || event["status"] == "PENDING_PAYMENT")
        })
        .map(|event| event["event_id"].as_str().expect("an event_id").to_string())
        .collect()
}

const JOBS: &str = r#"
[[job]]
id = "fails-early"
job_type = "createServers"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "2s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "insufficient EIP quota" } ]

[[job]]
id = "unpaid"
job_type = "createServers"
timeline = [ { at = "0s", status = "PENDING_PAYMENT" } ]

[[job]]
id = "succeeds"
job_type = "attachVolume"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "2s", status = "SUCCESS" } ]
"#;

const LATE_JOB: &str = r#"
[[job]]
id = "fails-late"
job_type = "deleteServers"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "3s", status = "FAIL", fail_reason = "disk busy" } ]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn every_fail_and_pending_payment_reaches_the_topic_once_across_outages_and_kill_9() {
    let sim = sim(JOBS).await;
    // SMN is down: every publish fails until the faults are cleared.
    sim.set_faults(faults(
        "[[fault]]\nkind = \"server_error\"\nstatus = 503\njobs = [\"smn\"]\n",
    ));
    let setup = with_topic(&sim).watch(&["fails-early", "unpaid", "succeeds", "fails-late"]);
    let mut first = setup.start().await;
    first
        .await_event(&Match::transition("fails-early", "FAIL"))
        .await;
    first
        .await_event(&Match::transition("unpaid", "PENDING_PAYMENT"))
        .await;
    sim.await_stats("publishes refused by the SMN outage", |stats| {
        stats
            .faults_injected
            .get("server_error")
            .copied()
            .unwrap_or(0)
            >= 2
    })
    .await;
    // Killed while its events wait in the outbox; nothing was published.
    let first = first.kill9().await;
    assert!(sim.smn_messages().is_empty());

    // The whole simulator is unreachable for the next start's first calls.
    sim.set_faults(faults("[[fault]]\nkind = \"drop\"\n"));
    let mut second = setup.start().await;
    sim.await_stats("calls dropped by the outage", |stats| {
        stats.faults_injected.get("drop").copied().unwrap_or(0) >= 3
    })
    .await;
    sim.set_faults(Vec::new());
    sim.add_jobs(jobs(LATE_JOB));
    second
        .await_event(&Match::transition("fails-late", "FAIL"))
        .await;

    let mut expected = published_kind(&first.events);
    expected.extend(published_kind(&second.events));
    assert_eq!(
        expected.len(),
        3,
        "{}\n{}",
        dump(&first.events),
        dump(&second.events)
    );
    let messages = await_messages(&sim, "every FAIL and PENDING_PAYMENT", |messages| {
        event_ids(messages).into_iter().collect::<BTreeSet<_>>() == expected
    })
    .await;
    let second = second.stop_cleanly().await;
    // Once per event id: no publish had succeeded when the first run died.
    let ids = event_ids(&sim.smn_messages());
    assert_eq!(ids.len(), expected.len(), "{messages:#?}");
    assert!(published_kind(&second.events).is_subset(&expected));

    for message in &messages {
        assert_eq!(message.topic_urn, topic_urn());
        let subject = message.subject.as_deref().expect("a subject");
        assert!(!subject.is_empty() && subject.len() <= 512, "{subject}");
        let structure = message.message_structure.as_ref().expect("a structure");
        let default: Value =
            serde_json::from_str(structure["default"].as_str().expect("default")).expect("JSON");
        assert_eq!(
            default["message"], subject,
            "the subject is the event's sentence"
        );
        let sms = structure["sms"].as_str().expect("sms");
        assert!(sms.chars().count() <= 140 && !sms.contains('\n'), "{sms}");
        assert!(
            sms.contains(default["job_id"].as_str().expect("a job")),
            "{sms}"
        );
        let email = structure["email"].as_str().expect("email");
        for field in ["job_id: ", "status: ", "job_type: ", "event_id: "] {
            assert!(email.contains(field), "{field} missing from {email}");
        }
    }
    let failed = messages
        .iter()
        .find(|message| {
            message
                .subject
                .as_deref()
                .is_some_and(|s| s.contains("fails-early"))
        })
        .expect("the early failure");
    let sms = failed.message_structure.as_ref().expect("a structure")["sms"]
        .as_str()
        .expect("sms")
        .to_string();
    assert_eq!(
        sms,
        "FAIL ecs job fails-early (createServers): insufficient EIP quota"
    );
}

/// `count` jobs that fail one second after they are first seen.
fn failing_jobs(count: usize) -> (String, Vec<String>) {
    let ids: Vec<String> = (0..count).map(|n| format!("doomed-{n:02}")).collect();
    let tables = ids
        .iter()
        .map(|id| {
            format!(
                "[[job]]\nid = \"{id}\"\njob_type = \"createServers\"\n\
                 timeline = [ {{ at = \"0s\", status = \"RUNNING\" }}, {{ at = \"1s\", status = \"FAIL\" }} ]\n\n"
            )
        })
        .collect();
    (tables, ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_count_against_the_one_request_budget() {
    let (tables, ids) = failing_jobs(12);
    let sim = sim(&tables).await;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let setup = with_topic(&sim)
        .watch(&ids)
        .set("limits.requests_per_second", 2)
        .set("limits.burst", 1);
    let daemon = setup.start().await;
    await_messages(&sim, "a message per failed job", |messages| {
        messages.len() >= ids.len()
    })
    .await;
    daemon.stop_cleanly().await;
    let stats = sim.stats();
    let publishes = stats.services.get("smn").map_or(0, |smn| smn.requests);
    assert_eq!(publishes, ids.len() as u64, "{stats:?}");
    // Job queries and publishes together stay within 2 a second (and the
    // burst of 1).
    assert!(
        stats.max_requests_in_any_1s_window <= 3,
        "budget of 2/s with burst 1 exceeded: {} requests in one second; {stats:?}",
        stats.max_requests_in_any_1s_window
    );
    assert_eq!(stats.rejected_rate_limit, 0, "{stats:?}");
}

/// Samples of `metric` in a Prometheus scrape, by their label text.
fn samples(scrape: &str, metric: &str) -> BTreeMap<String, f64> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix(metric))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once(' ')?;
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_403_from_smn_pauses_that_sink_without_stopping_the_polls() {
    let sim = sim(r#"
[[job]]
id = "fails"
job_type = "createServers"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "1s", status = "FAIL" } ]

[[job]]
id = "runs"
job_type = "createServers"
timeline = [ { at = "0s", status = "RUNNING" } ]
"#)
    .await;
    sim.set_faults(faults(
        "[[fault]]\nkind = \"forbidden\"\njobs = [\"smn\"]\n",
    ));
    let setup = with_topic(&sim)
        .watch(&["fails", "runs"])
        .set("metrics.listen", "127.0.0.1:0");
    let mut daemon = setup.start().await;
    let listening = daemon.await_event(&Match::event("metrics.listening")).await;
    let addr = listening["addr"].as_str().expect("an address").to_string();
    daemon
        .await_event(&Match::transition("fails", "FAIL"))
        .await;
    let refused = sim
        .await_stats("a publish refused with 403", |stats| {
            stats.faults_injected.get("forbidden").copied().unwrap_or(0) >= 1
        })
        .await;
    // The job polls go on: several more calls for the running job.
    let before = refused.jobs.get("runs").map_or(0, |job| job.requests);
    sim.await_stats("polls after the 403", |stats| {
        stats.jobs.get("runs").map_or(0, |job| job.requests) >= before + 3
    })
    .await;
    let scrape = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("a scrape")
        .text()
        .await
        .expect("a text body");
    let readyz = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("readyz answers")
        .status();
    let run = daemon.stop_cleanly().await;

    let paused = samples(&scrape, "ecs_jobwatch_notify_paused");
    assert_eq!(
        paused.get("{sink=\"oncall\",kind=\"smn\"}").copied(),
        Some(1.0),
        "{scrape}"
    );
    let failed = samples(&scrape, "ecs_jobwatch_notify_deliveries_total");
    assert!(
        failed
            .get("{sink=\"oncall\",kind=\"smn\",result=\"failed\"}")
            .is_some_and(|n| *n >= 1.0),
        "{scrape}"
    );
    // The account is not refused: ready, no authentication error.
    assert_eq!(readyz.as_u16(), 200);
    assert!(
        Match::event("api.error").all(&run.events).is_empty(),
        "{}",
        dump(&run.events)
    );
    assert!(sim.smn_messages().is_empty());
    assert!(Match::event("notify.dropped").all(&run.events).is_empty());
}
