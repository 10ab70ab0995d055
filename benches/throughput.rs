//! End-to-end throughput: the release daemon polls thousands of RUNNING
//! jobs on the simulator over loopback, each in its own process, and the
//! benchmark reports polls per second, CPU time per poll of the daemon
//! process alone (user + system from `/proc/<pid>/stat`), its memory, and
//! whether the shared budget held in every one-second window (the
//! simulator's sliding-window maximum against `requests_per_second +
//! burst`).
//!
//! `cargo bench --bench throughput` runs the measured configurations
//! (about a minute); `-- --jobs N --rps R --window S` runs one of your
//! choice. Under `cargo test --all-targets` it only smoke-runs a tiny
//! configuration for a couple of seconds. Either way it exits 1 when a
//! configuration polled nothing in its window (a broken daemon, simulator
//! or benchmark must not print a table and pass).

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{Daemon, DaemonConfig, Sim};

struct Case {
    jobs: usize,
    requests_per_second: u32,
    burst: u32,
    warmup: Duration,
    window: Duration,
}

struct Outcome {
    polls: u64,
    polls_per_second: f64,
    cpu_us_per_poll: f64,
    daemon_cpu_percent: f64,
    sim_cpu_percent: f64,
    rss_kib: u64,
    hwm_kib: u64,
    max_in_1s: u64,
    throttled: u64,
}

fn run(case: &Case) -> Outcome {
    let dir = tempfile::tempdir().expect("temporary directory");
    let state_dir = dir.path().join("state");
    let watch_dir = dir.path().join("jobs.d");
    std::fs::create_dir(&state_dir).expect("state directory");
    std::fs::create_dir(&watch_dir).expect("watch directory");
    let sim = Sim::start(dir.path(), case.jobs);
    let mut watch = String::new();
    for n in 0..case.jobs {
        watch.push_str(&support::job_id(n));
        watch.push('\n');
    }
    std::fs::write(watch_dir.join("bench.jobs"), watch).expect("watch file");
    let config = DaemonConfig {
        endpoint: format!("http://{}", sim.addr),
        state_dir,
        watch_dir,
        requests_per_second: case.requests_per_second,
        burst: case.burst,
        max_in_flight: 64,
        interval: "1s",
        not_found_grace: "1h",
        log_level: "warn",
    };
    let config_path = dir.path().join("ecs-jobwatch.toml");
    std::fs::write(&config_path, config.text()).expect("configuration");
    let daemon = Daemon::start(&config_path, None);
    let pid = daemon.pid();

    std::thread::sleep(case.warmup);
    let (t0, cpu0, sim_cpu0, requests0) = (
        Instant::now(),
        support::cpu_time(pid),
        support::cpu_time(sim.child.id()),
        sim.requests(),
    );
    std::thread::sleep(case.window);
    let (t1, cpu1, sim_cpu1, requests1) = (
        Instant::now(),
        support::cpu_time(pid),
        support::cpu_time(sim.child.id()),
        sim.requests(),
    );
    let (rss_kib, hwm_kib) = support::memory_kib(pid);
    let stats = sim.stats();
    drop(daemon);

    let seconds = (t1 - t0).as_secs_f64();
    let polls = requests1.saturating_sub(requests0);
    let cpu = (cpu1 - cpu0).as_secs_f64();
    Outcome {
        polls,
        polls_per_second: polls as f64 / seconds,
        // Not a number when nothing was polled; `main` fails the run then.
        cpu_us_per_poll: cpu * 1e6 / polls as f64,
        daemon_cpu_percent: cpu * 100.0 / seconds,
        sim_cpu_percent: (sim_cpu1 - sim_cpu0).as_secs_f64() * 100.0 / seconds,
        rss_kib,
        hwm_kib,
        max_in_1s: stats["max_requests_in_any_1s_window"].as_u64().unwrap_or(0),
        throttled: stats["rejected_rate_limit"].as_u64().unwrap_or(0),
    }
}

fn arg(name: &str) -> Option<f64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() {
    let cases: Vec<Case> = if !support::full_run() {
        println!("throughput: smoke run only (use `cargo bench --bench throughput` to measure)");
        vec![Case {
            jobs: 50,
            requests_per_second: 100,
            burst: 10,
            warmup: Duration::from_millis(1500),
            window: Duration::from_secs(1),
        }]
    } else if let Some(jobs) = arg("--jobs") {
        vec![Case {
            jobs: jobs as usize,
            requests_per_second: arg("--rps").unwrap_or(2000.0) as u32,
            burst: arg("--burst").unwrap_or(50.0) as u32,
            warmup: Duration::from_secs(5),
            window: Duration::from_secs_f64(arg("--window").unwrap_or(20.0)),
        }]
    } else {
        [(5_000, 2_000), (5_000, 1_000), (1_000, 500)]
            .into_iter()
            .map(|(jobs, rps)| Case {
                jobs,
                requests_per_second: rps,
                burst: 50,
                warmup: Duration::from_secs(5),
                window: Duration::from_secs(20),
            })
            .collect()
    };
    println!("machine: {}", support::machine());
    println!();
    println!(
        "| jobs | budget (req/s, burst) | polls/s | CPU µs/poll (daemon) | daemon CPU | simulator CPU | daemon RSS (peak) | max requests in any 1 s | budget held |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut idle = 0;
    for case in &cases {
        let outcome = run(case);
        if outcome.polls == 0 {
            idle += 1;
        }
        let held = outcome.max_in_1s <= u64::from(case.requests_per_second + case.burst);
        println!(
            "| {} | {}, {} | {:.0} | {:.1} | {:.1} % | {:.1} % | {:.1} MiB ({:.1} MiB) | {} | {} |",
            case.jobs,
            case.requests_per_second,
            case.burst,
            outcome.polls_per_second,
            outcome.cpu_us_per_poll,
            outcome.daemon_cpu_percent,
            outcome.sim_cpu_percent,
            outcome.rss_kib as f64 / 1024.0,
            outcome.hwm_kib as f64 / 1024.0,
            outcome.max_in_1s,
            if held { "yes" } else { "**no**" },
        );
        if outcome.throttled > 0 {
            println!("(simulator rate-limited {} requests)", outcome.throttled);
        }
    }
    if idle > 0 {
        eprintln!("throughput: {idle} configuration(s) polled nothing in their window");
        std::process::exit(1);
    }
}
