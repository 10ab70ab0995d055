//! A Debian bookworm booted by `systemd-nspawn`, so a test can drive a real
//! systemd 252 with `systemctl` and read a real journal.
//!
//! [`rootfs`] builds the root file system once with `mmdebstrap` (minbase
//! with systemd, dbus, procps and curl) into `/var/cache/ecs-jobwatch-test`,
//! under a file lock so that concurrent tests build it once, and reuses it
//! while its stamp matches the package list. [`Container::boot`] starts
//! `systemd-nspawn -b --register=no --keep-unit --private-network
//! --volatile=overlay` on it: the container writes to a tmpfs over the
//! cached tree, which stays clean. nspawn runs in a child cgroup of the
//! test's own (it creates its `payload` and `supervisor` cgroups beneath
//! the cgroup it starts in, which would otherwise be the top of the host
//! tree); a shell moves itself there and then execs nspawn. The host's PID 1
//! need not be systemd: there is no machined, and commands enter the
//! container with `nsenter -t <its PID 1> -a`.
//!
//! Dropping a [`Container`] powers it off (SIGTERM to nspawn), kills what is
//! left in its cgroups and removes them, also when the test failed half-way.
//! [`available`] says whether this machine can do any of it, with one line
//! on stderr when it cannot; under `CI` or `REQUIRE_TOOLS=1` it fails the
//! test instead.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::harness::DEADLINE;

/// Where the root file system is cached, outside any checkout.
const CACHE: &str = "/var/cache/ecs-jobwatch-test";
/// The suite and packages of the root file system; a change rebuilds it.
const SUITE: &str = "bookworm";
const PACKAGES: &str = "systemd,systemd-sysv,dbus,libpam-systemd,procps,curl,ca-certificates";
/// The longest the root file system build may take (about 20 s here).
const BUILD_DEADLINE: Duration = Duration::from_secs(600);
/// How often a wait looks again at what it waits for.
const POLL: Duration = Duration::from_millis(100);
/// The start of every container's name and cgroup: `ejw-test-PID-N`.
const NAME_PREFIX: &str = "ejw-test-";
/// The PATH of every command run inside the container.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Whether the machine can boot a container with `tools` on the PATH as
/// well. When it cannot, fails the test under `CI` or `REQUIRE_TOOLS=1`,
/// and otherwise prints one line naming `test` and the reason, straight to
/// stderr (not through `eprintln!`, which the test harness captures).
pub fn available(test: &str, tools: &[&str]) -> bool {
    let mut needed = vec!["systemd-nspawn", "nsenter"];
    if !rootfs_ready() {
        needed.push("mmdebstrap");
    }
    needed.extend_from_slice(tools);
    let problem = if !is_root() {
        Some("not root".to_string())
    } else if cgroup2_mount().is_none() {
        Some("no cgroup v2 hierarchy is mounted".to_string())
    } else {
        needed
            .iter()
            .find(|tool| find_program(tool).is_none())
            .map(|tool| format!("{tool} is not installed"))
    };
    let Some(problem) = problem else {
        return true;
    };
    let needs = format!(
        "a real systemd in systemd-nspawn needs root, cgroup v2 and {}",
        needed.join(", ")
    );
    // Fails under CI or REQUIRE_TOOLS=1; otherwise one SKIPPED line on the
    // real stderr and in the skip log `.ci/run` summarises.
    crate::harness::skip(&needs, format!("{test}: {problem}"));
    false
}

fn is_root() -> bool {
    // The second field of `Uid:` is the effective user id.
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// The program's path on the PATH (or `~/.cargo/bin`, where `cargo
/// install` puts tools).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME").or_else(|| {
        std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo").into_os_string())
    }) {
        dirs.push(Path::new(&home).join("bin"));
    }
    dirs.into_iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The mount points of cgroup hierarchies from `/proc/self/mountinfo`: the
/// cgroup v2 one, and the v1 `name=systemd` one of a hybrid host.
fn cgroup_mounts() -> Vec<(Hierarchy, PathBuf)> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for line in text.lines() {
        // `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [TAGS] - TYPE SOURCE SUPER_OPTIONS`
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = before.split(' ').nth(4) else {
            continue;
        };
        let mut after = after.split(' ');
        let kind = after.next();
        let super_options = after.nth(1).unwrap_or_default();
        let hierarchy = match kind {
            Some("cgroup2") => Hierarchy::Unified,
            Some("cgroup") if super_options.split(',').any(|o| o == "name=systemd") => {
                Hierarchy::NameSystemd
            }
            _ => continue,
        };
        if !found.iter().any(|(known, _)| *known == hierarchy) {
            found.push((hierarchy, PathBuf::from(mount_point)));
        }
    }
    found
}

