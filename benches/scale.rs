//! Scale: the release daemon with 100,000 unfinished jobs in its state
//! store and a 100,000-line watch file. It reports the time from spawn to
//! `READY=1` (read on a `NOTIFY_SOCKET` of our own), the resident memory
//! per tracked job over a baseline run with no job, and the time to apply
//! a SIGHUP that switches to another 100,000-line watch file (half the ids
//! replaced): SIGHUP to `RELOADING=1`, to the next `READY=1` and to the
//! `daemon.reloaded` line.
//!
//! The simulator knows none of these jobs: they answer 404 and are retried
//! until `not_found_grace` (1 h), under a budget of 50 requests per second,
//! so polling stays a small load during the measurement.
//!
//! `cargo bench --bench scale` runs it (about a minute); `-- --jobs N`
//! changes the count. Under `cargo test --all-targets` it only smoke-runs
//! with 1,000 jobs. Either way it exits 1 when the work did not happen:
//! no `READY=1`, no resident memory read, or a reload that was not seen to
//! apply the new list (`jobs_tracked` other than the distinct count).

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use ecs_jobwatch::job::JobKey;
use ecs_jobwatch::job::id::JobId;
use ecs_jobwatch::store::{JobRecord, Store, Write};
use ecs_jobwatch::watch::Labels;
use support::{Daemon, DaemonConfig, NotifySocket, Sim};

const TIMEOUT: Duration = Duration::from_secs(120);

fn labels(n: usize, with_labels: bool) -> Labels {
    if !with_labels {
        return Labels::new();
    }
    Labels::from([
        ("team".to_string(), format!("team-{}", n % 10)),
        ("env".to_string(), "prod".to_string()),
    ])
}

fn line(n: usize, with_labels: bool) -> String {
    let mut line = support::job_id(n);
    for (key, value) in labels(n, with_labels) {
        line.push_str(&format!(" {key}={value}"));
    }
    line.push('\n');
    line
}

/// Records `jobs` unfinished, never-seen jobs in the store, as an earlier
/// run would have left them.
fn fill_store(state_dir: &Path, jobs: usize, with_labels: bool) {
    let mut store = Store::open(state_dir).expect("store opens");
    let now = ecs_jobwatch::store::now_ms();
    let ids: Vec<usize> = (0..jobs).collect();
    for chunk in ids.chunks(10_000) {
        let batch: Vec<Write> = chunk
            .iter()
            .map(|&n| {
                Write::Job(JobRecord {
                    key: JobKey::ecs(JobId::parse(&support::job_id(n)).expect("valid id")),
                    labels: labels(n, with_labels),
                    status: None,
                    job_type: None,
                    tracked_since: now - 60_000,
                    first_seen: None,
                    last_change: None,
                    last_poll: Some(now - 1_000),
                    next_poll: Some(now + 1_000),
                    polls: 3,
                    transitions: 0,
                    finished: false,
                    finished_at: None,
                    timeout_announced: false,
                })
            })
            .collect();
        store.apply(&batch).expect("batch recorded");
    }
}

struct Measured {
    ready: Duration,
    rss_kib: u64,
    hwm_kib: u64,
    reload: Option<Reload>,
}

struct Reload {
    reloading: Option<Duration>,
    ready: Option<Duration>,
    reloaded: Option<Duration>,
    reloaded_count: Option<u64>,
    expected_count: usize,
}

