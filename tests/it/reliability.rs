//! Reliability: the daemon under a hostile API (the fault matrix), under
//! `kill -9` at random moments (crash consistency), on a bad or full disk,
//! against a second daemon on the same state, and with every error path
//! run at `log.level = "debug"` without a secret in its output.
//!
//! Disk tests mount small tmpfs file systems (the tests run as root here
//! and in CI), so a full disk is a real `ENOSPC` and a read-only one a real
//! `EROFS`. Where tmpfs cannot be mounted, a disk test is skipped visibly
//! (`harness::require`), which fails the run under CI or `REQUIRE_TOOLS=1`;
//! nothing falls back to a different error.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ecs_jobwatch::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tempfile::TempDir;

use crate::daemon::check_common_fields;
use crate::harness::{AK, Finished, Match, SK, Setup, dump, jobs, require, sim};

/// How a job of a plan ends.
#[derive(Clone, Debug, PartialEq)]
enum End {
    /// Its last `job.transition` is into this status.
    Status(String),
    /// It is announced by `job.not_found`.
    NotFound,
}

/// One job of a plan: its `[[job]]` table and how it ends.
#[derive(Clone, Debug)]
struct Planned {
    id: String,
    table: String,
    end: End,
    /// A sub-job that ends in FAIL (a `job.subjob_failed` is due).
    failed_sub_job: Option<String>,
}

impl Planned {
    /// The event that announces the end.
    fn end_match(&self) -> Match {
        match &self.end {
            End::Status(status) => Match::transition(&self.id, status),
            End::NotFound => Match::event("job.not_found").with("job_id", self.id.as_str()),
        }
    }
}

fn timeline(entries: &[(u64, &str)]) -> String {
    let entries: Vec<String> = entries
        .iter()
        .map(|(at, status)| {
            let extra = if *status == "FAIL" {
                ", error_code = \"Ecs.0013\", fail_reason = \"insufficient EIP quota\""
            } else {
                ""
            };
            format!("{{ at = \"{at}ms\", status = \"{status}\"{extra} }}")
        })
        .collect();
    format!("[ {} ]", entries.join(", "))
}

fn table(id: &str, entries: &[(u64, &str)], extra: &str) -> String {
    format!(
        "[[job]]\nid = \"{id}\"\njob_type = \"createServer\"\n{extra}timeline = {}\n\n",
        timeline(entries)
    )
}

fn failed_sub_job(sub_id: &str, end: u64) -> String {
    format!(
        "[[job.sub_job]]\nid = \"{sub_id}\"\njob_type = \"createSingleServer\"\n\
         server_id = \"srv-{sub_id}\"\nerrorcode_message = \"EIP quota exceeded\"\n\
         timeline = {}\n\n",
        timeline(&[(0, "RUNNING"), (end.saturating_sub(500), "FAIL")])
    )
}

fn plain(id: String, entries: &[(u64, &str)], end: &str) -> Planned {
    Planned {
        table: table(&id, entries, ""),
        id,
        end: End::Status(end.to_string()),
        failed_sub_job: None,
    }
}

fn failing_with_sub_job(id: String, end: u64) -> Planned {
    let sub_id = format!("{id}-sub");
    Planned {
        table: format!(
            "{}{}",
            table(&id, &[(0, "RUNNING"), (end, "FAIL")], ""),
            failed_sub_job(&sub_id, end)
        ),
        id,
        end: End::Status("FAIL".into()),
        failed_sub_job: Some(sub_id),
    }
}

/// The 200 jobs of the fault matrix: quick successes, failures with a
/// failed sub-job, RUNNING → SUCCESS at 2 to 12 s (the 2 to 20 s,
/// shortened to keep the run under a minute), PENDING_PAYMENT →
/// RUNNING → SUCCESS, jobs that vanish after being seen, and unknown
/// statuses (one that stays, one on the way to FAIL).
fn fault_matrix_plan() -> Vec<Planned> {
    (0..200u64)
        .map(|n| {
            let id = format!("fm-{n:03}");
            let end = 2_000 + (n * 937) % 10_000;
            match n % 10 {
                0..=2 => plain(id, &[(0, "SUCCESS")], "SUCCESS"),
                3 => failing_with_sub_job(id, end),
                4..=7 => plain(id, &[(0, "RUNNING"), (end, "SUCCESS")], "SUCCESS"),
                8 if n % 20 == 8 => {
                    let paid = 2_000 + (n % 5) * 1_000;
                    plain(
                        id,
                        &[
                            (0, "PENDING_PAYMENT"),
                            (paid, "RUNNING"),
                            (paid + 4_000, "SUCCESS"),
                        ],
                        "SUCCESS",
                    )
                }
                8 => plain(
                    id,
                    &[(0, "RUNNING"), (end, "MIGRATING_SOMEWHERE")],
                    "MIGRATING_SOMEWHERE",
                ),
                9 if n % 50 == 9 => Planned {
                    table: table(&id, &[(0, "RUNNING")], "vanish_after = \"8s\"\n"),
                    id,
                    end: End::NotFound,
                    failed_sub_job: None,
                },
                _ => plain(
                    id,
                    &[(0, "RUNNING"), (end, "ROLLING_BACK"), (end + 2_000, "FAIL")],
                    "FAIL",
                ),
            }
        })
        .collect()
}