fn cgroup2_mount() -> Option<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .find(|(hierarchy, _)| *hierarchy == Hierarchy::Unified)
        .map(|(_, path)| path)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hierarchy {
    /// cgroup v2 (`0::/path` in `/proc/self/cgroup`).
    Unified,
    /// The v1 hierarchy systemd uses on a hybrid host (`N:name=systemd:/path`).
    NameSystemd,
}

/// This process's cgroup in `hierarchy`, from `/proc/self/cgroup`.
fn own_cgroup(hierarchy: Hierarchy) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match hierarchy {
            Hierarchy::Unified => id == "0" && controllers.is_empty(),
            Hierarchy::NameSystemd => controllers == "name=systemd",
        };
        wanted.then(|| path.to_string())
    })
}

/// The child cgroups a container runs in, one per hierarchy; removed (with
/// whatever still runs in them) when dropped.
struct Cgroups {
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    /// Creates `name` beneath this process's own cgroup in every hierarchy,
    /// after removing what a killed test run left there.
    fn create(name: &str) -> Cgroups {
        let mut cgroups = Cgroups { dirs: Vec::new() };
        for (hierarchy, mount) in cgroup_mounts() {
            let own = own_cgroup(hierarchy)
                .unwrap_or_else(|| panic!("no {hierarchy:?} line in /proc/self/cgroup"));
            let parent = mount.join(own.trim_start_matches('/'));
            Cgroups::remove_stale(&parent);
            let dir = parent.join(name);
            fs::create_dir(&dir)
                .unwrap_or_else(|error| panic!("cannot create cgroup {}: {error}", dir.display()));
            cgroups.dirs.push(dir);
        }
        cgroups
    }

