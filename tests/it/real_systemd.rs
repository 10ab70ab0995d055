//! The units and the Debian package under a real systemd 252, booted in a
//! container (see [`container`]), with the simulator as the API inside it.
//!
//! [`units_side_by_side_under_a_real_systemd`] installs the binary, both
//! units from `systemd/`, configurations, credentials and a scenario, then
//! runs `ecs-jobwatch.service` (JSON lines) and `ecs-jobwatch@two.service`
//! (`log.format = "journald"`) together and checks what an operator relies
//! on: start and `Status=`, different users and state directories, a FAIL
//! found by `journalctl -p err` and by its native fields with a
//! `MESSAGE_ID`, reload and a bad reload, a watchdog restart that resumes
//! from the state, and a clean stop.
//! [`the_debian_package_under_a_real_systemd`] builds the package with
//! `cargo deb`, installs it the README's way, enables the plain unit and an
//! instance, upgrades the package over itself, removes and purges it, and
//! checks that nothing of it stays enabled.
//!
//! A check that fails is recorded and the test goes on, so one run names
//! every failure; it fails at the end with all of them and the units'
//! journals. What cannot go on (the container does not boot, a unit does
//! not start) fails at once. Every wait is for a state of the container,
//! looked at again every 100 ms under one generous deadline.

mod container;

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use crate::harness::{self, AK, PROJECT, SK};
use container::Container;

const BINARY: &str = env!("CARGO_BIN_EXE_ecs-jobwatch");
/// A job that has failed from the start.
const FAIL_JOB: &str = "ff80808288d41e1b018990260955fa11";
/// A job that runs until the test says otherwise.
const RUNNING_JOB: &str = "ff80808288d41e1b018990260955a0a0";
/// The simulator's address, on the container's own loopback.
const SIM: &str = "127.0.0.1:8000";
const PLAIN: &str = "ecs-jobwatch.service";
const INSTANCE: &str = "ecs-jobwatch@two.service";

