//! The request budget as the simulator counts it: the configured rate is
//! never exceeded, a 429 with `Retry-After` pauses every job, and a wrong
//! secret costs one call and one ERROR line.
//!
//! These tests assert on the simulator's counts, never on how fast the
//! daemon is.

use std::time::Duration;

use crate::daemon::check_common_fields;
use crate::harness::{Match, Setup, dump, faults, sim};
use crate::reliability::budget_ceiling;

/// `count` jobs that run for ever.
fn running_jobs(count: usize) -> (String, Vec<String>) {
    let ids: Vec<String> = (0..count).map(|n| format!("job-{n:03}")).collect();
    let tables = ids
        .iter()
        .map(|id| {
            format!(
                "[[job]]\nid = \"{id}\"\njob_type = \"createServer\"\n\
                 timeline = [ {{ at = \"0s\", status = \"RUNNING\" }} ]\n\n"
            )
        })
        .collect();
    (tables, ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_budget_is_never_exceeded() {
    let (tables, ids) = running_jobs(100);
    let sim = sim(&tables).await;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let setup = Setup::new(&sim)
        .watch(&ids)
        .set("limits.requests_per_second", 5)
        .set("limits.burst", 1);
    let daemon = setup.start().await;
    sim.await_stats("40 requests", |stats| stats.requests_total >= 40)
        .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    // 100 jobs want far more than 5 calls a second, so the budget is what
    // limits them: the busiest second reaches it and does not pass it.
    let stats = sim.stats();
    let busiest = stats.max_requests_in_any_1s_window;
    assert!(
        busiest <= budget_ceiling(5, 1),
        "budget of 5/s with burst 1 exceeded: {busiest} requests in one second"
    );
    assert!(busiest >= 5, "the budget was never reached: {stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_with_retry_after_pauses_every_job() {
    const MAX_IN_FLIGHT: u64 = 2;
    let (tables, ids) = running_jobs(20);
    let sim = sim(&tables).await;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let setup = Setup::new(&sim)
        .watch(&ids)
        .set("limits.requests_per_second", 20)
        .set("limits.max_in_flight", MAX_IN_FLIGHT as i64);
    let mut daemon = setup.start().await;
    // Steady polling of every job first: about 10 requests a second.
    daemon
        .await_events(&Match::transition_into("RUNNING"), ids.len())
        .await;

    let from = sim.elapsed() + Duration::from_millis(500);
    let until = from + Duration::from_secs(2);
    sim.set_faults(faults(&format!(
        "[[fault]]\nkind = \"throttle\"\nfrom = \"{}ms\"\nuntil = \"{}ms\"\nretry_after = \"3s\"\n",
        from.as_millis(),
        until.as_millis()
    )));
    let at_first_429 = sim
        .await_stats("the first throttled answer", |stats| {
            stats.faults_injected.get("throttle").copied().unwrap_or(0) >= 1
        })
        .await;
    // Observe the next 2.5 s (inside the 3 s pause) on the simulator's side.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let after_pause_window = sim.stats();
    let line = daemon
        .await_event(&Match::event("api.error").with("error_type", "throttled"))
        .await;
    // Polling resumes after the pause.
    sim.await_stats("polling resumed", |stats| {
        stats.requests_total >= after_pause_window.requests_total + 5
    })
    .await;
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);

    let during = after_pause_window.requests_total - at_first_429.requests_total;
    assert!(
        during <= 2 + MAX_IN_FLIGHT,
        "{during} requests in the 2.5 s after the first 429 with Retry-After: 3"
    );
    let throttled = sim.stats().faults_injected["throttle"];
    assert!(
        throttled <= 2 + MAX_IN_FLIGHT,
        "{throttled} requests hit the 2 s throttle window; the daemon did not pause"
    );
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["http_status"], 429, "{line}");
    assert_eq!(line["error_code"], "APIGW.0308", "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_costs_one_call_and_one_error_line() {
    let (tables, ids) = running_jobs(20);
    let sim = sim(&tables).await;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let setup = Setup::new(&sim).watch(&ids).env(
        "HUAWEICLOUD_SDK_SK",
        "a-wrong-secret-key-0000000000000000000000",
    );
    let mut daemon = setup.start().await;
    let auth = Match::event("api.error").with("error_type", "auth");
    let line = daemon.await_event(&auth).await;
    // The one bounded wait: a second auth line must not come.
    let again = daemon
        .next_event_within(&auth, Duration::from_secs(5))
        .await;
    let stats = sim.stats();
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);

    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["http_status"], 401, "{line}");
    assert_eq!(line["error_code"], "APIGW.0301", "{line}");
    assert!(again.is_none(), "{again:?}");
    // The README's promise: until a call succeeds only one is in flight,
    // and the refusal pauses every call for 5 minutes, so 20 jobs cost one
    // call in all.
    assert_eq!(stats.rejected_auth, 1, "{stats:?}");
    assert_eq!(stats.requests_total, 1, "{stats:?}");
    assert_eq!(auth.all(&run.events).len(), 1, "{}", dump(&run.events));
    assert!(
        !run.stderr.contains("a-wrong-secret") && !dump(&run.events).contains("a-wrong-secret"),
        "the secret leaked"
    );
}
