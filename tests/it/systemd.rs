//! The daemon as systemd runs it: the real binary with a `NOTIFY_SOCKET`
//! of the harness (a Unix datagram socket in the setup's temporary
//! directory), signals sent with `kill`, and the in-process simulator as the
//! ECS API. Also here: the example configuration shipped in `config/`
//! passes `check-config`.
//!
//! Every wait is the harness's: for a datagram, a JSON event, the
//! simulator's counters or the process's exit, under its deadline. Every
//! run's whole notify sequence is checked after the exit, so a notice out
//! of order or one too many fails the test.

use serde_json::{Value, json};

use crate::harness::{Finished, Match, Notice, Setup, Sim, dump, jobs, lifecycle, run_binary, sim};

const JOB_A: &str = "ff80808288d41e1b018990260955686a";
const JOB_B: &str = "ff80808288d41e1b0189902609556870";

/// A `[[job]]` table: `id` has `status` from the moment it is added on.
fn job(id: &str, status: &str) -> String {
    format!(
        "[[job]]\nid = \"{id}\"\njob_type = \"createServer\"\n\
         timeline = [ {{ at = \"0s\", status = \"{status}\" }} ]\n\n"
    )
}

/// A `[[fault]]` table: every request waits uniformly in `low..high`.
fn latency(low: &str, high: &str) -> String {
    format!("[[fault]]\nkind = \"latency\"\nlatency = [\"{low}\", \"{high}\"]\n\n")
}

/// A setup against `sim` with a notify socket and every job polled each
/// second.
fn systemd_setup(sim: &Sim) -> Setup {
    Setup::new(sim)
        .notify_socket()
        .set("poll.initial_interval", "1s")
        .set("poll.max_interval", "1s")
}

