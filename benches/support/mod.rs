//! What the end-to-end benchmarks share: the release binary run as two
//! processes (the simulator and the daemon), per-process CPU time and
//! memory from `/proc`, a `NOTIFY_SOCKET` listener that timestamps every
//! `sd_notify` message, and a stdout reader that timestamps every line.
//!
//! Everything is blocking std code: the benchmark must not share a runtime
//! (or a CPU budget) with what it measures.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The project every benchmark configuration uses.
pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";
/// The access key the simulator accepts.
pub const AK: &str = "BENCHAK00000000000000001";
/// Its secret key.
pub const SK: &str = "bench-secret-key-0000000000000000000000001";

/// The binary under test: the release build under `cargo bench`, or the
/// one `ECS_JOBWATCH_BENCH_BINARY` names (to measure an older build with
/// the same benchmark).
pub fn binary() -> String {
    std::env::var("ECS_JOBWATCH_BENCH_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ecs-jobwatch").to_string())
}

/// True when run by `cargo bench` (which passes `--bench`); false under
/// `cargo test --all-targets`, where a benchmark only smoke-tests itself.
pub fn full_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The `n`th benchmark job id (32 hex characters, like ECS ids).
pub fn job_id(n: usize) -> String {
    format!("ff808082bbbb{n:020x}")
}

/// A line read from a child's stdout and when it arrived.
pub struct Line {
    pub at: Instant,
    pub text: String,
}

/// Reads every line of `stream` on a thread of its own; lines go to the
/// returned channel with their arrival time.
pub fn read_lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<Line> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.lines() {
            let Ok(text) = line else { break };
            let _ = sender.send(Line {
                at: Instant::now(),
                text,
            });
        }
    });
    receiver
}

/// CPU time (user + system, every thread, dead ones included) of a live
/// process, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after it do not.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based).
    let ticks = |index: usize| fields.get(index - 3).and_then(|v| v.parse::<u64>().ok());
    let total = ticks(14).unwrap_or(0) + ticks(15).unwrap_or(0);
    Duration::from_secs_f64(total as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// `VmRSS` and `VmHWM` of a live process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Sends a signal with kill(1).
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// Stops a child with SIGTERM and waits (SIGKILL after 10 s).
pub fn stop(child: &mut Child) {
    signal(child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A running simulator process.
pub struct Sim {
    pub child: Child,
    pub addr: String,
    _lines: mpsc::Receiver<Line>,
}

impl Sim {
    /// Writes a scenario with the benchmark credential, `jobs` jobs that are
    /// RUNNING for ever, and starts `ecs-jobwatch sim` on a free port.
    pub fn start(dir: &Path, jobs: usize) -> Sim {
        let mut scenario = format!(
            "project_id = \"{PROJECT}\"\n\n[[credential]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n"
        );
        for n in 0..jobs {
            scenario.push_str(&format!(
                "\n[[job]]\nid = \"{}\"\njob_type = \"createServer\"\ntimeline = [ {{ at = \"0s\", status = \"RUNNING\" }} ]\n",
                job_id(n)
            ));
        }
        let path = dir.join("scenario.toml");
        std::fs::write(&path, scenario).expect("scenario written");
        let mut child = Command::new(binary())
            .args(["sim", "--listen", "127.0.0.1:0", "--scenario"])
            .arg(&path)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("simulator starts");
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let first = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("simulator prints its address");
        let value: serde_json::Value = serde_json::from_str(&first.text).expect("JSON line");
        let addr = value["addr"].as_str().expect("addr").to_string();
        Sim {
            child,
            addr,
            _lines: lines,
        }
    }

    /// `GET /_sim/stats`.
    pub fn stats(&self) -> serde_json::Value {
        let mut stream = TcpStream::connect(&self.addr).expect("simulator answers");
        write!(
            stream,
            "GET /_sim/stats HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .expect("request sent");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        serde_json::from_str(body).expect("stats are JSON")
    }

    /// Requests to `/v1/...` so far.
    pub fn requests(&self) -> u64 {
        self.stats()["requests_total"].as_u64().unwrap_or(0)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A daemon configuration, as TOML text, against `endpoint`.
pub struct DaemonConfig {
    pub endpoint: String,
    pub state_dir: PathBuf,
    pub watch_dir: PathBuf,
    pub requests_per_second: u32,
    pub burst: u32,
    pub max_in_flight: u32,
    pub interval: &'static str,
    pub not_found_grace: &'static str,
    pub log_level: &'static str,
}

impl DaemonConfig {
    pub fn text(&self) -> String {
        format!(
            "[cloud]\nendpoint = \"{endpoint}\"\nproject_id = \"{PROJECT}\"\n\n\
             [credentials]\nsource = \"env\"\n\n\
             [poll]\ninitial_interval = \"{interval}\"\nmax_interval = \"{interval}\"\n\
             not_found_grace = \"{grace}\"\n\n\
             [limits]\nrequests_per_second = {rps}\nburst = {burst}\nmax_in_flight = {in_flight}\n\n\
             [state]\ndir = \"{state}\"\n\n\
             [watch]\ndir = \"{watch}\"\n\n\
             [log]\nformat = \"json\"\nlevel = \"{level}\"\n",
            endpoint = self.endpoint,
            interval = self.interval,
            grace = self.not_found_grace,
            rps = self.requests_per_second,
            burst = self.burst,
            in_flight = self.max_in_flight,
            state = self.state_dir.display(),
            watch = self.watch_dir.display(),
            level = self.log_level,
        )
    }
}

/// A running daemon process.
pub struct Daemon {
    pub child: Child,
    pub spawned: Instant,
    pub lines: mpsc::Receiver<Line>,
}

impl Daemon {
    /// Starts `ecs-jobwatch run --config PATH`, with `NOTIFY_SOCKET` when
    /// given.
    pub fn start(config: &Path, notify_socket: Option<&Path>) -> Daemon {
        let mut command = Command::new(binary());
        command
            .args(["run", "--config"])
            .arg(config)
            .env_clear()
            .env("HUAWEICLOUD_SDK_AK", AK)
            .env("HUAWEICLOUD_SDK_SK", SK)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(socket) = notify_socket {
            command.env("NOTIFY_SOCKET", socket);
        }
        let spawned = Instant::now();
        let mut child = command.spawn().expect("daemon starts");
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        Daemon {
            child,
            spawned,
            lines,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Awaits the first stdout line whose `event` is `name`.
    pub fn await_event(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Option<(Instant, serde_json::Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line.text) else {
                continue;
            };
            if value["event"] == name {
                return Some((line.at, value));
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A bound `NOTIFY_SOCKET`: every datagram is read on a thread and passed
/// on with its arrival time.
pub struct NotifySocket {
    pub path: PathBuf,
    messages: mpsc::Receiver<Line>,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("notify socket");
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                if sender
                    .send(Line {
                        at: Instant::now(),
                        text,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        NotifySocket { path, messages }
    }

    /// Awaits the next message holding the line `state` (`READY=1`, ...).
    pub fn await_state(&self, state: &str, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.messages.recv_timeout(left).ok()?;
            if message.text.lines().any(|line| line == state) {
                return Some(message.at);
            }
        }
    }
}

/// The machine, for the record: `nproc`, the CPU model and `rustc -V`.
pub fn machine() -> String {
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let model = run("lscpu", &[])
        .lines()
        .find(|line| line.starts_with("Model name"))
        .map(|line| {
            line.split_once(':')
                .map_or("", |(_, v)| v)
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    format!(
        "nproc {}, {}, {}",
        run("nproc", &[]),
        model,
        run("rustc", &["-V"])
    )
}