fn timestamp_ms(event: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap_or_default())
        .unwrap_or_else(|error| panic!("timestamp of {event}: {error}"))
        .timestamp_millis()
}

/// Checks each planned job's end against the events: the end is
/// announced, the last transition is into the planned status, and a
/// failed sub-job is announced.
fn check_ends(plan: &[Planned], events: &[Value]) {
    for job in plan {
        assert!(
            !job.end_match().all(events).is_empty(),
            "{} never announced its end {:?}",
            job.id,
            job.end
        );
        let transitions = Match::event("job.transition")
            .with("job_id", job.id.as_str())
            .all(events);
        match &job.end {
            End::Status(status) => {
                let last = transitions.last().expect("a transition");
                assert_eq!(last["status"], status.as_str(), "{}", job.id);
                let level = match status.as_str() {
                    "FAIL" => "ERROR",
                    "PENDING_PAYMENT" => "WARN",
                    _ => "INFO",
                };
                assert_eq!(last["level"], level, "{last}");
            }
            End::NotFound => {
                let announced = &job.end_match().all(events)[0];
                // Seen RUNNING before it vanished, or (when every early poll
                // met a fault) never seen at all.
                assert!(
                    announced["last_status"] == "RUNNING" || announced["last_status"].is_null(),
                    "{announced}"
                );
                for transition in transitions {
                    assert_eq!(transition["status"], "RUNNING", "{transition}");
                }
            }
        }
        if let Some(sub_id) = &job.failed_sub_job {
            let failed = Match::event("job.subjob_failed")
                .with("job_id", job.id.as_str())
                .with("sub_job_id", sub_id.as_str())
                .all(events);
            assert!(
                !failed.is_empty(),
                "{}: sub-job failure not announced",
                job.id
            );
        }
    }
}

