//! The commands a CI pipeline uses, run as the real binary against the
//! simulator: `add` from hundreds of processes at once (and from two users
//! of one group), its one-line-per-job rule and exit codes; `wait` with a
//! daemon (no API call of its own: its configuration points at a second,
//! "canary" simulator whose counters must stay at zero) and without one
//! (every exit code); `status JOB`'s exit codes; and a new user's first
//! `run -c ./my.toml` with a relative `state.dir`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ecs_jobwatch::job::spec::parse_line;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::harness::{
    AK, DEADLINE, Match, Output, PROJECT, SK, Setup, jobs, require_command, sim, skip,
};

/// The binary with the harness keys and nothing else in its environment.
fn binary(args: &[&str]) -> Command {
    program(env!("CARGO_BIN_EXE_ecs-jobwatch"), args)
}

/// `program args..` with the harness keys and nothing else in its
/// environment.
fn program(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("HUAWEICLOUD_SDK_AK", AK)
        .env("HUAWEICLOUD_SDK_SK", SK)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn output_of(output: std::process::Output) -> Output {
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `ecs-jobwatch ARGS -c CONFIG` to its end. Unlike `Setup::cli` it
/// does not write the configuration, so many can run at once.
async fn run(config: &Path, args: &[&str]) -> Output {
    let mut args = args.to_vec();
    args.extend(["-c", config.to_str().expect("UTF-8 temp path")]);
    let output = tokio::time::timeout(DEADLINE, binary(&args).output())
        .await
        .expect("the command ends in time")
        .expect("the binary runs");
    output_of(output)
}

/// Checks a refusal: the exit code and one line on stderr.
fn check(output: &Output, code: i32, what: &str) {
    assert_eq!(output.code, Some(code), "{what}: {output:?}");
    assert_eq!(output.stderr.lines().count(), 1, "{what}: {output:?}");
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

#[tokio::test(flavor = "multi_thread")]
async fn add_from_200_processes_at_once_loses_and_tears_nothing() {
    const ADDS: usize = 200;
    let sim = sim("").await;
    let setup = Setup::new(&sim).watch_file("ops.jobs", "# the operators' own\nops-job team=ops\n");
    let config = setup.write();
    let file = setup.watch_dir().join("added.jobs");

    // A reader that reads the file over and over while the adds run:
    // every read must be whole lines of whole jobs.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, file) = (stop.clone(), file.clone());
        tokio::task::spawn_blocking(move || {
            let (mut reads, mut torn) = (0u64, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                if let Ok(text) = std::fs::read_to_string(&file) {
                    reads += 1;
                    if !text.is_empty() && !text.ends_with('\n') {
                        torn.push(text.clone());
                    }
                    for line in text.lines() {
                        if !matches!(parse_line(line), Ok(Some(_))) {
                            torn.push(line.to_string());
                        }
                    }
                }
                // Pacing, so the reader leaves the cores to the adds.
                std::thread::sleep(Duration::from_millis(2));
            }
            (reads, torn)
        })
    };
    let names: Vec<(String, String)> = (0..ADDS)
        .map(|i| (format!("job-{i:03}"), format!("n={i}")))
        .collect();
    // At the lowest priority, so the burst of processes does not starve the
    // tests that run beside this one (their daemons keep time).
    let adds = names.iter().map(|(job, label)| {
        let args = [
            "-n",
            "19",
            env!("CARGO_BIN_EXE_ecs-jobwatch"),
            "add",
            "-c",
            path_str(&config),
            job.as_str(),
            label.as_str(),
            "by=ci",
        ];
        program("nice", &args).output()
    });
    let outputs = tokio::time::timeout(DEADLINE * 3, futures_util::future::join_all(adds))
        .await
        .expect("the adds end in time");
    stop.store(true, Ordering::SeqCst);
    let (reads, torn) = reader.await.expect("the reader ends");

    for ((job, label), output) in names.iter().zip(outputs) {
        let output = output_of(output.expect("the binary runs"));
        assert_eq!(output.code, Some(0), "{job}: {output:?}");
        let line = format!("{job} by=ci {label}");
        assert_eq!(
            output.stdout.trim_end(),
            format!("added \"{line}\" to {}", file.display()),
            "{job}"
        );
    }
    let text = std::fs::read_to_string(&file).expect("added.jobs exists");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        *counts.entry(line).or_default() += 1;
    }
    let expected: BTreeSet<String> = names
        .iter()
        .map(|(job, label)| format!("{job} by=ci {label}"))
        .collect();
    let found: BTreeSet<String> = counts.keys().map(|line| line.to_string()).collect();
    assert_eq!(found, expected, "every line present and whole");
    assert!(
        counts.values().all(|&count| count == 1),
        "a line more than once"
    );
    assert!(torn.is_empty(), "a reader saw torn text: {torn:?}");
    eprintln!("the reader read added.jobs {reads} times during the adds");

    // Nothing but the files: no temporary file is left behind, and the
    // files are group-writable whatever the umask.
    let mut entries: Vec<String> = std::fs::read_dir(setup.watch_dir())
        .expect("watch.dir")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into())
        .collect();
    entries.sort();
    assert_eq!(entries, [".add.lock", "added.jobs", "ops.jobs"]);
    let mode = |name: &str| {
        std::fs::metadata(setup.watch_dir().join(name))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("added.jobs"), 0o664);
    assert_eq!(mode(".add.lock"), 0o660);

    // The daemon's reader takes every job.
    let check_config = run(&config, &["check-config"]).await;
    assert_eq!(check_config.code, Some(0), "{check_config:?}");
    assert!(
        check_config
            .stdout
            .contains(&format!("# watch list: {} jobs", ADDS + 1)),
        "{}",
        check_config.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn add_lists_a_job_once_and_refuses_bad_data_with_65() {
    let sim = sim("").await;
    let setup = Setup::new(&sim)
        .watch(&["cfg-job"])
        .watch_file("ops.jobs", "ops-job team=ops\n");
    let config = setup.write();
    let file = setup.watch_dir().join("added.jobs");
    let shown = file.display().to_string();

    // (arguments, what stdout says)
    let steps: [(&[&str], String); 6] = [
        (
            &["job-a", "team=x"],
            format!("added \"job-a team=x\" to {shown}"),
        ),
        (
            &["job-a", "team=y", "run=7"],
            format!("replaced \"job-a team=x\" with \"job-a run=7 team=y\" in {shown}"),
        ),
        (
            &["ecs:job-a", "run=7", "team=y"],
            format!("job job-a is already in {shown} with these labels; nothing changed"),
        ),
        (
            &["ops-job", "team=other"],
            format!(
                "job ops-job is already listed at {}:1; left as written there \
                 (with labels \"team=ops\"; the labels given here are not applied)",
                setup.watch_dir().join("ops.jobs").display()
            ),
        ),
        (
            &["cfg-job"],
            "job cfg-job is already listed at watch.jobs; left as written there".to_string(),
        ),
        (&["job-b"], format!("added \"job-b\" to {shown}")),
    ];
    for (args, said) in steps {
        let mut full = vec!["add"];
        full.extend(args);
        let output = run(&config, &full).await;
        assert_eq!(output.code, Some(0), "add {args:?}: {output:?}");
        assert_eq!(output.stdout.trim_end(), said, "add {args:?}");
    }
    let expected = "job-a run=7 team=y\njob-b\n";
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);

    // (arguments, what the one stderr line names)
    let long_id = "x".repeat(65);
    let refused: [(&[&str], &str); 8] = [
        (&["bad/id/x"], "job id contains '/'"),
        (&[&long_id], "at most 64"),
        (&["job-c", "team"], "expected key=value"),
        (&["job-c", "note=two words"], "U+0020"),
        (&["job-c", "note=a#b"], "'#' starts a comment"),
        (&["job-c", "t=1", "t=2"], "given twice"),
        (&["nope/job-c"], "unknown project \"nope\""),
        (&["evs:job-c"], "evs"),
    ];
    for (args, named) in refused {
        let mut full = vec!["add"];
        full.extend(args);
        let output = run(&config, &full).await;
        check(&output, 65, &format!("add {args:?}"));
        assert!(output.stderr.contains(named), "add {args:?}: {output:?}");
        assert!(output.stdout.is_empty(), "add {args:?}: {output:?}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);

    // No watch.dir: 78, naming the key.
    let bare = Setup::new(&sim);
    let output = run(&bare.write(), &["add", "job-a"]).await;
    check(&output, 78, "add without watch.dir");
    assert!(output.stderr.contains("watch.dir"), "{output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn add_from_two_users_of_one_group_with_a_strict_umask() {
    // Two unprivileged users (no passwd entry needed) in one group.
    const GROUP: u32 = 64_242;
    const USERS: [u32; 2] = [64_201, 64_202];
    const ADDS_EACH: usize = 15;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip(
            "root (to run add as two other users)",
            "the tests do not run as root",
        );
        return;
    }
    if !require_command("setpriv", &["--version"], "setpriv (util-linux)") {
        return;
    }
    let sim = sim("").await;
    let setup = Setup::new(&sim).watch_file("ops.jobs", "");
    let config = setup.write();
    // The users reach the configuration and the binary; watch.dir belongs
    // to their group, setgid, as the README says.
    let base = config.parent().expect("the temporary directory");
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = setup.watch_dir();
    std::os::unix::fs::chown(&dir, Some(0), Some(GROUP)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2770)).unwrap();

    let mut adds = Vec::new();
    for i in 0..ADDS_EACH {
        for user in USERS {
            let job = format!("job-{user}-{i:02}");
            // A umask of 077 would make every file private without the
            // explicit modes; then the other user could not add.
            let script = format!(
                "umask 077; exec setpriv --reuid={user} --regid={user} --groups={GROUP} {} add -c {} {job} user={user}",
                env!("CARGO_BIN_EXE_ecs-jobwatch"),
                path_str(&config)
            );
            let mut command = Command::new("sh");
            command
                .args(["-c", &script])
                .env_clear()
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            adds.push(async move { (job, command.output().await) });
        }
    }
    let outputs = tokio::time::timeout(DEADLINE * 2, futures_util::future::join_all(adds))
        .await
        .expect("the adds end in time");
    for (job, output) in outputs {
        let output = output_of(output.expect("sh runs"));
        assert_eq!(output.code, Some(0), "{job}: {output:?}");
    }
    let text = std::fs::read_to_string(dir.join("added.jobs")).unwrap();
    let lines: BTreeSet<&str> = text.lines().collect();
    assert_eq!(lines.len(), USERS.len() * ADDS_EACH, "{text}");
    assert_eq!(text.lines().count(), lines.len(), "{text}");
    for name in ["added.jobs", ".add.lock"] {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(dir.join(name)).unwrap();
        assert_eq!(metadata.gid(), GROUP, "{name} belongs to the group");
        assert_eq!(metadata.mode() & 0o060, 0o060, "{name} is group read-write");
        assert!(USERS.contains(&metadata.uid()), "{name} made by a user");
    }
}

const FOLLOWED_JOBS: &str = r#"
[[job]]
id = "job-listed"
job_type = "createServer"
server_id = "1c74e090-c569-4b52-9eaa-fd34776cec28"
timeline = [ { at = "0s", status = "INIT" }, { at = "3s", status = "SUCCESS" } ]

[[job]]
id = "job-added"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "4s", status = "SUCCESS" } ]

