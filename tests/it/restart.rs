//! Restarts against the same state directory: after SIGTERM the daemon
//! resumes without repeating a fact, a finished job stays finished, and
//! after `kill -9` at random moments every final status is still
//! announced and a fact announced twice keeps its `event_id`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use crate::daemon::check_common_fields;
use crate::harness::{Match, Setup, dump, jobs, sim};

fn event_ids(events: &[Value]) -> HashSet<String> {
    events
        .iter()
        .filter_map(|event| event["event_id"].as_str().map(str::to_string))
        .collect()
}

/// A job that runs from the moment it is added and ends in `status` at
/// `end`.
fn job(id: &str, end: &str, status: &str) -> String {
    format!(
        "[[job]]\nid = \"{id}\"\njob_type = \"createServer\"\n\
         timeline = [ {{ at = \"0s\", status = \"RUNNING\" }}, {{ at = \"{end}\", status = \"{status}\" }} ]\n\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_resumes_without_repeating_an_announced_fact() {
    // (job, end, final status): two end before the restart, two after.
    let plan = [
        ("job-early-ok", "2s", "SUCCESS"),
        ("job-early-fail", "2s", "FAIL"),
        ("job-late-1", "25s", "SUCCESS"),
        ("job-late-2", "26s", "FAIL"),
    ];
    let sim = sim("").await;
    let ids: Vec<&str> = plan.iter().map(|step| step.0).collect();
    let setup = Setup::new(&sim).watch(&ids);
    let mut first = setup.start().await;
    first.await_event(&Match::event("daemon.started")).await;
    sim.add_jobs(jobs(
        &plan
            .iter()
            .map(|(id, end, status)| job(id, end, status))
            .collect::<String>(),
    ));
    for (id, _, status) in &plan[..2] {
        first.await_event(&Match::transition(id, status)).await;
    }
    for (id, ..) in &plan[2..] {
        first.await_event(&Match::transition(id, "RUNNING")).await;
    }
    let first = first.stop_cleanly().await;
    check_common_fields(&first);
    for (id, ..) in &plan[2..] {
        assert!(
            Match::event("job.transition")
                .with("job_id", *id)
                .all(&first.events)
                .iter()
                .all(|event| event["status"] == "RUNNING"),
            "{id} ended before the restart; the plan needs longer timelines: {}",
            dump(&first.events)
        );
    }

    let mut second = setup.start().await;
    for (id, _, status) in &plan[2..] {
        second.await_event(&Match::transition(id, status)).await;
    }
    let second = second.stop_cleanly().await;
    check_common_fields(&second);
    let before = event_ids(&first.events);
    let repeated: Vec<&Value> = second
        .events
        .iter()
        .filter(|event| {
            event["event_id"]
                .as_str()
                .is_some_and(|id| before.contains(id))
        })
        .collect();
    assert!(
        repeated.is_empty(),
        "announced again after a clean restart: {repeated:?}"
    );
    for (id, _, status) in &plan[2..] {
        let announced = Match::transition(id, status).all(&second.events);
        assert_eq!(announced.len(), 1, "{}", dump(&second.events));
        assert_eq!(announced[0]["previous_status"], "RUNNING");
    }
    for (id, ..) in &plan[..2] {
        assert!(
            Match::event("job.transition")
                .with("job_id", *id)
                .all(&second.events)
                .is_empty(),
            "{}",
            dump(&second.events)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_job_in_the_watch_list_is_not_polled_after_restart() {
    let sim = sim("").await;
    let setup = Setup::new(&sim).watch(&["job-done", "job-later"]);
    let mut first = setup.start().await;
    first.await_event(&Match::event("daemon.started")).await;
    sim.add_jobs(jobs(&format!(
        "{}{}",
        job("job-done", "1s", "SUCCESS"),
        job("job-later", "15s", "SUCCESS")
    )));
    first
        .await_event(&Match::transition("job-done", "SUCCESS"))
        .await;
    first
        .await_event(&Match::transition("job-later", "RUNNING"))
        .await;
    first.stop_cleanly().await;
    let polls_before = sim.requests("job-done");

    let mut second = setup.start().await;
    // While the other job is polled to its end, the finished one is left alone.
    second
        .await_event(&Match::transition("job-later", "SUCCESS"))
        .await;
    let second = second.stop_cleanly().await;
    check_common_fields(&second);
    assert_eq!(
        sim.requests("job-done"),
        polls_before,
        "a finished job was polled after the restart"
    );
    assert!(
        second
            .events
            .iter()
            .all(|event| event["job_id"] != "job-done"),
        "{}",
        dump(&second.events)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_no_final_status_and_keeps_event_ids() {
    const JOBS: usize = 20;
    const ROUNDS: usize = 4;
    let plan: Vec<(String, String, &str)> = (0..JOBS)
        .map(|n| {
            let end = format!("{}ms", 2_000 + n * 600);
            let status = if n % 4 == 3 { "FAIL" } else { "SUCCESS" };
            (format!("job-{n:02}"), end, status)
        })
        .collect();
    let sim = sim("").await;
    let ids: Vec<&str> = plan.iter().map(|step| step.0.as_str()).collect();
    let setup = Setup::new(&sim).watch(&ids);
    sim.add_jobs(jobs(
        &plan
            .iter()
            .map(|(id, end, status)| job(id, end, status))
            .collect::<String>(),
    ));

    let mut runs = Vec::new();
    for _ in 0..ROUNDS {
        let mut daemon = setup.start().await;
        daemon.await_event(&Match::event("daemon.started")).await;
        let delay = rand::rng().random_range(500..=3_000);
        // A random moment to die at is the point of this test, not a wait
        // for a result.
        tokio::time::sleep(Duration::from_millis(delay)).await;
        runs.push(daemon.kill9().await);
    }
    let mut last = setup.start().await;
    // Every final status may already be announced; the stop below must
    // still find the signal handlers in place.
    last.await_event(&Match::event("daemon.started")).await;
    let announced = |events: &[Value], id: &str, status: &str| {
        !Match::transition(id, status).all(events).is_empty()
    };
    for (id, _, status) in &plan {
        let earlier = runs.iter().any(|run| announced(&run.events, id, status));
        if !earlier {
            last.await_event(&Match::transition(id, status)).await;
        }
    }
    let last = last.stop_cleanly().await;
    check_common_fields(&last);
    runs.push(last);

    let all: Vec<Value> = runs.iter().flat_map(|run| run.events.clone()).collect();
    for run in &runs {
        // Only the last line of a killed daemon may be cut short.
        let whole: Vec<&String> = run
            .bad_lines
            .iter()
            .filter(|line| line.ends_with('\n'))
            .collect();
        assert!(
            whole.is_empty(),
            "stdout lines that are not JSON: {whole:?}"
        );
    }
    for (id, _, status) in &plan {
        assert!(announced(&all, id, status), "{id} {status} never announced");
    }
    let mut groups: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for event in Match::event("job.transition").all(&all) {
        let key = (
            event["job_id"].as_str().unwrap().to_string(),
            event["status"].as_str().unwrap().to_string(),
        );
        groups
            .entry(key)
            .or_default()
            .insert(event["event_id"].as_str().unwrap().to_string());
    }
    for ((id, status), ids) in &groups {
        assert_eq!(
            ids.len(),
            1,
            "{id} {status} announced with different event_ids: {ids:?}"
        );
    }
}