fn run(sim: &Sim, jobs: usize, with_labels: bool, settle: Duration) -> Measured {
    let dir = tempfile::tempdir().expect("temporary directory");
    let state_dir = dir.path().join("state");
    let watch_dir = dir.path().join("jobs.d");
    std::fs::create_dir(&state_dir).expect("state directory");
    std::fs::create_dir(&watch_dir).expect("watch directory");
    if jobs > 0 {
        fill_store(&state_dir, jobs, with_labels);
        let text: String = (0..jobs).map(|n| line(n, with_labels)).collect();
        std::fs::write(watch_dir.join("bench.jobs"), text).expect("watch file");
    }
    let mut config = DaemonConfig {
        endpoint: format!("http://{}", sim.addr),
        state_dir,
        watch_dir,
        requests_per_second: 50,
        burst: 1,
        max_in_flight: 64,
        interval: "1s",
        not_found_grace: "1h",
        // `daemon.reloaded` is an info event.
        log_level: "info",
    };
    let config_path = dir.path().join("ecs-jobwatch.toml");
    std::fs::write(&config_path, config.text()).expect("configuration");
    let notify = NotifySocket::bind(dir.path());
    let daemon = Daemon::start(&config_path, Some(&notify.path));
    let ready_at = notify
        .await_state("READY=1", TIMEOUT)
        .expect("the daemon sends READY=1");
    let ready = ready_at - daemon.spawned;
    std::thread::sleep(settle);
    let (rss_kib, hwm_kib) = support::memory_kib(daemon.pid());
    if jobs == 0 {
        return Measured {
            ready,
            rss_kib,
            hwm_kib,
            reload: None,
        };
    }

    // Another directory with another 100,000-line file: ids from jobs / 2
    // on, so half of them are new, and the last 1 % of the lines repeat
    // earlier ones (identical duplicates count once), so the count in
    // `daemon.reloaded` tells whether the new list was applied. The
    // configuration is switched to it, so the periodic scan of the old
    // directory cannot apply it first.
    let distinct = jobs - jobs / 100;
    let first = jobs / 2;
    let mut text: String = (first..first + distinct)
        .map(|n| line(n, with_labels))
        .collect();
    text.extend((first..first + jobs / 100).map(|n| line(n, with_labels)));
    let new_dir = dir.path().join("jobs2.d");
    std::fs::create_dir(&new_dir).expect("second watch directory");
    std::fs::write(new_dir.join("bench.jobs"), text).expect("second watch file");
    config.watch_dir = new_dir;
    std::fs::write(&config_path, config.text()).expect("configuration");
    // Drop what the daemon printed so far.
    while daemon.lines.try_recv().is_ok() {}
    let sent = Instant::now();
    support::signal(daemon.pid(), "HUP");
    let reloading = notify.await_state("RELOADING=1", TIMEOUT);
    let ready_again = notify.await_state("READY=1", TIMEOUT);
    let reloaded = daemon.await_event("daemon.reloaded", TIMEOUT);
    Measured {
        ready,
        rss_kib,
        hwm_kib,
        reload: Some(Reload {
            reloading: reloading.map(|at| at - sent),
            ready: ready_again.map(|at| at - sent),
            reloaded: reloaded.as_ref().map(|(at, _)| *at - sent),
            reloaded_count: reloaded.and_then(|(_, value)| value["jobs_tracked"].as_u64()),
            expected_count: distinct,
        }),
    }
}

fn ms(duration: Option<Duration>) -> String {
    duration.map_or("none".to_string(), |d| {
        format!("{:.0} ms", d.as_secs_f64() * 1000.0)
    })
}

fn main() {
    let full = support::full_run();
    let jobs = if full {
        std::env::args()
            .skip_while(|a| a != "--jobs")
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000)
    } else {
        println!("scale: smoke run only (use `cargo bench --bench scale` to measure)");
        1_000
    };
    let settle = if full {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(200)
    };
    println!("machine: {}", support::machine());
    let dir = tempfile::tempdir().expect("temporary directory");
    let sim = Sim::start(dir.path(), 0);
    let baseline = run(&sim, 0, false, settle);
    println!();
    println!(
        "| jobs (store + watch file) | labels per job | spawn → READY=1 | RSS (peak) | RSS per job over baseline | SIGHUP → RELOADING=1 | SIGHUP → READY=1 | SIGHUP → daemon.reloaded | jobs_tracked after reload |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| 0 (baseline) | - | {} | {:.1} MiB ({:.1} MiB) | - | - | - | - | - |",
        ms(Some(baseline.ready)),
        baseline.rss_kib as f64 / 1024.0,
        baseline.hwm_kib as f64 / 1024.0
    );
    let variants: &[bool] = if full { &[false, true] } else { &[false] };
    let mut failures = Vec::new();
    if baseline.rss_kib == 0 {
        failures.push("the baseline daemon's memory could not be read".to_string());
    }
    for &with_labels in variants {
        let measured = run(&sim, jobs, with_labels, settle);
        let per_job =
            (measured.rss_kib.saturating_sub(baseline.rss_kib)) as f64 * 1024.0 / jobs as f64;
        let reload = measured.reload.as_ref().expect("a reload was measured");
        let count = match reload.reloaded_count {
            Some(count) if count as usize == reload.expected_count => format!("{count}"),
            Some(count) => format!("**{count}** (expected {})", reload.expected_count),
            None => "none".to_string(),
        };
        if reload.reloaded_count != Some(reload.expected_count as u64) {
            failures.push(format!(
                "labels {with_labels}: jobs_tracked after the reload is {count}, not {}",
                reload.expected_count
            ));
        }
        if measured.rss_kib == 0 {
            failures.push(format!("labels {with_labels}: no memory read"));
        }
        println!(
            "| {jobs} | {} | {} | {:.1} MiB ({:.1} MiB) | {:.0} B | {} | {} | {} | {count} |",
            if with_labels { 2 } else { 0 },
            ms(Some(measured.ready)),
            measured.rss_kib as f64 / 1024.0,
            measured.hwm_kib as f64 / 1024.0,
            per_job,
            ms(reload.reloading),
            ms(reload.ready),
            ms(reload.reloaded),
        );
    }
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("scale: {failure}");
        }
        std::process::exit(1);
    }
}