/// The statuses announced for `job_id`, in order.
fn transitions(events: &[Value], job_id: &str) -> Vec<String> {
    Match::event("job.transition")
        .with("job_id", job_id)
        .all(events)
        .iter()
        .map(|event| event["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The reload notice.
fn reload_notice() -> Notice {
    Notice::has("RELOADING=1").and_sets("MONOTONIC_USEC")
}

/// `RELOADING=1` with a `MONOTONIC_USEC=` above zero, as
/// `Type=notify-reload` requires.
fn check_reloading(datagram: &str) {
    let fields: Vec<&str> = datagram.lines().collect();
    assert!(fields.contains(&"RELOADING=1"), "{datagram:?}");
    assert!(
        fields.iter().any(|field| field
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|usec| usec.parse::<u64>().is_ok_and(|usec| usec > 0))),
        "{datagram:?}"
    );
    assert_eq!(fields.len(), 2, "{datagram:?}");
}

/// The run's lifecycle notices are `expected` (`RELOADING` stands for a
/// [`check_reloading`] datagram), and every `STATUS=` is one line that
/// starts with `tracking`.
fn check_notices(run: &Finished, expected: &[&str]) {
    let notices = lifecycle(&run.datagrams);
    assert_eq!(
        notices.len(),
        expected.len(),
        "lifecycle {notices:?}, expected {expected:?}; all datagrams {:?}",
        run.datagrams
    );
    for (notice, expected) in notices.iter().zip(expected) {
        if *expected == "RELOADING" {
            check_reloading(notice);
        } else {
            assert_eq!(notice, expected, "all datagrams {:?}", run.datagrams);
        }
    }
    let statuses = Notice::sets("STATUS").all(&run.datagrams);
    assert!(!statuses.is_empty(), "{:?}", run.datagrams);
    for status in statuses {
        assert!(
            status.starts_with("STATUS=tracking ") && !status.contains('\n'),
            "status datagram: {status:?}"
        );
    }
}

/// Exit 0, every stdout line a JSON object, and `daemon.stopping` said.
fn check_clean_exit(run: &Finished) {
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert!(
        run.bad_lines.is_empty(),
        "stdout lines that are not JSON objects: {:?}",
        run.bad_lines
    );
    assert_eq!(
        Match::event("daemon.stopping").all(&run.events).len(),
        1,
        "{}",
        dump(&run.events)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_ready_reloading_ready_stopping_and_status() {
    let sim = sim(&job(JOB_A, "RUNNING")).await;
    let mut daemon = systemd_setup(&sim).watch(&[JOB_A]).start().await;

    daemon.await_datagram(&Notice::has("READY=1")).await;
    // The harness's keys and the socket, nothing of the developer's shell.
    assert_eq!(
        daemon.environment(),
        ["HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "NOTIFY_SOCKET"]
    );
    let status = daemon.await_datagram(&Notice::sets("STATUS")).await;
    assert!(
        status.starts_with("STATUS=tracking "),
        "status line: {status:?}"
    );
    assert!(!status.contains('\n'), "one line: {status:?}");

    daemon.signal("HUP");
    let reloading = daemon.await_datagram(&reload_notice()).await;
    check_reloading(&reloading);
    daemon.await_datagrams(&Notice::has("READY=1"), 2).await;
    daemon.await_event(&Match::event("daemon.reloaded")).await;

    daemon.signal("TERM");
    daemon.await_datagram(&Notice::has("STOPPING=1")).await;
    let run = daemon.finish().await;
    check_clean_exit(&run);
    check_notices(&run, &["READY=1", "RELOADING", "READY=1", "STOPPING=1"]);
    // The first status follows readiness at once (no watchdog here).
    assert_eq!(run.datagrams[0], "READY=1", "{:?}", run.datagrams);
    assert!(
        run.datagrams[1].starts_with("STATUS=tracking "),
        "{:?}",
        run.datagrams
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watchdog_pings_when_watchdog_usec_is_set() {
    let sim = sim(&job(JOB_A, "RUNNING")).await;
    let mut daemon = systemd_setup(&sim)
        .watch(&[JOB_A])
        .watchdog(400_000)
        .start()
        .await;
    daemon.await_datagram(&Notice::has("READY=1")).await;
    // What systemd would pass, and nothing of the shell in between.
    assert_eq!(
        daemon.environment(),
        [
            "HUAWEICLOUD_SDK_AK",
            "HUAWEICLOUD_SDK_SK",
            "NOTIFY_SOCKET",
            "WATCHDOG_PID",
            "WATCHDOG_USEC"
        ]
    );
    daemon.await_datagrams(&Notice::has("WATCHDOG=1"), 3).await;
    daemon.signal("TERM");
    let run = daemon.finish().await;
    check_clean_exit(&run);
    check_notices(&run, &["READY=1", "STOPPING=1"]);
}

/// Runs `setup`'s daemon for two polls of [`JOB_A`] (more than a second,
/// time a 400 ms watchdog would have pinged in) and checks that no
/// datagram of the whole run mentions the watchdog.
async fn check_no_watchdog_pings(sim: &Sim, setup: Setup) {
    let mut daemon = setup.start().await;
    daemon.await_datagram(&Notice::has("READY=1")).await;
    daemon
        .await_event(&Match::transition(JOB_A, "RUNNING"))
        .await;
    let before = sim.requests(JOB_A);
    sim.await_stats("two more polls of the job", |stats| {
        stats.jobs.get(JOB_A).map_or(0, |job| job.requests) >= before + 2
    })
    .await;
    daemon.signal("TERM");
    daemon.await_datagram(&Notice::has("STOPPING=1")).await;
    let run = daemon.finish().await;
    check_clean_exit(&run);
    check_notices(&run, &["READY=1", "STOPPING=1"]);
    let pings: Vec<&String> = run
        .datagrams
        .iter()
        .filter(|datagram| datagram.contains("WATCHDOG"))
        .collect();
    assert!(pings.is_empty(), "{pings:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_watchdog_pings_without_watchdog_usec() {
    let sim = sim(&job(JOB_A, "RUNNING")).await;
    let setup = systemd_setup(&sim).watch(&[JOB_A]);
    check_no_watchdog_pings(&sim, setup).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_watchdog_pings_when_watchdog_pid_names_another_process() {
    // systemd's watchdog variables are meant for one process; the daemon
    // started by a wrapper that did not hand them on must not ping for it.
    let sim = sim(&job(JOB_A, "RUNNING")).await;
    let setup = systemd_setup(&sim)
        .watch(&[JOB_A])
        .env("WATCHDOG_USEC", "400000")
        .env("WATCHDOG_PID", "1");
    check_no_watchdog_pings(&sim, setup).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_with_a_valid_change_keeps_job_state() {
    let sim = sim(&job(JOB_A, "RUNNING")).await;
    let setup = systemd_setup(&sim).watch(&[JOB_A]);
    let mut daemon = setup.start().await;
    let first = daemon
        .await_event(&Match::transition(JOB_A, "RUNNING"))
        .await;
    assert_eq!(first["previous_status"], Value::Null);

    let setup = setup.set("poll.max_interval", "2s");
    setup.write();
    daemon.signal("HUP");
    let reloaded = daemon.await_event(&Match::event("daemon.reloaded")).await;
    assert_eq!(reloaded["jobs_tracked"], 1, "{reloaded}");
    assert_eq!(reloaded["level"], "INFO");

    // The job moves on after the reload; the daemon still knows it was RUNNING.
    sim.add_jobs(jobs(&job(JOB_A, "SUCCESS")));
    let done = daemon
        .await_event(&Match::transition(JOB_A, "SUCCESS"))
        .await;
    assert_eq!(done["previous_status"], "RUNNING", "{done}");
    assert_eq!(transitions(&daemon.events, JOB_A), ["RUNNING", "SUCCESS"]);

    daemon.signal("TERM");
    let run = daemon.finish().await;
    check_clean_exit(&run);
    assert_eq!(transitions(&run.events, JOB_A), ["RUNNING", "SUCCESS"]);
    assert!(
        Match::event("daemon.reload_failed")
            .all(&run.events)
            .is_empty(),
        "{}",
        dump(&run.events)
    );
    check_notices(&run, &["READY=1", "RELOADING", "READY=1", "STOPPING=1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_with_a_broken_file_keeps_the_old_configuration() {
    let sim = sim(&job(JOB_A, "RUNNING")).await;
    let setup = systemd_setup(&sim).watch(&[JOB_A]);
    let mut daemon = setup.start().await;
    daemon.await_datagram(&Notice::has("READY=1")).await;
    daemon
        .await_event(&Match::transition(JOB_A, "RUNNING"))
        .await;

    // Below the 1 s minimum: a value error that names its key.
    let setup = setup.set("poll.max_interval", "100ms");
    setup.write();
    daemon.signal("HUP");
    let failed = daemon
        .await_event(&Match::event("daemon.reload_failed"))
        .await;
    assert_eq!(failed["level"], "ERROR", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("poll.max_interval"), "{failed}");
    let reloading = daemon.await_datagram(&reload_notice()).await;
    check_reloading(&reloading);
    daemon.await_datagrams(&Notice::has("READY=1"), 2).await;

    // Still polling, with the old configuration.
    sim.add_jobs(jobs(&job(JOB_A, "FAIL")));
    let failed_job = daemon.await_event(&Match::transition(JOB_A, "FAIL")).await;
    assert_eq!(failed_job["previous_status"], "RUNNING");

    // Broken TOML is refused the same way, naming the place.
    std::fs::write(setup.config_path(), "[poll\nmax_interval = ").expect("config written");
    daemon.signal("HUP");
    let failed = daemon
        .await_events(&Match::event("daemon.reload_failed"), 2)
        .await
        .remove(1);
    assert_eq!(failed["level"], "ERROR", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&setup.config_path().display().to_string()),
        "{failed}"
    );
    daemon.await_datagrams(&reload_notice(), 2).await;
    daemon.await_datagrams(&Notice::has("READY=1"), 3).await;

    daemon.signal("TERM");
    let run = daemon.finish().await;
    check_clean_exit(&run);
    assert!(
        Match::event("daemon.reloaded").all(&run.events).is_empty(),
        "{}",
        dump(&run.events)
    );
    assert_eq!(
        Match::event("daemon.reload_failed").all(&run.events).len(),
        2,
        "{}",
        dump(&run.events)
    );
    assert_eq!(transitions(&run.events, JOB_A), ["RUNNING", "FAIL"]);
    check_notices(
        &run,
        &[
            "READY=1",
            "RELOADING",
            "READY=1",
            "RELOADING",
            "READY=1",
            "STOPPING=1",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reads_a_new_watch_file() {
    let sim = sim(&format!(
        "{}{}",
        job(JOB_A, "RUNNING"),
        job(JOB_B, "PENDING_PAYMENT")
    ))
    .await;
    let setup = systemd_setup(&sim).watch_file("a.jobs", &format!("{JOB_A} team=payments\n"));
    let mut daemon = setup.start().await;
    let a = daemon
        .await_event(&Match::transition(JOB_A, "RUNNING"))
        .await;
    assert_eq!(a["labels"], json!({"team": "payments"}));

    std::fs::write(
        setup.watch_dir().join("b.jobs"),
        format!("{JOB_B} team=platform\n"),
    )
    .expect("watch file written");
    daemon.signal("HUP");
    let b = daemon
        .await_event(&Match::transition(JOB_B, "PENDING_PAYMENT"))
        .await;
    assert_eq!(b["labels"], json!({"team": "platform"}));
    assert_eq!(b["level"], "WARN");
    // The reload's own event may come before or after the new job's.
    let reloaded = daemon.await_event(&Match::event("daemon.reloaded")).await;
    assert_eq!(reloaded["jobs_tracked"], 2, "{reloaded}");

    daemon.signal("TERM");
    let run = daemon.finish().await;
    check_clean_exit(&run);
    assert_eq!(transitions(&run.events, JOB_A), ["RUNNING"]);
    assert_eq!(transitions(&run.events, JOB_B), ["PENDING_PAYMENT"]);
    check_notices(&run, &["READY=1", "RELOADING", "READY=1", "STOPPING=1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_polls_in_flight_exits_cleanly() {
    let ids = [JOB_A, JOB_B, "job-c", "job-d"];
    let tables: String = ids.iter().map(|id| job(id, "RUNNING")).collect();
    let sim = sim(&format!("{tables}{}", latency("1s", "2s"))).await;
    let mut daemon = systemd_setup(&sim).watch(&ids).start().await;
    daemon.await_datagram(&Notice::has("READY=1")).await;
    // Every request takes at least a second, so these are still in flight.
    sim.await_stats("a request for every job", |stats| {
        stats.requests_total >= ids.len() as u64
    })
    .await;

    daemon.signal("TERM");
    daemon.await_datagram(&Notice::has("STOPPING=1")).await;
    let run = daemon.finish().await;
    check_clean_exit(&run);
    check_notices(&run, &["READY=1", "STOPPING=1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_exits_at_once_with_75() {
    let ids = [JOB_A, JOB_B];
    let tables: String = ids.iter().map(|id| job(id, "RUNNING")).collect();
    let sim = sim(&format!("{tables}{}", latency("5s", "5s"))).await;
    let mut daemon = systemd_setup(&sim).watch(&ids).start().await;
    daemon.await_datagram(&Notice::has("READY=1")).await;
    sim.await_stats("a request for every job", |stats| {
        stats.requests_total >= ids.len() as u64
    })
    .await;

    daemon.signal("TERM");
    // The second signal once the first is being acted on: the signal
    // handler itself exits. Two signals sent back to back, before the
    // first is even delivered, are one pending signal to the kernel and
    // can only count as one.
    daemon.await_datagram(&Notice::has("STOPPING=1")).await;
    daemon.signal("TERM");
    let run = daemon.finish().await;
    assert_eq!(
        run.code,
        Some(ecs_jobwatch::daemon::signals::FORCED_EXIT),
        "stderr:\n{}",
        run.stderr
    );
    // The process ends inside the signal handler, wherever its threads
    // were, so only the notices are checked, not the last stdout line.
    check_notices(&run, &["READY=1", "STOPPING=1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_example_configuration_passes_check_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = tempfile::tempdir().expect("temporary directory");
    let config = root.join("config/ecs-jobwatch.toml");
    let jobs_d = root.join("config/jobs.d");
    let output = run_binary(
        &[
            "check-config",
            "--config",
            config.to_str().expect("UTF-8 path"),
        ],
        &[
            (
                "ECS_JOBWATCH__WATCH__DIR",
                jobs_d.to_str().expect("UTF-8 path"),
            ),
            (
                "STATE_DIRECTORY",
                state.path().to_str().expect("UTF-8 path"),
            ),
            ("HUAWEICLOUD_SDK_AK", crate::harness::AK),
            ("HUAWEICLOUD_SDK_SK", crate::harness::SK),
        ],
    )
    .await;
    assert_eq!(
        output.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        output.stdout,
        output.stderr
    );
    // The example watch file's three jobs are all valid.
    assert!(
        output.stdout.contains("# watch list: 3 jobs"),
        "{}",
        output.stdout
    );
    assert!(
        !output.stdout.contains(crate::harness::SK),
        "{}",
        output.stdout
    );
    assert!(output.stderr.is_empty(), "{}", output.stderr);
}