[[job]]
id = "job-unpaid"
job_type = "createServer"
timeline = [ { at = "0s", status = "PENDING_PAYMENT" } ]
"#;

/// A spawned command whose stderr is read line by line.
struct Spawned {
    child: tokio::process::Child,
    stderr: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    said: Vec<String>,
}

impl Spawned {
    fn start(config: &Path, args: &[&str]) -> Spawned {
        let mut args = args.to_vec();
        args.extend(["-c", path_str(config)]);
        let mut child = binary(&args).spawn().expect("the binary starts");
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        Spawned {
            child,
            stderr,
            said: Vec::new(),
        }
    }

    /// Awaits a stderr line containing `text`.
    async fn await_stderr(&mut self, text: &str) {
        let found = tokio::time::timeout(DEADLINE, async {
            while let Ok(Some(line)) = self.stderr.next_line().await {
                let found = line.contains(text);
                self.said.push(line);
                if found {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "stderr without {text:?}: {:?}", self.said);
    }

    /// Awaits the exit; the code and every stderr line.
    async fn finish(mut self) -> (Option<i32>, String, Vec<String>) {
        let mut stdout = self.child.stdout.take().expect("piped stdout");
        let (status, out, ()) = tokio::time::timeout(DEADLINE, async {
            let mut out = String::new();
            let read = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out);
            let (status, _, rest) = tokio::join!(self.child.wait(), read, async {
                while let Ok(Some(line)) = self.stderr.next_line().await {
                    self.said.push(line);
                }
            });
            (status, out, rest)
        })
        .await
        .expect("the command ends in time");
        (status.expect("wait").code(), out, self.said)
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_with_a_daemon_spends_no_api_call_and_ends_with_its_announcement() {
    let canary = sim("").await;
    let sim = sim("").await;
    let setup = Setup::new(&sim).watch_file("ops.jobs", "job-listed team=a\njob-unpaid\n");
    let mut daemon = setup.start().await;
    daemon.await_event(&Match::event("daemon.started")).await;
    // `wait` shares the daemon's state and watch directories; any API call
    // it made would reach the canary.
    let waiter = Setup::new(&canary)
        .set("state.dir", path_str(&setup.state_dir()))
        .set("watch.dir", path_str(&setup.watch_dir()));
    let config = waiter.write();
    sim.add_jobs(jobs(FOLLOWED_JOBS));

    let (output, announced) = tokio::join!(
        run(&config, &["wait", "--json", "job-listed", "job-added"]),
        async {
            let listed = daemon
                .await_event(&Match::transition("job-listed", "SUCCESS"))
                .await;
            let added = daemon
                .await_event(&Match::transition("job-added", "SUCCESS"))
                .await;
            [listed, added]
        }
    );
    let ended = chrono::Utc::now();
    assert_eq!(output.code, Some(0), "{output:?}");
    let printed: Vec<Value> = output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(printed.len(), 2, "{}", output.stdout);
    let mut last = None;
    for (printed, announced) in printed.iter().zip(&announced) {
        // The very line the daemon announced, read from its store.
        assert_eq!(printed, announced);
        let at = chrono::DateTime::parse_from_rfc3339(announced["timestamp"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        last = last.max(Some(at));
    }
    if let Some(last) = last {
        eprintln!(
            "wait ended {} ms after the daemon's last announcement",
            (ended - last).num_milliseconds()
        );
    }
    assert_eq!(printed[0]["labels"], json!({"team": "a"}));
    assert!(
        output.stderr.contains("added \"job-added\""),
        "{}",
        output.stderr
    );
    assert!(
        std::fs::read_to_string(setup.watch_dir().join("added.jobs"))
            .unwrap()
            .contains("job-added\n")
    );

    // A job waiting for payment is an outcome: a person must pay.
    let unpaid = run(&config, &["wait", "job-unpaid"]).await;
    assert_eq!(unpaid.code, Some(3), "{unpaid:?}");
    assert_eq!(
        unpaid.stdout,
        "job-unpaid: PENDING_PAYMENT (createServer; a person must pay the order)\n"
    );

    // SIGTERM ends it at once with 143.
    let mut forever = Spawned::start(&config, &["wait", "job-forever"]);
    forever.await_stderr("added \"job-forever\"").await;
    forever.signal("-TERM");
    let (code, _, said) = forever.finish().await;
    assert_eq!(code, Some(143), "{said:?}");

    let stats = canary.stats();
    assert_eq!(
        stats.requests_total, 0,
        "wait called the API with a daemon running: {stats:?}"
    );
    let spent = sim.stats().requests_total;
    eprintln!("API calls: wait 0 of its own; the daemon {spent} in all");
    daemon.stop_cleanly().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_polls_itself_once_the_daemon_is_gone() {
    let sim = sim(r#"
[[job]]
id = "job-slow"
job_type = "createServer"
timeline = [ { at = "0s", status = "RUNNING" } ]
"#)
    .await;
    let setup = Setup::new(&sim).watch_file("ops.jobs", "");
    let mut daemon = setup.start().await;
    daemon.await_event(&Match::event("daemon.started")).await;
    let config = setup.write();
    let mut waiting = Spawned::start(&config, &["wait", "--json", "job-slow"]);
    waiting.await_stderr("added \"job-slow\"").await;
    daemon
        .await_event(&Match::transition("job-slow", "RUNNING"))
        .await;
    daemon.stop_cleanly().await;
    // Only now does the job succeed; no daemon will see it.
    sim.add_jobs(jobs(
        r#"
[[job]]
id = "job-slow"
job_type = "createServer"
timeline = [ { at = "0s", status = "SUCCESS" } ]
"#,
    ));
    let (code, stdout, said) = waiting.finish().await;
    assert_eq!(code, Some(0), "{said:?}");
    assert!(
        said.iter()
            .any(|line| line.contains("wait polls the jobs left itself")),
        "{said:?}"
    );
    let event: Value = serde_json::from_str(stdout.trim_end()).expect("one JSON line");
    assert_eq!(event["status"], "SUCCESS", "{stdout}");
}

const OUTCOME_JOBS: &str = r#"
[[job]]
id = "job-ok"
job_type = "createServer"
server_id = "1c74e090-c569-4b52-9eaa-fd34776cec28"
timeline = [ { at = "0s", status = "RUNNING" }, { at = "2s", status = "SUCCESS" } ]

[[job]]
id = "job-fail"
job_type = "createServer"
timeline = [
  { at = "0s", status = "INIT" },
  { at = "2s", status = "FAIL", error_code = "Ecs.0013", fail_reason = "insufficient EIP quota" },
]

[[job]]
id = "job-unpaid"
job_type = "createServer"
timeline = [ { at = "0s", status = "PENDING_PAYMENT" } ]

[[job]]
id = "job-running"
job_type = "resizeServer"
timeline = [ { at = "0s", status = "RUNNING" } ]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn wait_without_a_daemon_exits_with_each_outcome() {
    let sim = sim(OUTCOME_JOBS).await;
    let setup = Setup::new(&sim)
        .set("poll.not_found_grace", "2s")
        .watch_file("ops.jobs", "job-ok run=42\n");
    let config = setup.write();
    // (arguments, exit code, stdout, what stderr says)
    let cases: [(&[&str], i32, &str, &str); 6] = [
        (
            &["wait", "job-ok"],
            0,
            "job-ok: SUCCESS (createServer; resources 1c74e090-c569-4b52-9eaa-fd34776cec28; labels run=42)\n",
            "",
        ),
        (
            &["wait", "job-fail"],
            1,
            "job-fail: FAIL (createServer; Ecs.0013: insufficient EIP quota)\n",
            "failed: job-fail (FAIL)",
        ),
        (
            &["wait", "job-unpaid"],
            3,
            "job-unpaid: PENDING_PAYMENT (createServer; a person must pay the order)\n",
            "a person must pay: job-unpaid (PENDING_PAYMENT)",
        ),
        (
            &["wait", "job-never"],
            1,
            "job-never: NOT FOUND (never found)\n",
            "failed: job-never (NOT FOUND)",
        ),
        (
            &["wait", "--timeout", "4s", "job-running", "job-ok"],
            124,
            "job-ok: SUCCESS (createServer; resources 1c74e090-c569-4b52-9eaa-fd34776cec28; labels run=42)\n",
            "timed out after 4s; still working: job-running (RUNNING)",
        ),
        (
            &["wait", "job-ok", "job-unpaid", "job-fail"],
            1,
            "",
            "failed: job-fail (FAIL)",
        ),
    ];
    let runs = cases.iter().map(|(args, ..)| run(&config, args));
    let outputs = futures_util::future::join_all(runs).await;
    for ((args, code, stdout, stderr), output) in cases.iter().zip(&outputs) {
        assert_eq!(output.code, Some(*code), "{args:?}: {output:?}");
        if !stdout.is_empty() {
            assert_eq!(output.stdout, *stdout, "{args:?}");
        }
        if stderr.is_empty() {
            assert!(output.stderr.is_empty(), "{args:?}: {output:?}");
        } else {
            assert_eq!(output.stderr.lines().count(), 1, "{args:?}: {output:?}");
            assert!(output.stderr.contains(stderr), "{args:?}: {output:?}");
        }
    }
    // Every job settles once in a mixed wait, in the order they settled.
    assert_eq!(outputs[5].stdout.lines().count(), 3, "{:?}", outputs[5]);

    // --json: the event object of each job, in the order given.
    let output = run(&config, &["wait", "--json", "job-fail", "job-ok"]).await;
    assert_eq!(output.code, Some(1), "{output:?}");
    let events: Vec<Value> = output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event"], "job.transition");
    assert_eq!(events[0]["job_id"], "job-fail");
    assert_eq!(events[0]["status"], "FAIL");
    assert_eq!(events[0]["error_code"], "Ecs.0013");
    assert_eq!(events[0]["project_id"], PROJECT);
    assert_eq!(events[1]["job_id"], "job-ok");
    assert_eq!(events[1]["labels"], json!({"run": "42"}));

    // Nothing was recorded: the state directory holds no store.
    assert!(!setup.state_dir().join("state.db").exists());
    let stats = sim.stats();
    let per_job: BTreeMap<&String, u64> = stats
        .jobs
        .iter()
        .map(|(id, job)| (id, job.requests))
        .collect();
    eprintln!(
        "API calls of the waits without a daemon: {} in all, per job {per_job:?}",
        stats.requests_total
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_of_one_job_exits_as_wait_does() {
    let sim = sim("").await;
    let setup = Setup::new(&sim)
        .set("poll.not_found_grace", "2s")
        .watch_file(
            "all.jobs",
            "job-ok team=a\njob-fail\njob-running\njob-unpaid\njob-never\n",
        );
    let mut daemon = setup.start().await;
    daemon.await_event(&Match::event("daemon.started")).await;
    sim.add_jobs(jobs(OUTCOME_JOBS));
    let ok = daemon
        .await_event(&Match::transition("job-ok", "SUCCESS"))
        .await;
    for (job, status) in [
        ("job-fail", "FAIL"),
        ("job-running", "RUNNING"),
        ("job-unpaid", "PENDING_PAYMENT"),
    ] {
        daemon.await_event(&Match::transition(job, status)).await;
    }
    daemon
        .await_event(&Match::event("job.not_found").with("job_id", "job-never"))
        .await;
    let config = setup.write();
    let cases = [
        ("job-ok", 0),
        ("job-fail", 1),
        ("job-never", 1),
        ("job-unpaid", 3),
        ("job-running", 4),
        ("job-nope", 5),
        ("bad/id/x", 65),
    ];
    for (job, code) in cases {
        let output = run(&config, &["status", job]).await;
        assert_eq!(output.code, Some(code), "status {job}: {output:?}");
        if code < 5 {
            assert!(
                output.stdout.contains(&format!("job:        {job}\n")),
                "{output:?}"
            );
        } else {
            assert_eq!(output.stderr.lines().count(), 1, "status {job}: {output:?}");
        }
    }
    let output = run(&config, &["status", "--json", "job-ok"]).await;
    assert_eq!(output.code, Some(0), "{output:?}");
    let row: Value = serde_json::from_str(&output.stdout).expect("one JSON object");
    assert_eq!(row["status"], "SUCCESS");
    assert_eq!(row["labels"], json!({"team": "a"}));
    assert_eq!(row["last_event"], ok);
    daemon.stop_cleanly().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_user_runs_with_a_relative_state_dir_and_no_mkdir() {
    let sim = sim("").await;
    let home = tempfile::tempdir().expect("temporary directory");
    let config = format!(
        "[cloud]\nendpoint = \"{}\"\nproject_id = \"{PROJECT}\"\n\n[credentials]\nsource = \"env\"\n\n\
         [watch]\njobs = [\"job-a\"]\n\n[state]\ndir = \"./state\"\n",
        sim.base_url()
    );
    std::fs::write(home.path().join("my.toml"), config).expect("my.toml");
    let mut child = binary(&["run", "-c", "./my.toml"])
        .current_dir(home.path())
        .spawn()
        .expect("the daemon starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let started = tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(line)) = stdout.next_line().await {
            if line.contains("\"daemon.started\"") {
                return true;
            }
        }
        false
    })
    .await;
    let state: PathBuf = home.path().join("state");
    assert_eq!(started, Ok(true), "the daemon did not start");
    let mode = std::fs::metadata(&state)
        .expect("state.dir was created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert!(state.join("state.db").is_file());
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(killed.is_ok_and(|status| status.success()));
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the daemon stops in time")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}
