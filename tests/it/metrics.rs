//! Metrics and health endpoints of the real daemon: a run with known
//! outcomes is scraped and parsed as Prometheus text, and the counts match
//! what happened; readiness flips when the API only answers 401.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::{Daemon, Match, Setup, sim};

const JOBS: &str = r#"
[[job]]
id = "ok-1"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "2s", status = "SUCCESS" } ]

[[job]]
id = "ok-2"
job_type = "attachVolume"
timeline = [ { at = "0s", status = "INIT" }, { at = "1s", status = "RUNNING" }, { at = "3s", status = "SUCCESS" } ]

[[job]]
id = "bad-1"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "2s", status = "FAIL", fail_reason = "quota" } ]
"#;

/// The address from the daemon's `metrics.listening` line.
async fn metrics_address(daemon: &mut Daemon) -> String {
    let line = daemon.await_event(&Match::event("metrics.listening")).await;
    line["addr"].as_str().expect("addr is a string").to_string()
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("the endpoint answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

/// Samples of a scrape by metric name and label set.
fn samples(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let lines = text.lines().map(|line| Ok(line.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text parses");
    scrape
        .samples
        .into_iter()
        .filter_map(|sample| {
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => return None,
            };
            let labels: BTreeMap<String, String> = sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Some(((sample.metric, labels), value))
        })
        .collect()
}

fn value(
    samples: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    metric: &str,
    labels: &[(&str, &str)],
) -> f64 {
    // The sum over every series of `metric` that carries these labels
    // (whatever its other labels, such as `service`).
    samples
        .iter()
        .filter(|((name, series), _)| {
            name == metric
                && labels
                    .iter()
                    .all(|(k, v)| series.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, value)| value)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_after_a_known_run_counts_what_happened() {
    let sim = sim("").await;
    let setup = Setup::new(&sim)
        .watch(&["ok-1", "ok-2", "bad-1"])
        .set("metrics.listen", "127.0.0.1:0");
    let mut daemon = setup.start().await;
    let addr = metrics_address(&mut daemon).await;
    sim.add_jobs(crate::harness::jobs(JOBS));
    for (job, status) in [("ok-1", "SUCCESS"), ("ok-2", "SUCCESS"), ("bad-1", "FAIL")] {
        daemon.await_event(&Match::transition(job, status)).await;
    }
    // Every job is final, so no call is made after this point.
    let (code, text) = get(&format!("http://{addr}/metrics")).await;
    assert_eq!(code, 200);
    let samples = samples(&text);
    let run = daemon.stop_cleanly().await;

    let transitions = |status: &str| Match::transition_into(status).all(&run.events).len() as f64;
    for status in ["INIT", "RUNNING", "SUCCESS", "FAIL"] {
        assert_eq!(
            value(
                &samples,
                "ecs_jobwatch_transitions_total",
                &[("status", status)]
            ),
            transitions(status),
            "{status}\n{text}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "ecs_jobwatch_transitions_total",
            &[("status", "FAIL")]
        ),
        1.0
    );
    let announced = Match::event("job.transition").all(&run.events).len() as f64;
    assert_eq!(
        value(
            &samples,
            "ecs_jobwatch_events_total",
            &[("event", "job.transition")]
        ),
        announced
    );
    // Every call the simulator saw is counted by outcome.
    let polls: f64 = samples
        .iter()
        .filter(|((metric, _), _)| metric == "ecs_jobwatch_polls_total")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(polls, sim.stats().requests_total as f64, "{text}");
    assert_eq!(
        value(
            &samples,
            "ecs_jobwatch_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // The gauge is refreshed once a second; it exists for every status.
    assert!(
        text.contains("ecs_jobwatch_jobs_tracked{status=\"RUNNING\"}"),
        "{text}"
    );
    for histogram in [
        "ecs_jobwatch_api_request_duration_seconds_count",
        "ecs_jobwatch_scheduler_lag_seconds_count",
        "ecs_jobwatch_state_write_seconds_count",
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(histogram)),
            "{histogram} missing:\n{text}"
        );
    }
    // How long each finished job worked, by service and job type (the
    // three jobs worked, each from its first sighting at work to its end).
    let count = |job_type: &str| {
        let prefix = format!(
            "ecs_jobwatch_job_duration_seconds_count{{service=\"ecs\",job_type=\"{job_type}\"}} "
        );
        let line = text.lines().find(|line| line.starts_with(&prefix));
        let line = line.unwrap_or_else(|| panic!("{prefix} missing:\n{text}"));
        line[prefix.len()..].parse::<f64>().expect("a count")
    };
    assert_eq!(count("createServer"), 2.0, "{text}");
    assert_eq!(count("attachVolume"), 1.0, "{text}");
    // No job id is ever a label.
    for id in ["ok-1", "ok-2", "bad-1"] {
        assert!(!text.contains(id), "job id {id} in the metrics");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_flips_when_the_api_only_answers_401() {
    let sim = sim(r#"
[[job]]
id = "job-1"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" } ]
"#)
    .await;
    let good = Setup::new(&sim)
        .watch(&["job-1"])
        .set("metrics.listen", "127.0.0.1:0");
    let mut daemon = good.start().await;
    let addr = metrics_address(&mut daemon).await;
    daemon
        .await_event(&Match::transition("job-1", "RUNNING"))
        .await;
    let (code, body) = get(&format!("http://{addr}/readyz")).await;
    assert_eq!(code, 200, "{body}");
    daemon.stop_cleanly().await;

    let wrong = Setup::new(&sim)
        .watch(&["job-1"])
        .set("metrics.listen", "127.0.0.1:0")
        .env(
            "HUAWEICLOUD_SDK_SK",
            "not-the-secret-key-0000000000000000000000",
        );
    let mut daemon = wrong.start().await;
    let addr = metrics_address(&mut daemon).await;
    daemon
        .await_event(&Match::event("api.error").with("error_type", "auth"))
        .await;
    let (code, body) = get(&format!("http://{addr}/readyz")).await;
    assert_eq!(code, 503, "{body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("authentication")),
        "{body}"
    );
    // The process itself is healthy.
    let (code, _) = get(&format!("http://{addr}/healthz")).await;
    assert_eq!(code, 200);
    daemon.stop_cleanly().await;
}

/// A fresh daemon's first scrape: every known label combination of the
/// counters is there at 0 (so `increase(...)` sees the first failure),
/// every sink's delivery series, and the process metrics.
#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_daemon_exports_every_known_series_from_the_first_scrape() {
    use ecs_jobwatch::job::Service;
    use ecs_jobwatch::output::event::NAMES;
    use ecs_jobwatch::telemetry::{ERROR_TYPES, STATUS_LABELS};

    let sim = sim("").await;
    let mut hook = toml::Table::new();
    // Nothing is ever delivered: no job is watched.
    hook.insert("url".into(), "http://127.0.0.1:9/hook".into());
    let setup = Setup::new(&sim)
        .set("metrics.listen", "127.0.0.1:0")
        .set("notify.webhook", toml::Value::Array(vec![hook.into()]));
    let mut daemon = setup.start().await;
    let addr = metrics_address(&mut daemon).await;
    let (code, text) = get(&format!("http://{addr}/metrics")).await;
    assert_eq!(code, 200);
    daemon.stop_cleanly().await;
    let samples = samples(&text);
    let exactly = |metric: &str, labels: &[(&str, &str)]| {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        samples
            .get(&(metric.to_string(), wanted))
            .copied()
            .unwrap_or_else(|| panic!("{metric}{labels:?} missing from the first scrape:\n{text}"))
    };
    for service in Service::ALL.map(Service::as_str) {
        for status in STATUS_LABELS {
            let labels = [("service", service), ("status", status)];
            assert_eq!(exactly("ecs_jobwatch_transitions_total", &labels), 0.0);
        }
        for outcome in std::iter::once("ok").chain(ERROR_TYPES) {
            let labels = [("outcome", outcome), ("service", service)];
            assert_eq!(exactly("ecs_jobwatch_polls_total", &labels), 0.0);
        }
    }
    for error_type in ERROR_TYPES.into_iter().filter(|t| *t != "not_found") {
        let labels = [("error_type", error_type)];
        assert_eq!(exactly("ecs_jobwatch_api_errors_total", &labels), 0.0);
    }
    for name in NAMES {
        exactly("ecs_jobwatch_events_total", &[("event", name)]);
    }
    let sink = [("kind", "webhook"), ("sink", "webhook-1")];
    for result in ["delivered", "failed", "dropped"] {
        let labels = [sink[0], ("result", result), sink[1]];
        assert_eq!(
            exactly("ecs_jobwatch_notify_deliveries_total", &labels),
            0.0
        );
    }
    for gauge in [
        "ecs_jobwatch_notify_retries_total",
        "ecs_jobwatch_notify_queue_depth",
        "ecs_jobwatch_notify_oldest_undelivered_timestamp_seconds",
        "ecs_jobwatch_notify_paused",
    ] {
        assert_eq!(exactly(gauge, &sink), 0.0, "{gauge}");
    }
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            exactly(process, &[]) > 0.0 || process == "process_cpu_seconds_total",
            "{process}"
        );
    }
}
