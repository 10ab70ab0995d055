//! The shipped Prometheus rules and Grafana dashboard against the real
//! thing: Debian's `prometheus` scrapes a daemon that watches a failing job
//! on the simulator, evaluates `contrib/prometheus/ecs-jobwatch.rules.yml`,
//! and the alert reaches a webhook receiver in this test through Debian's
//! `prometheus-alertmanager`; everything on loopback, on ports the test
//! chooses. And every query of `contrib/grafana/ecs-jobwatch.json` names a
//! metric that a scrape of the daemon really has.
//!
//! Where the packages are missing the end-to-end test skips with one line
//! (`harness::require_command`); under `CI` or `REQUIRE_TOOLS=1` it fails
//! instead (`.ci/run` installs them).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::harness::{self, Daemon, Match, Setup, sim};

/// How long Prometheus and Alertmanager may take to start and fire.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

const FAILING_JOB: &str = r#"
[[job]]
id = "doomed-1"
job_type = "createServers"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "4s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "quota" } ]
"#;

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(path)
}

/// A free loopback port (bound and released; the process started next
/// binds it).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

async fn metrics_address(daemon: &mut Daemon) -> String {
    let line = daemon.await_event(&Match::event("metrics.listening")).await;
    line["addr"].as_str().expect("addr is a string").to_string()
}

fn spawn(program: &str, args: &[String], log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("a log file");
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("{program} starts: {error}"))
}

/// The alerts Alertmanager posted, and a way to await one.
#[derive(Clone, Default)]
struct Received {
    alerts: Arc<Mutex<Vec<Value>>>,
    arrived: Arc<Notify>,
}

async fn receive(State(received): State<Received>, Json(body): Json<Value>) -> &'static str {
    let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
    received.alerts.lock().unwrap().extend(alerts);
    received.arrived.notify_waiters();
    "ok"
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_job_alerts_through_prometheus_and_alertmanager() {
    let needed = "Debian's prometheus and prometheus-alertmanager (.ci/run installs them)";
    if !harness::require_command("prometheus", &["--version"], needed)
        || !harness::require_command("prometheus-alertmanager", &["--version"], needed)
    {
        return;
    }
    let started = Instant::now();
    let work = tempfile::tempdir().expect("a temporary directory");

    // The receiver of Alertmanager's webhook.
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("the receiver binds");
    let receiver_url = format!(
        "http://{}/alerts",
        listener.local_addr().expect("an address")
    );
    let app = axum::Router::new()
        .route("/alerts", axum::routing::post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The daemon, watching a job that fails a few seconds after it is
    // first seen running.
    let sim = sim("").await;
    let setup = Setup::new(&sim)
        .watch(&["doomed-1"])
        .set("metrics.listen", "127.0.0.1:0");
    let mut daemon = setup.start().await;
    let metrics = metrics_address(&mut daemon).await;

    let alertmanager_port = free_port();
    let alertmanager_config = work.path().join("alertmanager.yml");
    std::fs::write(
        &alertmanager_config,
        format!(
            "route:\n  receiver: test\n  group_by: [alertname, service, job_type]\n  \
             group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: test\n    webhook_configs:\n      - url: {receiver_url}\n        \
             send_resolved: false\n"
        ),
    )
    .expect("alertmanager.yml");
    let alertmanager = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", alertmanager_config.display()),
            format!("--storage.path={}", work.path().join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{alertmanager_port}"),
            "--cluster.listen-address=".to_string(),
        ],
        &work.path().join("alertmanager.log"),
    );

    let prometheus_port = free_port();
    let prometheus_config = work.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n\
             scrape_configs:\n  - job_name: ecs-jobwatch\n    static_configs:\n      - targets: ['{metrics}']\n",
            rules = contrib("prometheus/ecs-jobwatch.rules.yml").display(),
        ),
    )
    .expect("prometheus.yml");
    let prometheus = spawn(
        "prometheus",
        &[
            format!("--config.file={}", prometheus_config.display()),
            format!("--storage.tsdb.path={}", work.path().join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
        ],
        &work.path().join("prometheus.log"),
    );

    // The job starts once everything is up, so its RUNNING is scraped
    // before its FAIL.
    sim.add_jobs(crate::harness::jobs(FAILING_JOB));
    daemon
        .await_event(&Match::transition("doomed-1", "FAIL"))
        .await;

    let deadline = Instant::now() + PATIENCE;
    let alert = loop {
        let arrived = received.arrived.notified();
        let found = received
            .alerts
            .lock()
            .unwrap()
            .iter()
            .find(|alert| alert["labels"]["alertname"] == "EcsJobFailed")
            .cloned();
        if let Some(alert) = found {
            break alert;
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            let log =
                |name: &str| std::fs::read_to_string(work.path().join(name)).unwrap_or_default();
            panic!(
                "no EcsJobFailed alert within {PATIENCE:?}\nprometheus.log:\n{}\nalertmanager.log:\n{}",
                log("prometheus.log"),
                log("alertmanager.log")
            );
        }
    };
    let elapsed = started.elapsed();
    drop(prometheus);
    drop(alertmanager);
    daemon.stop_cleanly().await;

    assert_eq!(alert["status"], "firing", "{alert}");
    assert_eq!(alert["labels"]["service"], "ecs", "{alert}");
    assert_eq!(alert["labels"]["job_type"], "createServers", "{alert}");
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
    assert_eq!(
        alert["annotations"]["summary"], "A ecs job of type createServers failed",
        "{alert}"
    );
    // The run time, for the record (not an assertion).
    let line = format!("prometheus end-to-end: the alert arrived {elapsed:.1?} after the start\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// Every metric name a PromQL expression mentions: identifiers followed by
/// `{`, `[` or `)`-free context that start with `ecs_jobwatch_` or
/// `process_`, without the histogram suffixes.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        if is_ident(bytes[start]) && (start == 0 || !is_ident(bytes[start - 1])) {
            let mut end = start;
            while end < bytes.len() && is_ident(bytes[end]) {
                end += 1;
            }
            let word = &expr[start..end];
            if word.starts_with("ecs_jobwatch_") || word.starts_with("process_") {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .unwrap_or(word);
                names.insert(base.to_string());
            }
            start = end;
        } else {
            start += 1;
        }
    }
    names
}