    /// Removes the cgroups in `parent` of test processes that no longer run
    /// (`ejw-test-PID-N` with no process PID), with what still runs in them.
    fn remove_stale(parent: &Path) {
        let Ok(entries) = fs::read_dir(parent) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(NAME_PREFIX)
                .and_then(|rest| rest.split('-').next())
            else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                drop(Cgroups {
                    dirs: vec![entry.path()],
                });
            }
        }
    }

    /// The `cgroup.procs` files a process writes itself into.
    fn procs_files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.dirs.iter().map(|dir| dir.join("cgroup.procs"))
    }

    /// Every process in `dir` and beneath it.
    fn processes(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
            found.extend(text.lines().map(str::to_string));
        }
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    found.extend(Cgroups::processes(&entry.path()));
                }
            }
        }
        found
    }

    /// Removes `dir` and the cgroups beneath it, deepest first.
    fn remove_tree(dir: &Path) -> std::io::Result<()> {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    Cgroups::remove_tree(&entry.path())?;
                }
            }
        }
        match fs::remove_dir(dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // cgroup.kill (cgroup v2 since Linux 5.14) kills the whole subtree
            // at once; else each process found.
            if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                continue;
            }
            let processes = Cgroups::processes(dir);
            if !processes.is_empty() {
                let _ = Command::new("kill").arg("-KILL").args(&processes).status();
            }
        }
        // Killed processes leave their cgroups a moment later.
        let deadline = Instant::now() + Duration::from_secs(10);
        for dir in &self.dirs {
            while let Err(error) = Cgroups::remove_tree(dir) {
                if Instant::now() > deadline {
                    let _ = std::io::stderr().write_all(
                        format!("could not remove cgroup {}: {error}\n", dir.display()).as_bytes(),
                    );
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

/// The stamp that marks a complete root file system: what it was built
/// from.
fn stamp_text() -> String {
    format!("mmdebstrap --variant=minbase --include={PACKAGES} {SUITE}\n")
}

fn rootfs_dir() -> PathBuf {
    Path::new(CACHE).join("rootfs")
}

fn stamp_path() -> PathBuf {
    Path::new(CACHE).join("rootfs.stamp")
}

fn rootfs_ready() -> bool {
    fs::read_to_string(stamp_path()).is_ok_and(|stamp| stamp == stamp_text())
}

/// The cached root file system, built first when missing or stale.
pub fn rootfs() -> PathBuf {
    fs::create_dir_all(CACHE).expect("the cache directory");
    let lock = File::create(Path::new(CACHE).join("lock")).expect("the lock file");
    // Held until this function returns: one build at a time.
    lock.lock().expect("the rootfs lock");
    let dir = rootfs_dir();
    if rootfs_ready() {
        return dir;
    }
    let partial = Path::new(CACHE).join("rootfs.partial");
    for stale in [&partial, &dir] {
        if stale.exists() {
            fs::remove_dir_all(stale).expect("a stale root file system is removed");
        }
    }
    let _ = fs::remove_file(stamp_path());
    let started = Instant::now();
    let mut command = Command::new("mmdebstrap");
    command
        .arg("--variant=minbase")
        .arg(format!("--include={PACKAGES}"))
        .arg(SUITE)
        .arg(&partial);
    let output = run(command, BUILD_DEADLINE);
    assert!(
        output.success,
        "mmdebstrap failed ({:?}):\n{}{}",
        output.code, output.stdout, output.stderr
    );
    fs::rename(&partial, &dir).expect("the root file system is moved in place");
    fs::write(stamp_path(), stamp_text()).expect("the stamp is written");
    let _ = std::io::stderr().write_all(
        format!(
            "built {} in {:.1}s\n",
            dir.display(),
            started.elapsed().as_secs_f64()
        )
        .as_bytes(),
    );
    dir
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Ran {
    /// Whether it exited 0.
    pub success: bool,
    /// Its exit code (`None` when killed).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `command` to its end, killing it after `deadline`.
pub fn run(mut command: Command, deadline: Duration) -> Ran {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let described = format!("{command:?}");
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {described}: {error}"));
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{described} did not end within {deadline:?}");
        }
        // A child's exit has no portable event to wait on; look again soon.
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        success: status.success(),
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A booted container.
pub struct Container {
    name: String,
    nspawn: Child,
    leader: u32,
    console: PathBuf,
    _dir: tempfile::TempDir,
    // Dropped after `Container::drop` has stopped nspawn.
    _cgroups: Cgroups,
}

impl Container {
    /// Boots `rootfs` and waits until its systemd has finished starting up.
    pub fn boot(rootfs: &Path) -> Container {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{NAME_PREFIX}{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let cgroups = Cgroups::create(&name);
        let dir = tempfile::tempdir().expect("a temp dir");
        let console = dir.path().join("console.log");
        let log = File::create(&console).expect("the console log");
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(r#"while [ "$1" != -- ]; do echo $$ >"$1" || exit 125; shift; done; shift; exec "$@""#)
            .arg("sh")
            .args(cgroups.procs_files())
            .arg("--")
            .arg("systemd-nspawn")
            .arg("--quiet")
            .arg("--directory")
            .arg(rootfs)
            .args([
                "--volatile=overlay",
                "--machine",
                &name,
                "--boot",
                "--register=no",
                "--keep-unit",
                "--private-network",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the console log"))
            .stderr(log);
        let nspawn = command.spawn().expect("systemd-nspawn starts");
        let mut container = Container {
            name,
            leader: 0,
            nspawn,
            console,
            _dir: dir,
            _cgroups: cgroups,
        };
        container.leader = container.await_leader();
        container.await_manager();
        container
    }

    /// The machine name (also its host name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the container printed on its console, for failure messages.
    pub fn console(&self) -> String {
        fs::read_to_string(&self.console).unwrap_or_default()
    }

    fn fail(&self, why: &str) -> ! {
        // The journal's end says why a unit did not start; before the
        // manager is up there is none, and the console tells.
        let journal = if self.leader == 0 {
            String::new()
        } else {
            run(
                self.command(&["journalctl", "--no-pager", "--lines=60"]),
                DEADLINE,
            )
            .stdout
        };
        panic!(
            "container {}: {why}\njournal:\n{journal}\nconsole:\n{}",
            self.name,
            self.console()
        )
    }

    /// The container's PID 1: nspawn's child once it has become systemd.
    fn await_leader(&mut self) -> u32 {
        let pid = self.nspawn.id();
        let children = format!("/proc/{pid}/task/{pid}/children");
        let until = Instant::now() + DEADLINE;
        loop {
            if let Ok(Some(status)) = self.nspawn.try_wait() {
                self.fail(&format!("systemd-nspawn exited ({status}) while booting"));
            }
            let leader = fs::read_to_string(&children)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|child| child.parse::<u32>().ok())
                .find(|child| {
                    fs::read_to_string(format!("/proc/{child}/comm"))
                        .is_ok_and(|comm| comm.trim() == "systemd")
                });
            if let Some(leader) = leader {
                return leader;
            }
            if Instant::now() > until {
                self.fail("no systemd inside the container");
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the container's systemd has booted (`running`, or
    /// `degraded` with the failed units named on the console).
    fn await_manager(&mut self) {
        let until = Instant::now() + DEADLINE;
        loop {
            let ran = self.run(&["systemctl", "is-system-running", "--wait"]);
            let state = ran.stdout.trim();
            if state == "running" || state == "degraded" {
                if state == "degraded" {
                    let failed = self.run(&["systemctl", "--failed", "--no-legend"]);
                    let _ = std::io::stderr().write_all(
                        format!("container {} is degraded:\n{}", self.name, failed.stdout)
                            .as_bytes(),
                    );
                }
                return;
            }
            if let Ok(Some(status)) = self.nspawn.try_wait() {
                self.fail(&format!("systemd-nspawn exited ({status}) while booting"));
            }
            if Instant::now() > until {
                self.fail(&format!("the container did not boot: {ran:?}"));
            }
            // Before its manager listens, systemctl cannot connect at all.
            std::thread::sleep(POLL);
        }
    }

    /// A command run inside the container: all its namespaces, a clean
    /// environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("--target")
            .arg(self.leader.to_string())
            .arg("--all")
            .arg("--")
            .args(args)
            .env_clear()
            .env("PATH", PATH)
            .env("LANG", "C.UTF-8")
            .env("SYSTEMD_PAGER", "")
            .env("SYSTEMD_COLORS", "0")
            .env("DEBIAN_FRONTEND", "noninteractive");
        command
    }

    /// Runs `args` inside the container.
    pub fn run(&self, args: &[&str]) -> Ran {
        run(self.command(args), DEADLINE)
    }

    /// Runs `args` inside the container and fails the test unless it
    /// succeeds; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let ran = self.run(args);
        if !ran.success {
            self.fail(&format!("{args:?} failed: {ran:?}"));
        }
        ran.stdout
    }

    /// Runs a shell script inside the container; fails the test unless it
    /// succeeds.
    pub fn sh(&self, script: &str) -> String {
        self.ok(&["/bin/sh", "-ec", script])
    }

    /// A path inside the container, as the host reaches it. Only for
    /// directories without absolute symbolic links on the way (those would
    /// resolve on the host): `/etc`, `/usr/bin`, `/tmp`, `/root`.
    fn host_path(&self, path: &str) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.leader)).join(path.trim_start_matches('/'))
    }

    /// Writes a file inside the container (root's, with `mode`), creating
    /// its directories.
    pub fn write(&self, path: &str, contents: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let target = self.host_path(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).expect("directories inside the container");
        }
        fs::write(&target, contents).unwrap_or_else(|error| panic!("writing {path}: {error}"));
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|error| panic!("chmod {path}: {error}"));
    }

    /// Copies a host file into the container.
    pub fn copy_in(&self, from: &Path, to: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let target = self.host_path(to);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).expect("directories inside the container");
        }
        fs::copy(from, &target)
            .unwrap_or_else(|error| panic!("copying {} to {to}: {error}", from.display()));
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|error| panic!("chmod {to}: {error}"));
    }

    /// A property of a unit (`systemctl show -P`).
    pub fn property(&self, unit: &str, name: &str) -> String {
        self.ok(&["systemctl", "show", "--property", name, "--value", unit])
            .trim()
            .to_string()
    }

    /// The journal entries `journalctl -o json ARGS` prints.
    pub fn journal(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["journalctl", "--no-pager", "--output=json"];
        all.extend_from_slice(args);
        self.ok(&all)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Awaits a state of the container: `look` is asked again every 100 ms
    /// until it returns something, for at most [`DEADLINE`].
    pub fn await_until<T>(&self, what: &str, mut look: impl FnMut() -> Option<T>) -> T {
        let until = Instant::now() + DEADLINE;
        loop {
            if let Some(found) = look() {
                return found;
            }
            if Instant::now() > until {
                self.fail(&format!("timed out awaiting {what}"));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // nspawn turns SIGTERM into a clean poweroff of the container.
        if let Ok(None) = self.nspawn.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.nspawn.id().to_string())
                .status();
            let until = Instant::now() + Duration::from_secs(20);
            while let Ok(None) = self.nspawn.try_wait() {
                if Instant::now() > until {
                    let _ = self.nspawn.kill();
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
        let _ = self.nspawn.wait();
    }
}
