//! `ecs-jobwatch demo`: the bundled simulator on a free loopback port, the
//! daemon against it with a scripted, realistic set of jobs, human-readable
//! events as they happen, and a table at the end.
//!
//! Nothing here is special-cased in the daemon: the demo builds an ordinary
//! configuration (endpoint on loopback, credentials from an environment
//! snapshot, a temporary state directory) and calls [`daemon::run`].

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::Config;
use crate::daemon::{self, Control, RunOptions};
use crate::job::Service;
use crate::output::event::{self, Event};
use crate::output::log;
use crate::services;
use crate::sim::{self, Scenario};

/// The demo's scenario.
pub const SCENARIO: &str = include_str!("scenario.toml");

/// The demo gives up after this long (the contract promises under 60 s).
const DEMO_DEADLINE: Duration = Duration::from_secs(55);

/// What the demo learns about one job.
#[derive(Clone, Debug, Default)]
struct Outcome {
    final_status: Option<String>,
    announced_at: Option<Duration>,
}

/// Runs the demo; the exit code of the `demo` command.
pub fn main() -> ExitCode {
    if let Err(error) = log::init(log::Format::Brief, "info", &BTreeMap::new()) {
        eprintln!("ecs-jobwatch: {error:#}");
        return ExitCode::from(70);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ecs-jobwatch: cannot start the runtime: {error}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(demo()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ecs-jobwatch: demo failed: {error:#}");
            ExitCode::from(70)
        }
    }
}

async fn demo() -> anyhow::Result<()> {
    let scenario = Scenario::from_toml_str(SCENARIO)?;
    let credential = scenario
        .credentials
        .first()
        .ok_or_else(|| anyhow::anyhow!("the demo scenario has no credential"))?
        .clone();
    let project_id = scenario.project_id.clone().unwrap_or_default();
    // (the job as the watch list names it, its type, when it ends)
    let jobs: Vec<(String, String, Duration)> = scenario
        .jobs
        .iter()
        .map(|job| {
            let adapter = services::adapter(job.service);
            let done = job
                .timeline
                .iter()
                .find(|entry| adapter.status(&entry.status).is_final())
                .map_or(Duration::ZERO, |entry| entry.at);
            let key = match job.service {
                Service::Ecs => job.id.clone(),
                service => format!("{service}:{}", job.id),
            };
            (key, job.job_type.clone(), done)
        })
        .collect();

    let started = Instant::now();
    let sim = sim::spawn(scenario.clone()).await?;
    let state = tempfile::Builder::new()
        .prefix("ecs-jobwatch-demo")
        .tempdir()?;
    let ids: Vec<String> = jobs.iter().map(|(id, _, _)| format!("\"{id}\"")).collect();
    let config_text = format!(
        r#"[cloud]
endpoint = "{endpoint}/{{service}}"
project_id = "{project_id}"

[credentials]
source = "env"

[poll]
initial_interval = "1s"
max_interval = "4s"
pending_payment_interval = "3s"
not_found_grace = "20s"

[limits]
requests_per_second = 20
max_in_flight = 8
request_timeout = "5s"

[watch]
jobs = [{ids}]

[state]
dir = "{state}"

[log]
format = "text"
"#,
        endpoint = sim.base_url(),
        ids = ids.join(", "),
        state = state.path().display(),
    );
    let env: BTreeMap<String, String> = [
        (
            "HUAWEICLOUD_SDK_AK".to_string(),
            credential.access_key.clone(),
        ),
        (
            "HUAWEICLOUD_SDK_SK".to_string(),
            credential.secret_key.expose().to_string(),
        ),
    ]
    .into();
    let config = Config::from_toml_str(&config_text, "demo", &env)?;

    println!(
        "ecs-jobwatch demo: simulator on {}, {} jobs to watch",
        sim.base_url(),
        jobs.len()
    );
    println!();

    let outcomes: Arc<Mutex<BTreeMap<String, Outcome>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let (orders, control) = mpsc::channel(4);
    let (all_done_tx, mut all_done) = mpsc::channel::<()>(1);
    let observer = {
        let outcomes = outcomes.clone();
        let expected = jobs.len();
        move |event: &Event| {
            let Some(job) = event.job() else {
                return;
            };
            let job_id = job.key.to_string();
            let final_status = match event.name() {
                event::JOB_TRANSITION => event
                    .status()
                    .filter(|status| status.is_final())
                    .map(|status| status.as_str().to_string()),
                event::JOB_NOT_FOUND => Some("NOT_FOUND".to_string()),
                _ => None,
            };
            let Some(final_status) = final_status else {
                return;
            };
            let Ok(mut outcomes) = outcomes.lock() else {
                return;
            };
            outcomes.insert(
                job_id,
                Outcome {
                    final_status: Some(final_status),
                    announced_at: Some(started.elapsed()),
                },
            );
            if outcomes.len() == expected {
                let _ = all_done_tx.try_send(());
            }
        }
    };
    let options = RunOptions {
        config_path: None,
        env,
        observer: Some(Arc::new(observer)),
        ready: None,
    };
    let daemon = tokio::spawn(daemon::run(config, options, control));
    let finished_in_time = tokio::time::timeout(DEMO_DEADLINE, all_done.recv())
        .await
        .is_ok();
    let _ = orders.send(Control::Shutdown).await;
    daemon.await??;
    let stats = sim.stats();
    sim.shutdown().await;

    println!();
    println!(
        "{:<42} {:<24} {:<9} {:>5} {:>10}",
        "JOB", "JOB TYPE", "FINAL", "POLLS", "DETECTED"
    );
    let outcomes = outcomes.lock().map(|o| o.clone()).unwrap_or_default();
    for (id, job_type, done) in &jobs {
        let outcome = outcomes.get(id).cloned().unwrap_or_default();
        let polls = stats.jobs.get(id).map_or(0, |s| s.requests);
        let delay = outcome
            .announced_at
            .map(|at| format!("+{:.1} s", at.saturating_sub(*done).as_secs_f64()))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<42} {:<24} {:<9} {:>5} {:>10}",
            id,
            job_type,
            outcome.final_status.as_deref().unwrap_or("(none)"),
            polls,
            delay
        );
    }
    println!();
    println!(
        "{} API calls in {:.1} s, at most {} in any second; DETECTED is how long after the job \
         finished its final status was announced.",
        stats.requests_total,
        started.elapsed().as_secs_f64(),
        stats.max_requests_in_any_1s_window
    );
    if !finished_in_time {
        anyhow::bail!("not every job reached its final event within {DEMO_DEADLINE:?}");
    }
    Ok(())
}