/// Consecutive `api.error` lines of one `error_type` are at least 10 s
/// apart by the daemon's own timestamps.
fn check_api_error_rate(events: &[Value]) -> BTreeMap<String, usize> {
    let mut by_type: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for event in Match::event("api.error").all(events) {
        by_type
            .entry(event["error_type"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(timestamp_ms(event));
    }
    for (error_type, times) in &by_type {
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= 10_000,
                "two api.error lines of type {error_type} {} ms apart",
                pair[1] - pair[0]
            );
        }
    }
    by_type
        .into_iter()
        .map(|(error_type, times)| (error_type, times.len()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fault_matrix_200_jobs_every_final_status_announced_within_budget() {
    // The budget must be what limits the calls, or its check cannot fail:
    // 200 jobs polled every 1 to 2 s ask for 100 to 200 calls a second, and
    // 64 calls in flight at 0 to 300 ms each could make about 400, so 40/s
    // binds. Throttling would hold the rate far below the budget (each 429
    // halves it, down to 1/16), so the 10 % of 429s come in a window from
    // 8 s to 14 s only; before it the run goes at the budget, which the
    // assertions below show (the busiest second reaches it) and check (it
    // never goes past it).
    const RPS: u64 = 40;
    const BURST: u64 = 1;
    let plan = fault_matrix_plan();
    // The latency is 0 to 800 ms; 0 to 300 ms keeps the run well
    // under a minute on two shared cores, with every fault kind kept.
    let faults = "[[fault]]\nkind = \"server_error\"\nprobability = 0.15\n\n\
         [[fault]]\nkind = \"throttle\"\nprobability = 0.10\nretry_after = \"1s\"\n\
         from = \"8s\"\nuntil = \"14s\"\n\n\
         [[fault]]\nkind = \"truncate\"\nprobability = 0.05\n\n\
         [[fault]]\nkind = \"drop\"\nprobability = 0.05\n\n\
         [[fault]]\nkind = \"latency\"\nlatency = [\"0ms\", \"300ms\"]\n\n";
    let tables: String = plan.iter().map(|job| job.table.as_str()).collect();
    let sim = sim(&format!("{tables}{faults}")).await;
    let ids: Vec<&str> = plan.iter().map(|job| job.id.as_str()).collect();
    let setup = Setup::new(&sim)
        .watch(&ids)
        .set("limits.requests_per_second", RPS as i64)
        .set("limits.burst", BURST as i64)
        .set("limits.max_in_flight", 64)
        .set("limits.request_timeout", "2s")
        .set("poll.pending_payment_interval", "2s");
    let mut daemon = setup.start().await;
    for job in &plan {
        daemon.await_event(&job.end_match()).await;
        if let Some(sub_id) = &job.failed_sub_job {
            daemon
                .await_event(
                    &Match::event("job.subjob_failed")
                        .with("job_id", job.id.as_str())
                        .with("sub_job_id", sub_id.as_str()),
                )
                .await;
        }
    }
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    check_ends(&plan, &run.events);
    let stats = sim.stats();
    let busiest = stats.max_requests_in_any_1s_window;
    assert!(
        busiest <= budget_ceiling(RPS, BURST),
        "budget exceeded: {busiest} requests in one second"
    );
    assert!(
        busiest >= RPS * 3 / 4,
        "the budget was never reached ({busiest} in the busiest second), so its check proves nothing"
    );
    assert!(
        stats.faults_injected.get("throttle").copied().unwrap_or(0) >= 1,
        "{stats:?}"
    );
    let lines = check_api_error_rate(&run.events);
    // Each fact once: the run never restarted, so nothing repeats.
    let mut seen = BTreeSet::new();
    for event in &run.events {
        if let Some(id) = event["event_id"].as_str() {
            assert!(seen.insert(id.to_string()), "announced twice: {event}");
        }
    }
    eprintln!(
        "fault matrix: {} requests, faults {:?}, max {} in 1 s, api.error lines {lines:?}",
        stats.requests_total, stats.faults_injected, stats.max_requests_in_any_1s_window
    );
}

/// The most requests the simulator may count in one second under a budget
/// of `rps` with `burst`: the limiter grants at most `rps + burst` in any
/// second on the daemon's clock, and the simulator counts on arrival, so a
/// request granted just before a window and delayed on its way (two shared
/// cores) may land inside it. One request of slack per 50 ms of such
/// delay at `rps`, rounded up, is allowed.
pub fn budget_ceiling(rps: u64, burst: u64) -> u64 {
    rps + burst + (rps * 50).div_ceil(1000)
}

/// The state directory of a setup.
fn state_dir(setup: &Setup) -> PathBuf {
    setup
        .config_path()
        .parent()
        .expect("the configuration is in the temporary directory")
        .join("state")
}

fn check_integrity(dir: &Path) {
    let store = Store::open_read_only(dir).expect("the state database opens read-only");
    assert_eq!(store.integrity_check().expect("integrity_check runs"), "ok");
}

/// Groups events named `event` by the fields `keys` and checks that each
/// group carries exactly one `event_id`.
fn check_one_event_id_per_fact(events: &[Value], event: &str, keys: &[&str]) -> usize {
    let mut groups: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for found in Match::event(event).all(events) {
        let key = keys
            .iter()
            .map(|key| found[*key].as_str().unwrap_or_default().to_string())
            .collect();
        groups
            .entry(key)
            .or_default()
            .insert(found["event_id"].as_str().unwrap_or_default().to_string());
    }
    for (key, ids) in &groups {
        assert_eq!(
            ids.len(),
            1,
            "{event} {key:?} announced with different event_ids: {ids:?}"
        );
    }
    groups.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_consistency_kill_9_during_writes_and_reloads_300_jobs() {
    const JOBS: u64 = 300;
    const ROUNDS: usize = 10;
    const RELOAD_ROUNDS: [usize; 3] = [2, 5, 8];
    let seed: u64 = std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash consistency: seed {seed} (set RELIABILITY_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);

    // Ends at 2 s to 32 s; every seventh job fails on a sub-job.
    let plan: Vec<Planned> = (0..JOBS)
        .map(|n| {
            let id = format!("cc-{n:03}");
            let end = 2_000 + n * 100;
            if n % 7 == 3 {
                failing_with_sub_job(id, end)
            } else {
                plain(id, &[(0, "RUNNING"), (end, "SUCCESS")], "SUCCESS")
            }
        })
        .collect();
    let sim = sim("").await;
    // The last 20 come from a watch file; the reload rounds add to it.
    let (in_config, in_file) = plan.split_at(280);
    let config_ids: Vec<&str> = in_config.iter().map(|job| job.id.as_str()).collect();
    let file_line = |job: &Planned| format!("{} round=crash\n", job.id);
    let setup = Setup::new(&sim)
        .watch(&config_ids)
        .watch_file(
            "crash.jobs",
            &in_file[..10].iter().map(file_line).collect::<String>(),
        )
        .set("limits.requests_per_second", 100);
    let watch_file = setup.watch_dir().join("crash.jobs");
    let mut pending_file_lines: Vec<String> = in_file[10..].iter().map(file_line).collect();
    sim.add_jobs(jobs(
        &plan
            .iter()
            .map(|job| job.table.as_str())
            .collect::<String>(),
    ));
    let dir = state_dir(&setup);

    let mut runs: Vec<Finished> = Vec::new();
    for round in 0..ROUNDS {
        let mut daemon = setup.start().await;
        daemon.await_event(&Match::event("daemon.started")).await;
        // A random moment to die at is the point of this test, not a wait
        // for a result.
        let delay = rng.random_range(300..=2_500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if RELOAD_ROUNDS.contains(&round) {
            let take = pending_file_lines.len().min(4);
            let lines: String = pending_file_lines.drain(..take).collect();
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&watch_file)
                .expect("the watch file opens");
            file.write_all(lines.as_bytes())
                .expect("watch file appended");
            drop(file);
            let status = std::process::Command::new("kill")
                .args(["-HUP", &daemon.pid().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success());
            let during = rng.random_range(0..=30);
            tokio::time::sleep(Duration::from_millis(during)).await;
            eprintln!("round {round}: SIGHUP, then kill -9 {during} ms later");
        } else {
            eprintln!("round {round}: kill -9 after {delay} ms");
        }
        let run = daemon.kill9().await;
        assert_eq!(
            run.code, None,
            "the daemon died of the signal: {}",
            run.stderr
        );
        check_integrity(&dir);
        runs.push(run);
    }
    // Whatever the reloads did not add yet comes in now.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&watch_file)
        .expect("the watch file opens");
    file.write_all(pending_file_lines.concat().as_bytes())
        .expect("watch file appended");
    drop(file);

    let mut last = setup.start().await;
    for job in &plan {
        let earlier = runs
            .iter()
            .any(|run| !job.end_match().all(&run.events).is_empty());
        if !earlier {
            last.await_event(&job.end_match()).await;
        }
    }
    let last = last.stop_cleanly().await;
    check_common_fields(&last);
    runs.push(last);

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
    let all: Vec<Value> = runs.iter().flat_map(|run| run.events.clone()).collect();
    for job in &plan {
        assert!(
            !job.end_match().all(&all).is_empty(),
            "{} {:?} never announced",
            job.id,
            job.end
        );
        if let Some(sub_id) = &job.failed_sub_job {
            assert!(
                !Match::event("job.subjob_failed")
                    .with("job_id", job.id.as_str())
                    .with("sub_job_id", sub_id.as_str())
                    .all(&all)
                    .is_empty(),
                "{}: sub-job failure never announced",
                job.id
            );
        }
    }
    let transitions = check_one_event_id_per_fact(&all, "job.transition", &["job_id", "status"]);
    let sub_jobs =
        check_one_event_id_per_fact(&all, "job.subjob_failed", &["job_id", "sub_job_id"]);
    let repeated = Match::event("job.transition").all(&all).len() - transitions;
    eprintln!(
        "crash consistency: {} runs, {transitions} transition facts ({repeated} repeated), {sub_jobs} sub-job facts",
        runs.len()
    );
    check_integrity(&dir);
}

// ---------------------------------------------------------------------
// The disk.

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options`, or says why not.
    fn mount(options: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|error| error.to_string())?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|error| format!("mount: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs -o {options}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn path_str(&self) -> &str {
        self.path().to_str().expect("UTF-8 temp path")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system of `dir` with `dir/filler` until it is full.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("the filler file is created");
    let chunk = vec![0xa5u8; 16 * 1024];
    loop {
        if let Err(error) = file.write_all(&chunk) {
            assert_eq!(
                error.raw_os_error(),
                Some(28),
                "filling {}: {error}",
                dir.display()
            );
            break;
        }
    }
    // Also the last partial page.
    while file.write_all(&[0u8; 512]).is_ok() {}
    path
}

fn check_one_line_naming(stderr: &str, path: &Path) {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr:?}");
    assert!(
        lines[0].contains(path.to_str().expect("UTF-8 path")),
        "the message names {}: {stderr:?}",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_missing_state_dir_parent_exits_73_naming_it() {
    let sim = sim("").await;
    let missing = tempfile::tempdir().expect("temporary directory");
    let missing = missing.path().join("no-such-parent").join("state");
    let setup = Setup::new(&sim)
        .watch(&["job-1"])
        .set("state.dir", missing.to_str().expect("UTF-8 temp path"));
    let output = setup.cli(&["run"]).await;
    assert_eq!(output.code, Some(73), "{output:?}");
    check_one_line_naming(&output.stderr, &missing);
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_read_only_state_dir_exits_74_naming_it() {
    let Some(mount) = require(Tmpfs::mount("ro,size=1m"), "a read-only tmpfs mount") else {
        return;
    };
    let sim = sim("").await;
    let setup = Setup::new(&sim)
        .watch(&["job-1"])
        .set("state.dir", mount.path_str());
    let output = setup.cli(&["run"]).await;
    assert_eq!(output.code, Some(74), "{output:?}");
    check_one_line_naming(&output.stderr, mount.path());
    eprintln!(
        "read-only state dir (tmpfs -o ro): {}",
        output.stderr.trim()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_full_at_start_exits_74_naming_it() {
    let Some(mount) = require(Tmpfs::mount("size=1m"), "a tmpfs mount") else {
        return;
    };
    fill(mount.path());
    let sim = sim("").await;
    let setup = Setup::new(&sim)
        .watch(&["job-1"])
        .set("state.dir", mount.path_str());
    let output = setup.cli(&["run"]).await;
    assert_eq!(output.code, Some(74), "{output:?}");
    check_one_line_naming(&output.stderr, mount.path());
    assert!(
        output.stderr.contains("No space left on device"),
        "the cause is ENOSPC: {output:?}"
    );
}

/// A filler file on a small tmpfs that holds the state: `fill` makes the
/// disk full (ENOSPC), `free` gives the room back.
struct Full {
    _mount: Tmpfs,
    dir: PathBuf,
}

impl Full {
    fn state_dir(&self) -> &Path {
        &self.dir
    }

    fn fill(&self) {
        fill(&self.dir);
    }

    fn free(&self) {
        std::fs::remove_file(self.dir.join("filler")).expect("the filler is removed");
    }
}

/// The state on an 8 MiB tmpfs, or `None` after a visible skip.
fn small_disk(setup: Setup) -> Option<(Setup, Full)> {
    let mount = require(Tmpfs::mount("size=8m"), "a tmpfs mount")?;
    let dir = mount.path().to_path_buf();
    let setup = setup.set("state.dir", mount.path_str());
    Some((setup, Full { _mount: mount, dir }))
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_full_at_run_time_holds_announcements_back_until_recorded() {
    let early: Vec<String> = (0..4).map(|n| format!("early-{n}")).collect();
    let steady = ["steady-1", "steady-2"];
    let late: Vec<String> = (0..6).map(|n| format!("late-{n}")).collect();
    let tables: String = early
        .iter()
        .map(|id| table(id, &[(0, "SUCCESS")], ""))
        .chain(steady.iter().map(|id| table(id, &[(0, "RUNNING")], "")))
        .collect();
    let sim = sim(&tables).await;
    let ids: Vec<&str> = early
        .iter()
        .map(String::as_str)
        .chain(steady)
        .chain(late.iter().map(String::as_str))
        .collect();
    let setup = Setup::new(&sim)
        .watch(&ids)
        .set("poll.not_found_grace", "10m");
    let Some((setup, full)) = small_disk(setup) else {
        return;
    };
    let mut daemon = setup.start().await;
    for id in &early {
        daemon.await_event(&Match::transition(id, "SUCCESS")).await;
    }
    for id in steady {
        daemon.await_event(&Match::transition(id, "RUNNING")).await;
    }

    full.fill();
    let error = daemon.await_event(&Match::event("state.error")).await;
    assert_eq!(error["level"], "ERROR", "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .contains(full.state_dir().to_str().expect("UTF-8")),
        "the error names the database: {error}"
    );

    // Jobs end while nothing can be recorded.
    let late_plan: Vec<Planned> = late
        .iter()
        .enumerate()
        .map(|(n, id)| match n % 3 {
            0 => plain(id.clone(), &[(0, "SUCCESS")], "SUCCESS"),
            1 => plain(id.clone(), &[(0, "FAIL")], "FAIL"),
            _ => failing_with_sub_job(id.clone(), 500),
        })
        .collect();
    let before = sim.stats();
    sim.add_jobs(jobs(
        &late_plan
            .iter()
            .map(|job| job.table.as_str())
            .collect::<String>(),
    ));
    // Polling goes on: every late job is answered with its final status
    // several times, and the steady jobs are still polled.
    sim.await_stats("late jobs polled in their final status", |stats| {
        late_plan.iter().all(|job| {
            // The simulator counts a job's requests from its adding on.
            stats.jobs.get(&job.id).is_some_and(|now| {
                now.requests >= 4
                    && now.first_served.contains_key(match &job.end {
                        End::Status(status) => status.as_str(),
                        End::NotFound => unreachable!(),
                    })
            })
        }) && steady
            .iter()
            .all(|id| stats.jobs[*id].requests >= before.jobs[*id].requests + 3)
    })
    .await;
    let _ = daemon
        .next_event_within(&Match::event("no.such.event"), Duration::from_millis(300))
        .await;
    for job in &late_plan {
        let announced: Vec<&Value> = daemon
            .events
            .iter()
            .filter(|event| event["job_id"] == job.id.as_str())
            .collect();
        assert!(
            announced.is_empty(),
            "announced while the disk was full: {announced:?}"
        );
    }

    full.free();
    for job in &late_plan {
        daemon.await_event(&job.end_match()).await;
        if let Some(sub_id) = &job.failed_sub_job {
            daemon
                .await_event(
                    &Match::event("job.subjob_failed")
                        .with("job_id", job.id.as_str())
                        .with("sub_job_id", sub_id.as_str()),
                )
                .await;
        }
    }
    let run = daemon.stop_cleanly().await;
    check_common_fields(&run);
    check_ends(&late_plan, &run.events);
    let mut seen = BTreeSet::new();
    for event in &run.events {
        if let Some(id) = event["event_id"].as_str() {
            assert!(seen.insert(id.to_string()), "announced twice: {event}");
        }
    }
    for id in early.iter().chain(&late) {
        let facts = Match::event("job.transition")
            .with("job_id", id.as_str())
            .all(&run.events);
        assert_eq!(facts.len(), 1, "{id}: {}", dump(&run.events));
    }
    check_integrity(full.state_dir());
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_full_at_run_time_still_stops_on_sigterm() {
    let sim = sim(&table("steady-1", &[(0, "RUNNING")], "")).await;
    let setup = Setup::new(&sim).watch(&["steady-1"]);
    let Some((setup, full)) = small_disk(setup) else {
        return;
    };
    let mut daemon = setup.start().await;
    daemon
        .await_event(&Match::transition("steady-1", "RUNNING"))
        .await;
    full.fill();
    daemon.await_event(&Match::event("state.error")).await;
    let run = daemon.stop().await;
    check_common_fields(&run);
    assert!(
        !Match::event("daemon.stopping").all(&run.events).is_empty(),
        "{}",
        dump(&run.events)
    );
    eprintln!(
        "stopped on a full disk with {:?}: {}",
        run.code,
        run.stderr.trim()
    );
    assert_eq!(run.code, Some(74), "{}", run.stderr);
    check_one_line_naming(&run.stderr, full.state_dir());
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_second_daemon_on_the_same_state_exits_75() {
    let sim = sim(&format!(
        "{}{}",
        table("job-1", &[(0, "RUNNING"), (6_000, "SUCCESS")], ""),
        table("job-2", &[(0, "RUNNING")], "")
    ))
    .await;
    let setup = Setup::new(&sim).watch(&["job-1", "job-2"]);
    let mut first = setup.start().await;
    first
        .await_event(&Match::transition("job-1", "RUNNING"))
        .await;
    let second = setup.cli(&["run"]).await;
    assert_eq!(second.code, Some(75), "{second:?}");
    let dir = state_dir(&setup);
    check_one_line_naming(&second.stderr, &dir);
    assert!(
        second.stderr.contains("in use") || second.stderr.contains("lock"),
        "{second:?}"
    );
    // The first goes on.
    first
        .await_event(&Match::transition("job-1", "SUCCESS"))
        .await;
    let run = first.stop_cleanly().await;
    check_common_fields(&run);
    check_integrity(&dir);
}

// ---------------------------------------------------------------------
// Secrets.

const TOKEN_AK: &str = "ITAK00000000000000000002";
const TOKEN_SK: &str = "it-secret-key-00000000000000000000000002";
const TOKEN: &str = "it-security-token-0000000000000000000000000000000000000002";
const FORBIDDEN_AK: &str = "ITAK00000000000000000003";
const FORBIDDEN_SK: &str = "it-secret-key-00000000000000000000000003";
const WRONG_SK: &str = "it-wrong-secret-key-0000000000000000000009";

fn secret_credentials() -> String {
    format!(
        "[[credential]]\naccess_key = \"{TOKEN_AK}\"\nsecret_key = \"{TOKEN_SK}\"\n\
         security_token = \"{TOKEN}\"\n\n\
         [[credential]]\naccess_key = \"{FORBIDDEN_AK}\"\nsecret_key = \"{FORBIDDEN_SK}\"\n\
         forbidden = true\n\n"
    )
}

/// Everything one run printed, for the audit.
struct Printed {
    what: String,
    text: String,
}

impl Printed {
    fn run(what: &str, run: &Finished) -> Printed {
        Printed {
            what: what.to_string(),
            text: format!(
                "{}\n{}\n{}",
                dump(&run.events),
                run.bad_lines.concat(),
                run.stderr
            ),
        }
    }
}

fn audit(printed: &[Printed]) {
    let secrets = [
        AK,
        SK,
        TOKEN_AK,
        TOKEN_SK,
        TOKEN,
        FORBIDDEN_AK,
        FORBIDDEN_SK,
        WRONG_SK,
        "Signature=",
    ];
    for printed in printed {
        assert!(
            !printed.text.trim().is_empty() || printed.what.starts_with("quiet"),
            "{} printed nothing",
            printed.what
        );
        for secret in secrets {
            assert!(
                !printed.text.contains(secret),
                "{} printed {secret:?}:\n{}",
                printed.what,
                printed.text
            );
        }
    }
}

fn debug_setup(setup: Setup) -> Setup {
    setup
        .set("log.level", "debug")
        .env("HUAWEICLOUD_SDK_AK", TOKEN_AK)
        .env("HUAWEICLOUD_SDK_SK", TOKEN_SK)
        .env("HUAWEICLOUD_SDK_SECURITY_TOKEN", TOKEN)
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_audit_every_error_path_at_debug_prints_no_secret() {
    let mut printed = Vec::new();
    let faults = "[[fault]]\nkind = \"server_error\"\nprobability = 0.1\n\n\
         [[fault]]\nkind = \"throttle\"\nprobability = 0.05\nretry_after = \"1s\"\n\n\
         [[fault]]\nkind = \"throttle_202\"\nprobability = 0.1\n\n\
         [[fault]]\nkind = \"truncate\"\nprobability = 0.05\n\n\
         [[fault]]\nkind = \"drop\"\nprobability = 0.05\n\n\
         [[fault]]\nkind = \"client_error\"\nprobability = 0.1\n\n\
         [[fault]]\nkind = \"latency\"\nprobability = 0.3\nlatency = [\"0ms\", \"200ms\"]\n\n\
         [[fault]]\nkind = \"latency\"\njobs = [\"slow-1\"]\nlatency = [\"1500ms\", \"1600ms\"]\n\n";
    // Steady jobs keep requests, and so faults, coming.
    let steady: Vec<String> = (0..10).map(|n| format!("steady-{n}")).collect();
    let tables = format!(
        "{}{}{}{}{}{}{faults}",
        steady
            .iter()
            .map(|id| table(id, &[(0, "RUNNING")], ""))
            .collect::<String>(),
        secret_credentials(),
        table("ok-1", &[(0, "RUNNING"), (3_000, "SUCCESS")], ""),
        failing_with_sub_job("fail-1".into(), 2_000).table,
        table("slow-1", &[(0, "RUNNING")], ""),
        table(
            "gone-0011",
            &[(0, "RUNNING")],
            "visible_after = \"10m\"\nnot_found = \"Common.0011\"\n"
        ),
    );
    let sim = sim(&tables).await;

    // 1. Every fault kind, a 404, a Common.0011, a timeout, a bad watch
    // line, and a reload with a broken configuration; temporary keys.
    let setup = debug_setup(Setup::new(&sim))
        .watch(
            &["ok-1", "fail-1", "slow-1", "missing-404", "gone-0011"]
                .into_iter()
                .chain(steady.iter().map(String::as_str))
                .collect::<Vec<_>>(),
        )
        .watch_file("bad.jobs", "not a valid id!\nok-1 team=audit\n")
        .set("poll.not_found_grace", "3s")
        .set("limits.request_timeout", "1s");
    let mut daemon = setup.start().await;
    daemon.await_event(&Match::event("watch.problem")).await;
    daemon
        .await_event(&Match::transition("ok-1", "SUCCESS"))
        .await;
    daemon
        .await_event(&Match::transition("fail-1", "FAIL"))
        .await;
    for id in ["missing-404", "gone-0011"] {
        daemon
            .await_event(&Match::event("job.not_found").with("job_id", id))
            .await;
    }
    daemon
        .await_event(&Match::event("api.error").with("error_type", "timeout"))
        .await;
    sim.await_stats("every fault kind injected", |stats| {
        [
            "server_error",
            "throttle",
            "throttle_202",
            "truncate",
            "drop",
            "client_error",
            "latency",
        ]
        .iter()
        .all(|kind| stats.faults_injected.get(*kind).copied().unwrap_or(0) >= 1)
    })
    .await;
    std::fs::write(setup.config_path(), "[cloud\nbroken = ").expect("config written");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    daemon
        .await_event(&Match::event("daemon.reload_failed"))
        .await;
    let run = daemon.stop_cleanly().await;
    printed.push(Printed::run(
        "faults, 404s, bad watch line, broken reload",
        &run,
    ));

    // 2. A forbidden credential.
    let setup = Setup::new(&sim)
        .watch(&["ok-1"])
        .set("log.level", "debug")
        .env("HUAWEICLOUD_SDK_AK", FORBIDDEN_AK)
        .env("HUAWEICLOUD_SDK_SK", FORBIDDEN_SK);
    let mut daemon = setup.start().await;
    daemon
        .await_event(&Match::event("api.error").with("error_type", "forbidden"))
        .await;
    printed.push(Printed::run("forbidden", &daemon.stop_cleanly().await));

    // 3. A wrong secret key with a security token.
    let setup = debug_setup(Setup::new(&sim))
        .watch(&["ok-1"])
        .env("HUAWEICLOUD_SDK_SK", WRONG_SK);
    let mut daemon = setup.start().await;
    daemon
        .await_event(&Match::event("api.error").with("error_type", "auth"))
        .await;
    printed.push(Printed::run("wrong secret", &daemon.stop_cleanly().await));

    // 4. Credential files readable by the group: a warning, then work.
    let keys = tempfile::tempdir().expect("temporary directory");
    let key_file = |name: &str, value: &str| {
        use std::os::unix::fs::PermissionsExt as _;
        let path = keys.path().join(name);
        std::fs::write(&path, value).expect("key file written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("mode set");
        path.to_str().expect("UTF-8 temp path").to_string()
    };
    let setup = Setup::new(&sim)
        .watch(&["ok-1"])
        .set("log.level", "debug")
        .set("credentials.source", "files")
        .set("credentials.access_key_file", key_file("ak", TOKEN_AK))
        .set("credentials.secret_key_file", key_file("sk", TOKEN_SK))
        .set("credentials.security_token_file", key_file("token", TOKEN))
        .env("HUAWEICLOUD_SDK_AK", "")
        .env("HUAWEICLOUD_SDK_SK", "");
    let mut daemon = setup.start().await;
    daemon
        .await_event(&Match::event("credentials.warning"))
        .await;
    daemon
        .await_event(&Match::transition("ok-1", "SUCCESS"))
        .await;
    printed.push(Printed::run(
        "group-readable files",
        &daemon.stop_cleanly().await,
    ));
    let check = setup.cli(&["check-config"]).await;
    assert_eq!(check.code, Some(0), "{check:?}");
    printed.push(Printed {
        what: "check-config with files".into(),
        text: format!("{}\n{}", check.stdout, check.stderr),
    });

    // 5. Instance metadata at a closed port: bound but never listening, so
    // it refuses connections and no other process can take it meanwhile.
    let held = tokio::net::TcpSocket::new_v4().expect("a socket");
    held.bind("127.0.0.1:0".parse().expect("an address"))
        .expect("a free port");
    let closed = held.local_addr().expect("bound").port();
    let setup = Setup::new(&sim)
        .watch(&["ok-1"])
        .set("log.level", "debug")
        .set("credentials.source", "metadata")
        .set(
            "credentials.metadata_url",
            format!("http://127.0.0.1:{closed}"),
        )
        .env("HUAWEICLOUD_SDK_SECURITY_TOKEN", TOKEN);
    let mut daemon = setup.start().await;
    let error = daemon
        .next_event_within(&Match::event("api.error"), Duration::from_secs(15))
        .await;
    let run = daemon.stop().await;
    eprintln!(
        "metadata at a closed port: {error:?}, exit {:?}, stderr {}",
        run.code,
        run.stderr.trim()
    );
    printed.push(Printed::run("metadata at a closed port", &run));
    drop(held);

    // 6. check-config with every secret in the environment.
    let setup = debug_setup(Setup::new(&sim)).watch(&["ok-1"]);
    let check = setup.cli(&["check-config"]).await;
    assert_eq!(check.code, Some(0), "{check:?}");
    printed.push(Printed {
        what: "check-config with env keys".into(),
        text: format!("{}\n{}", check.stdout, check.stderr),
    });

    audit(&printed);
}