/// Every `expr` of every panel target, however deeply nested.
fn expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => expressions(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| expressions(item, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_names_a_metric_the_daemon_exports() {
    let text =
        std::fs::read_to_string(contrib("grafana/ecs-jobwatch.json")).expect("the dashboard reads");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "the dashboard has its queries: {exprs:?}");

    // A daemon that finished a job (so the histogram and the per-type
    // series exist) and has a sink.
    let sim = sim(r#"
[[job]]
id = "done-1"
job_type = "createServers"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "1s", status = "SUCCESS" } ]

[[job]]
id = "unpaid-1"
job_type = "createServers"
timeline = [ { at = "0s", status = "PENDING_PAYMENT" } ]
"#)
    .await;
    let mut hook = toml::Table::new();
    hook.insert("url".into(), "http://127.0.0.1:9/hook".into());
    let setup = Setup::new(&sim)
        .watch(&["done-1", "unpaid-1"])
        .set("metrics.listen", "127.0.0.1:0")
        .set("notify.webhook", toml::Value::Array(vec![hook.into()]));
    let mut daemon = setup.start().await;
    let addr = metrics_address(&mut daemon).await;
    daemon
        .await_event(&Match::transition("done-1", "SUCCESS"))
        .await;
    // The unpaid job's gauge is set at the scheduler's next tick (1 s):
    // scrape until it is there.
    let deadline = Instant::now() + PATIENCE;
    let scrape = loop {
        let scrape = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("the scrape answers")
            .text()
            .await
            .expect("a text body");
        if scrape.contains("ecs_jobwatch_pending_payment_oldest_timestamp_seconds{") {
            break scrape;
        }
        assert!(Instant::now() < deadline, "no unpaid-job gauge:\n{scrape}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    daemon.stop_cleanly().await;
    let exported: BTreeSet<String> = scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect();

    let mut named = BTreeSet::new();
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "a query that names no metric: {expr}");
        named.extend(names);
    }
    let missing: Vec<&String> = named.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "dashboard queries name metrics the daemon does not export: {missing:?}\n{scrape}"
    );
}