/// Checks that failed so far; the test fails at the end with all of them.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    /// Records `what` unless `ok`; returns `ok`.
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) -> bool {
        if !ok {
            self.failed.push(what());
        }
        ok
    }

    /// Awaits what `look` finds, like [`Container::await_until`], but
    /// records a failure instead of ending the test.
    fn await_until<T>(&mut self, what: &str, mut look: impl FnMut() -> Option<T>) -> Option<T> {
        let until = Instant::now() + harness::DEADLINE;
        loop {
            if let Some(found) = look() {
                return Some(found);
            }
            if Instant::now() > until {
                self.failed.push(format!("timed out awaiting {what}"));
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Fails the test with every failed check and the units' journals.
    fn finish(self, container: &Container, units: &[&str]) {
        if self.failed.is_empty() {
            return;
        }
        let mut journals = String::new();
        for unit in units {
            let ran = container.run(&[
                "journalctl",
                "--no-pager",
                "--output=cat",
                "--lines=60",
                "--unit",
                unit,
            ]);
            journals.push_str(&format!("--- journalctl -u {unit}\n{}", ran.stdout));
        }
        panic!(
            "{} check(s) failed in container {}:\n- {}\n{journals}",
            self.failed.len(),
            container.name(),
            self.failed.join("\n- ")
        );
    }
}

/// The repository file `path`.
fn repo_file(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The simulator's scenario: one failed job, one running.
fn scenario() -> String {
    harness::scenario_text(&format!(
        "[[job]]\nid = \"{FAIL_JOB}\"\njob_type = \"createServer\"\n\
         timeline = [{{ at = \"0s\", status = \"FAIL\", error_code = \"Ecs.0013\", \
         fail_reason = \"insufficient EIP quota\" }}]\n\n\
         [[job]]\nid = \"{RUNNING_JOB}\"\njob_type = \"createServer\"\n\
         timeline = [{{ at = \"0s\", status = \"RUNNING\" }}]\n"
    ))
}

/// A daemon configuration against the simulator; `extra` is appended.
fn daemon_config(format: &str, watch_dir: &str, max_interval: &str, extra: &str) -> String {
    format!(
        "[cloud]\nendpoint = \"http://{SIM}\"\nproject_id = \"{PROJECT}\"\n\n\
         [poll]\ninitial_interval = \"1s\"\nmax_interval = \"{max_interval}\"\n\n\
         [log]\nformat = \"{format}\"\n\n\
         [watch]\ndir = \"{watch_dir}\"\n\n{extra}"
    )
}

/// The watch file naming both jobs, with a label.
fn watch_file() -> String {
    format!("{FAIL_JOB} team=payments\n{RUNNING_JOB} team=payments\n")
}

/// The access keys in `dir`, the README's way.
fn keys_script(dir: &str) -> String {
    format!(
        "install -d -m 0700 {dir}\n\
         printf '%s' '{AK}' | install -m 0600 /dev/stdin {dir}/access_key\n\
         printf '%s' '{SK}' | install -m 0600 /dev/stdin {dir}/secret_key\n"
    )
}

/// Starts the simulator as a transient service and waits until it answers.
fn start_simulator(container: &Container) {
    container.write("/etc/ecs-jobwatch-sim.toml", &scenario(), 0o644);
    container.ok(&[
        "systemd-run",
        "--unit=api-simulator",
        "--property=Type=exec",
        "/usr/bin/ecs-jobwatch",
        "sim",
        "--listen",
        SIM,
        "--scenario",
        "/etc/ecs-jobwatch-sim.toml",
    ]);
    let stats = format!("http://{SIM}/_sim/stats");
    container.await_until("the simulator", || {
        container
            .run(&["curl", "--silent", "--fail", &stats])
            .success
            .then_some(())
    });
}

/// The JSON events among a unit's journal entries: each entry's MESSAGE
/// parsed, with the entry.
fn json_events(entries: Vec<Value>) -> Vec<(Value, Value)> {
    entries
        .into_iter()
        .filter_map(|entry| {
            let event: Value = serde_json::from_str(entry["MESSAGE"].as_str()?).ok()?;
            event.is_object().then_some((entry, event))
        })
        .collect()
}

/// The JSON events of `unit` that match `wanted` (field, value) pairs.
fn events_of(container: &Container, unit: &str, wanted: &[(&str, &str)]) -> Vec<(Value, Value)> {
    json_events(container.journal(&["--unit", unit]))
        .into_iter()
        .filter(|(_, event)| wanted.iter().all(|(key, value)| event[*key] == *value))
        .collect()
}

/// Awaits the first JSON event of `unit` that matches `wanted`.
fn await_event(container: &Container, unit: &str, wanted: &[(&str, &str)]) -> (Value, Value) {
    container.await_until(&format!("{wanted:?} from {unit}"), || {
        events_of(container, unit, wanted).into_iter().next()
    })
}

/// Whether `message` says "tracking N job" with the right plural.
fn plural_ok(message: &str, count: u64) -> bool {
    let noun = if count == 1 { "job" } else { "jobs" };
    let wanted = format!("tracking {count} {noun}");
    message.find(&wanted).is_some_and(|at| {
        !message[at + wanted.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
    })
}

/// Whether the journal of `unit` has a line containing `text`.
fn journal_says(container: &Container, unit: &str, text: &str) -> bool {
    container
        .journal(&["--unit", unit])
        .iter()
        .any(|entry| entry["MESSAGE"].as_str().is_some_and(|m| m.contains(text)))
}

#[test]
fn units_side_by_side_under_a_real_systemd() {
    if !container::available("real_systemd::units_side_by_side_under_a_real_systemd", &[]) {
        return;
    }
    let started = Instant::now();
    let rootfs = container::rootfs();
    let container = Container::boot(&rootfs);
    let mut checks = Checks::default();

    install_units(&container);
    start_simulator(&container);
    container.ok(&["systemctl", "start", PLAIN, INSTANCE]);

    side_by_side(&container, &mut checks);
    fail_in_the_journal(&container, &mut checks);
    keep_the_fail_entries(&container);
    reloads(&container, &mut checks);
    watchdog_restart(&container, &mut checks);
    stop(&container, &mut checks);

    checks.finish(&container, &[PLAIN, INSTANCE]);
    eprintln!("the units under a real systemd: {:?}", started.elapsed());
}

/// The binary, both units with a test drop-in, configurations and keys.
fn install_units(container: &Container) {
    container.copy_in(Path::new(BINARY), "/usr/bin/ecs-jobwatch", 0o755);
    for unit in ["ecs-jobwatch.service", "ecs-jobwatch@.service"] {
        container.copy_in(
            &repo_file(&format!("systemd/{unit}")),
            &format!("/etc/systemd/system/{unit}"),
            0o644,
        );
        // A short watchdog, so a stopped daemon is caught within seconds; a
        // quick restart; no core file of a debug binary.
        container.write(
            &format!("/etc/systemd/system/{unit}.d/test.conf"),
            "[Service]\nWatchdogSec=5s\nRestartSec=1s\nLimitCORE=0\n",
            0o644,
        );
    }
    // The plain unit: JSON lines, and a webhook whose secret comes from the
    // credential store (it only delivers job.timeout, which never happens
    // here, but the daemon reads the secret when it starts).
    let webhook = "[[notify.webhook]]\nurl = \"http://127.0.0.1:9/\"\nevents = [\"job.timeout\"]\n\
                   secret_file = \"/run/credentials/ecs-jobwatch.service/webhook_secret\"\n";
    container.write(
        "/etc/ecs-jobwatch/ecs-jobwatch.toml",
        &daemon_config("json", "/etc/ecs-jobwatch/jobs.d", "2s", webhook),
        0o644,
    );
    container.write("/etc/ecs-jobwatch/jobs.d/test.jobs", &watch_file(), 0o644);
    // The instance: native journal entries, no webhook secret at all.
    container.write(
        "/etc/ecs-jobwatch/two.toml",
        &daemon_config("journald", "/etc/ecs-jobwatch/two.jobs.d", "2s", ""),
        0o644,
    );
    container.write(
        "/etc/ecs-jobwatch/two.jobs.d/test.jobs",
        &watch_file(),
        0o644,
    );
    container.sh(&format!(
        "{}{}install -d -m 0700 /etc/credstore\n\
         printf '%s' 'webhook-secret-1' | install -m 0600 /dev/stdin /etc/credstore/ecs-jobwatch.webhook_secret\n\
         systemctl daemon-reload\n",
        keys_script("/etc/ecs-jobwatch/credentials"),
        keys_script("/etc/ecs-jobwatch/credentials/two"),
    ));
}

/// Both units run, as different users, each with its own state directory
/// and credentials.
fn side_by_side(container: &Container, checks: &mut Checks) {
    let mut uids = Vec::new();
    for unit in [PLAIN, INSTANCE] {
        let state = container.property(unit, "ActiveState");
        checks.check(state == "active", || format!("{unit} is {state}"));
        let status = container.property(unit, "StatusText");
        checks.check(status.starts_with("tracking "), || {
            format!("{unit}: Status={status:?}")
        });
        let pid = container.property(unit, "MainPID");
        uids.push(container.ok(&["stat", "-c", "%u", &format!("/proc/{pid}")]));
    }
    checks.check(
        uids[0] != uids[1] && !uids.contains(&"0\n".to_string()),
        || format!("the units run as uids {uids:?}"),
    );
    let user = container.property(INSTANCE, "User");
    checks.check(user == "ecs-jobwatch-two", || {
        format!("{INSTANCE} runs as User={user:?}")
    });
    for (unit, dir) in [
        (PLAIN, "/var/lib/private/ecs-jobwatch"),
        (INSTANCE, "/var/lib/private/ecs-jobwatch-two"),
    ] {
        let listed = container.run(&["ls", "-A", dir]);
        checks.check(listed.success && !listed.stdout.trim().is_empty(), || {
            format!("{unit}: no state in {dir}: {listed:?}")
        });
    }
    // The optional webhook secret: handed over when it exists, and its
    // absence does not keep the instance from starting.
    checks.check(
        container
            .run(&[
                "test",
                "-s",
                "/run/credentials/ecs-jobwatch.service/webhook_secret",
            ])
            .success,
        || format!("{PLAIN} did not get webhook_secret from /etc/credstore"),
    );
    checks.check(
        !container
            .run(&[
                "test",
                "-e",
                "/run/credentials/ecs-jobwatch@two.service/webhook_secret",
            ])
            .success,
        || format!("{INSTANCE} got a webhook_secret that does not exist"),
    );
}

/// The FAIL in both formats: by priority, and by native fields.
/// Keeps the FAIL's journal entries in both formats, as `journalctl -o
/// export` prints them, in the target directory for people to read (the
/// checks above are what the test asserts).
fn keep_the_fail_entries(container: &Container) {
    let export = container.sh(&format!(
        "journalctl -o export -u {PLAIN} -p err | grep -a -B12 -A12 '\"status\":\"FAIL\"' || true\n\
         echo '----- native -----'\n\
         journalctl -o export -u {INSTANCE} EVENT=job.transition STATUS=FAIL || true\n"
    ));
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("journal-export.txt");
    let _ = std::fs::write(path, export);
}

fn fail_in_the_journal(container: &Container, checks: &mut Checks) {
    await_event(
        container,
        PLAIN,
        &[
            ("event", "job.transition"),
            ("job_id", FAIL_JOB),
            ("status", "FAIL"),
        ],
    );
    let by_priority = json_events(container.journal(&["--unit", PLAIN, "--priority", "err"]));
    let found = by_priority
        .iter()
        .find(|(_, event)| event["event"] == "job.transition" && event["job_id"] == FAIL_JOB);
    if checks.check(found.is_some(), || {
        format!("journalctl -p err -u {PLAIN} shows no FAIL of {FAIL_JOB}")
    }) && let Some((entry, _)) = found
    {
        checks.check(entry["PRIORITY"] == "3", || {
            format!("the FAIL entry has PRIORITY {}", entry["PRIORITY"])
        });
    }

    // The instance writes native entries: await any entry naming the job,
    // then look for it by its fields.
    container.await_until(&format!("an entry of {INSTANCE} naming {FAIL_JOB}"), || {
        journal_says(container, INSTANCE, FAIL_JOB).then_some(())
    });
    let native = container.journal(&["--unit", INSTANCE, "EVENT=job.transition", "STATUS=FAIL"]);
    let entry = native.iter().find(|entry| entry["JOB_ID"] == FAIL_JOB);
    if checks.check(entry.is_some(), || {
        format!("journalctl -u {INSTANCE} EVENT=job.transition STATUS=FAIL finds no {FAIL_JOB}")
    }) && let Some(entry) = entry
    {
        let id = entry["MESSAGE_ID"].as_str().unwrap_or_default();
        checks.check(
            id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            || format!("MESSAGE_ID {:?}", entry["MESSAGE_ID"]),
        );
        for (field, value) in [
            ("PRIORITY", "3"),
            ("SYSLOG_IDENTIFIER", "ecs-jobwatch"),
            ("MESSAGE_ID", "7a642a409d0a4c828270c82d077de9e2"),
            ("EVENT", "job.transition"),
            ("SERVICE", "ecs"),
            ("SERVICE_STATUS", "FAIL"),
            ("LABEL_TEAM", "payments"),
            ("ERROR_CODE", "Ecs.0013"),
        ] {
            checks.check(entry[field] == value, || {
                format!(
                    "native FAIL entry: {field}={} (wanted {value})",
                    entry[field]
                )
            });
        }
        checks.check(entry["EVENT_ID"].is_string(), || {
            "native FAIL entry: no EVENT_ID".to_string()
        });
        let prefixed: Vec<&String> = entry
            .as_object()
            .map(|fields| fields.keys().filter(|key| key.starts_with("F_")).collect())
            .unwrap_or_default();
        checks.check(prefixed.is_empty(), || {
            format!("native FAIL entry has F_ fields: {prefixed:?}")
        });
    }

    // The status line once the FAIL is done: one job left, said so.
    checks.await_until("Status=tracking 1 job, ...", || {
        container
            .property(PLAIN, "StatusText")
            .starts_with("tracking 1 job,")
            .then_some(())
    });
    for (_, event) in events_of(container, PLAIN, &[("event", "daemon.started")]) {
        let count = event["jobs_tracked"].as_u64().unwrap_or(u64::MAX);
        let message = event["message"].as_str().unwrap_or_default();
        checks.check(plural_ok(message, count), || {
            format!("daemon.started says {message:?} for {count}")
        });
    }
}

/// A valid reload, a broken one that changes nothing, and a valid one again.
fn reloads(container: &Container, checks: &mut Checks) {
    let config = "/etc/ecs-jobwatch/ecs-jobwatch.toml";
    let webhook = "[[notify.webhook]]\nurl = \"http://127.0.0.1:9/\"\nevents = [\"job.timeout\"]\n\
                   secret_file = \"/run/credentials/ecs-jobwatch.service/webhook_secret\"\n";
    let good = daemon_config("json", "/etc/ecs-jobwatch/jobs.d", "3s", webhook);
    let reloaded =
        |container: &Container| events_of(container, PLAIN, &[("event", "daemon.reloaded")]).len();
    let before = reloaded(container);
    container.write(config, &good, 0o644);
    container.ok(&["systemctl", "reload", PLAIN]);
    let (_, event) = container.await_until("daemon.reloaded", || {
        events_of(container, PLAIN, &[("event", "daemon.reloaded")])
            .into_iter()
            .nth(before)
    });
    let count = event["jobs_tracked"].as_u64().unwrap_or(u64::MAX);
    let message = event["message"].as_str().unwrap_or_default();
    checks.check(plural_ok(message, count), || {
        format!("daemon.reloaded says {message:?} for {count}")
    });

    let pid = container.property(PLAIN, "MainPID");
    container.write(config, "[poll\nmax_interval = ", 0o644);
    let ran = container.run(&["systemctl", "reload", PLAIN]);
    checks.check(ran.success, || format!("systemctl reload failed: {ran:?}"));
    await_event(container, PLAIN, &[("event", "daemon.reload_failed")]);
    let by_priority = json_events(container.journal(&["--unit", PLAIN, "--priority", "err"]));
    checks.check(
        by_priority
            .iter()
            .any(|(_, event)| event["event"] == "daemon.reload_failed"),
        || format!("journalctl -p err -u {PLAIN} shows no daemon.reload_failed"),
    );
    let state = container.property(PLAIN, "ActiveState");
    let after = container.property(PLAIN, "MainPID");
    checks.check(state == "active" && after == pid, || {
        format!("after a bad reload {PLAIN} is {state} with MainPID {after} (was {pid})")
    });

    let before = reloaded(container);
    container.write(config, &good, 0o644);
    container.ok(&["systemctl", "reload", PLAIN]);
    container.await_until("daemon.reloaded after the repair", || {
        (reloaded(container) > before).then_some(())
    });
}

/// SIGSTOP: the watchdog restarts the daemon, which resumes from its state.
fn watchdog_restart(container: &Container, checks: &mut Checks) {
    let pid = container.property(PLAIN, "MainPID");
    let restarts = container.property(PLAIN, "NRestarts");
    container.ok(&["kill", "-STOP", &pid]);
    container.await_until("the watchdog restart", || {
        let now = container.property(PLAIN, "MainPID");
        (now != pid
            && now != "0"
            && container.property(PLAIN, "ActiveState") == "active"
            && container.property(PLAIN, "NRestarts") != restarts)
            .then_some(())
    });
    checks.check(journal_says(container, PLAIN, "Watchdog timeout"), || {
        format!("no 'Watchdog timeout' in the journal of {PLAIN}")
    });

    // The running job finishes now; the restarted daemon knew it as RUNNING.
    let done = format!(
        "[{{\"id\":\"{RUNNING_JOB}\",\"job_type\":\"createServer\",\
         \"timeline\":[{{\"at\":\"0s\",\"status\":\"SUCCESS\"}}]}}]"
    );
    container.ok(&[
        "curl",
        "--silent",
        "--fail",
        "--request",
        "POST",
        "--header",
        "Content-Type: application/json",
        "--data",
        &done,
        &format!("http://{SIM}/_sim/jobs"),
    ]);
    let (_, success) = await_event(
        container,
        PLAIN,
        &[
            ("event", "job.transition"),
            ("job_id", RUNNING_JOB),
            ("status", "SUCCESS"),
        ],
    );
    checks.check(success["previous_status"] == "RUNNING", || {
        format!("after the restart: {success}")
    });
    for (job, status) in [(FAIL_JOB, "FAIL"), (RUNNING_JOB, "RUNNING")] {
        let told = events_of(
            container,
            PLAIN,
            &[
                ("event", "job.transition"),
                ("job_id", job),
                ("status", status),
            ],
        )
        .len();
        checks.check(told == 1, || {
            format!("{job} {status} was announced {told} times across the restart")
        });
    }
}

/// `systemctl stop`: both exit 0 and systemd says so.
fn stop(container: &Container, checks: &mut Checks) {
    container.ok(&["systemctl", "stop", PLAIN, INSTANCE]);
    for unit in [PLAIN, INSTANCE] {
        let result = container.property(unit, "Result");
        let status = container.property(unit, "ExecMainStatus");
        checks.check(result == "success" && status == "0", || {
            format!("{unit} stopped with Result={result} ExecMainStatus={status}")
        });
        checks.check(
            journal_says(container, unit, "Deactivated successfully"),
            || format!("no 'Deactivated successfully' for {unit}"),
        );
    }
    checks.check(
        !events_of(container, PLAIN, &[("event", "daemon.stopping")]).is_empty(),
        || format!("no daemon.stopping from {PLAIN}"),
    );
}

#[test]
fn the_debian_package_under_a_real_systemd() {
    if !container::available(
        "real_systemd::the_debian_package_under_a_real_systemd",
        &["cargo-deb"],
    ) {
        return;
    }
    let started = Instant::now();
    let (_out, package) = build_package();
    let rootfs = container::rootfs();
    let container = Container::boot(&rootfs);
    let mut checks = Checks::default();
    let file_name = package
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a package file name")
        .to_string();
    container.copy_in(&package, &format!("/root/{file_name}"), 0o644);

    // Install: nothing enabled or started, the directories made.
    container.sh(&format!("cd /root && apt install --yes ./{file_name}"));
    for unit in [PLAIN, INSTANCE] {
        let enabled = container.run(&["systemctl", "is-enabled", unit]);
        checks.check(!enabled.success, || {
            format!("{unit} is enabled by the install: {enabled:?}")
        });
    }
    let active = container.property(PLAIN, "ActiveState");
    checks.check(active == "inactive", || {
        format!("after install {PLAIN} is {active}")
    });
    let depends = container.ok(&[
        "dpkg-query",
        "--show",
        "--showformat=${Depends}",
        "ecs-jobwatch",
    ]);
    checks.check(depends.contains("ca-certificates"), || {
        format!("the package depends on {depends:?}, not on ca-certificates")
    });
    let mode = container.ok(&["stat", "-c", "%a", "/etc/ecs-jobwatch/credentials"]);
    checks.check(mode.trim() == "700", || {
        format!("/etc/ecs-jobwatch/credentials has mode {mode}")
    });
    for path in [
        "/etc/ecs-jobwatch/jobs.d",
        "/etc/ecs-jobwatch/ecs-jobwatch.toml",
        "/usr/share/doc/ecs-jobwatch/examples/notify-reload.conf",
        "/usr/share/doc/ecs-jobwatch/README.md",
    ] {
        checks.check(container.run(&["test", "-e", path]).success, || {
            format!("the package did not install {path}")
        });
    }

    // Configure and start, as the README says.
    configure_package(&container);
    start_simulator(&container);
    container.sh(
        "CREDENTIALS_DIRECTORY=/etc/ecs-jobwatch/credentials ecs-jobwatch check-config >/dev/null\n\
         CREDENTIALS_DIRECTORY=/etc/ecs-jobwatch/credentials/two ecs-jobwatch check-config --config /etc/ecs-jobwatch/two.toml >/dev/null\n\
         systemctl enable --now ecs-jobwatch\n\
         systemctl enable --now ecs-jobwatch@two\n",
    );
    await_event(
        &container,
        PLAIN,
        &[
            ("event", "job.transition"),
            ("job_id", FAIL_JOB),
            ("status", "FAIL"),
        ],
    );
    await_event(
        &container,
        INSTANCE,
        &[
            ("event", "job.transition"),
            ("job_id", FAIL_JOB),
            ("status", "FAIL"),
        ],
    );

    // An instance of the release before kept its state beneath the plain
    // unit's directory; the upgrade moves it to the instance's own.
    container.sh("cp /etc/ecs-jobwatch/two.toml /etc/ecs-jobwatch/old.toml\n\
         cp -a /etc/ecs-jobwatch/credentials/two /etc/ecs-jobwatch/credentials/old\n\
         systemctl stop ecs-jobwatch@two\n\
         mkdir -p /var/lib/private/ecs-jobwatch\n\
         cp -a /var/lib/private/ecs-jobwatch-two /var/lib/private/ecs-jobwatch/old\n\
         systemctl start ecs-jobwatch@two\n");

    // Upgrade over itself: both running units restart on the new files.
    let pids: Vec<String> = [PLAIN, INSTANCE]
        .iter()
        .map(|unit| container.property(unit, "MainPID"))
        .collect();
    container.ok(&["dpkg", "--install", &format!("/root/{file_name}")]);
    for (unit, pid) in [PLAIN, INSTANCE].iter().zip(&pids) {
        let state = container.property(unit, "ActiveState");
        let now = container.property(unit, "MainPID");
        checks.check(state == "active" && now != *pid, || {
            format!("after the upgrade {unit} is {state} with MainPID {now} (was {pid})")
        });
        let enabled = container.run(&["systemctl", "is-enabled", unit]);
        checks.check(enabled.stdout.trim() == "enabled", || {
            format!("after the upgrade {unit} is {enabled:?}")
        });
    }

    // The old instance's state moved, and it resumes from it: its FAIL is
    // recorded as finished, not announced again.
    let moved = container.run(&["test", "-f", "/var/lib/private/ecs-jobwatch-old/state.db"]);
    checks.check(moved.success, || {
        "the upgrade did not move /var/lib/private/ecs-jobwatch/old".to_string()
    });
    let status = container.sh("STATE_DIRECTORY=/var/lib/private/ecs-jobwatch-old \
         ecs-jobwatch status --json --config /etc/ecs-jobwatch/old.toml 2>&1 || true\n");
    checks.check(
        status.contains(FAIL_JOB) && status.contains("\"finished\":true"),
        || format!("the moved state does not hold the finished FAIL: {status}"),
    );

    // Remove: stopped. Purge: nothing left enabled, no dangling link.
    container.ok(&["apt-get", "remove", "--yes", "ecs-jobwatch"]);
    for unit in [PLAIN, INSTANCE] {
        let state = container.property(unit, "ActiveState");
        checks.check(state != "active", || {
            format!("after remove {unit} is {state}")
        });
    }
    container.ok(&["apt-get", "purge", "--yes", "ecs-jobwatch"]);
    let left = container.sh(
        "find /etc/systemd /lib/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
         /var/lib/systemd/deb-systemd-helper-masked -name '*ecs-jobwatch*' 2>/dev/null || true\n\
         find /etc/systemd -xtype l\n\
         systemctl list-unit-files --no-legend 'ecs-jobwatch*' || true\n",
    );
    checks.check(left.trim().is_empty(), || {
        format!("after purge these remain:\n{left}")
    });
    checks.check(
        container
            .run(&["test", "-s", "/etc/ecs-jobwatch/credentials/access_key"])
            .success,
        || "the purge deleted the operator's keys".to_string(),
    );

    checks.finish(&container, &[PLAIN, INSTANCE]);
    eprintln!("the package under a real systemd: {:?}", started.elapsed());
}

/// The .deb of the debug binary `cargo test` built: `cargo deb --no-build
/// --profile dev` packs `target/debug/ecs-jobwatch` (stripped) where a
/// release package packs `target/release/ecs-jobwatch`; the rest of the
/// package is the same. A release build takes minutes here.
fn build_package() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path();
    let program = container::find_program("cargo-deb").expect("cargo-deb is installed");
    let mut command = std::process::Command::new(program);
    command
        .args([
            "--no-build",
            "--profile",
            "dev",
            "--fast",
            "--quiet",
            "--output",
        ])
        .arg(out)
        .arg("--manifest-path")
        .arg(repo_file("Cargo.toml"));
    let ran = container::run(command, harness::DEADLINE);
    assert!(ran.success, "cargo deb failed: {ran:?}");
    let package = std::fs::read_dir(out)
        .expect("the package directory")
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .unwrap_or_else(|| panic!("no .deb in {}: {ran:?}", out.display()));
    (dir, package)
}

/// The package's configuration: keys, the configuration file and a watch
/// file for the plain unit and for the instance `two`.
fn configure_package(container: &Container) {
    container.write(
        "/etc/ecs-jobwatch/ecs-jobwatch.toml",
        &daemon_config("json", "/etc/ecs-jobwatch/jobs.d", "2s", ""),
        0o644,
    );
    container.write("/etc/ecs-jobwatch/jobs.d/test.jobs", &watch_file(), 0o644);
    container.write(
        "/etc/ecs-jobwatch/two.toml",
        &daemon_config("json", "/etc/ecs-jobwatch/two.jobs.d", "2s", ""),
        0o644,
    );
    container.write(
        "/etc/ecs-jobwatch/two.jobs.d/test.jobs",
        &watch_file(),
        0o644,
    );
    container.sh(&format!(
        "{}{}",
        keys_script("/etc/ecs-jobwatch/credentials"),
        keys_script("/etc/ecs-jobwatch/credentials/two"),
    ));
}
