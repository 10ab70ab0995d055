//! CPU per poll against an outside server: the release daemon polls jobs
//! on Debian's nginx (not our simulator), which answers a fixed RUNNING
//! ECS job body for any `/v1/{project}/jobs/{id}`, at 50, 300 and 2,000
//! polls per second, over plain HTTP and over TLS (a CA and a server
//! certificate made at run time with openssl, the CA given to the daemon
//! as `cloud.ca_file`). In the same run, a ShowJob loop written with the
//! official Python SDK (`huaweicloudsdkecs` 3.1.219,
//! `benches/support/sdk_loop.py`) polls the same server at the same rates.
//! nginx checks no signature; both clients sign every request anyway.
//!
//! The CPU of each client is its own process's user + system time from
//! `/proc/<pid>/stat` over the measured window (every thread; nginx is
//! not counted); polls are nginx's request count over the same window
//! (`stub_status`), so a client that cannot keep up shows the rate it
//! reached. One client runs at a time.
//!
//! `cargo bench --bench poll_cpu` runs every rate (about six minutes);
//! `-- --rates 300 --window 20` runs the rates and window (seconds) of
//! your choice. Under `cargo test --all-targets` it smoke-runs both
//! clients at 20 polls per second over both schemes for a second each and
//! fails unless each of the four got answers. Without nginx, openssl or
//! the SDK it fails under `CI` or `REQUIRE_TOOLS=1` (`.ci/run` installs
//! them), and elsewhere skips visibly, as the tests do
//! (`tests/it/harness/skip.rs`).

#[path = "support/mod.rs"]
mod support;

#[path = "../tests/it/harness/skip.rs"]
#[allow(dead_code)]
mod skip;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Daemon, DaemonConfig};

/// The body of every answer: the real RUNNING response of the reference
/// (`shared/reference/ecs-job-api.md`), one sub-job.
const BODY: &str = r#"{"begin_time":"2022-02-17T05:41:55.441Z","end_time":"","entities":{"sub_jobs":[{"begin_time":"2022-02-17T05:41:55.554Z","end_time":"","entities":{"server_id":"1c74e090-c569-4b52-9eaa-fd34776cec28"},"job_id":"ff8080827e7810fb017f06338ae3132c","job_type":"createSingleServer","status":"RUNNING"}],"sub_jobs_total":1},"job_id":"ff8080827e7810fb017f06338a731328","job_type":"createServer","status":"RUNNING"}"#;

/// The measuring window for a rate.
type WindowFor = Box<dyn Fn(u32) -> Duration>;

/// Seconds of polling before the window opens (connections made, the
/// daemon's start-up and the SDK's imports done).
const WARMUP: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Plain,
    Tls,
}

impl Scheme {
    fn label(self) -> &'static str {
        match self {
            Scheme::Plain => "HTTP",
            Scheme::Tls => "HTTPS",
        }
    }
}

/// What one client did in the window.
#[derive(Clone, Copy, Default)]
struct Measured {
    polls: u64,
    seconds: f64,
    cpu: Duration,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.polls as f64 / self.seconds.max(1e-9)
    }

    fn cpu_us_per_poll(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.polls.max(1) as f64
    }
}

/// nginx on two loopback ports (plain and TLS), in a directory of its own.
struct Nginx {
    child: Child,
    plain: u16,
    tls: u16,
    ca: PathBuf,
}

impl Nginx {
    fn start(dir: &Path) -> Nginx {
        make_certificates(dir);
        let plain = free_port();
        let tls = free_port();
        let d = dir.display();
        let config = format!(
            "worker_processes 1;\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             \x20 server {{\n    listen 127.0.0.1:{plain};\n    listen 127.0.0.1:{tls} ssl;\n\
             \x20   ssl_certificate {d}/server.pem;\n    ssl_certificate_key {d}/server.key;\n\
             \x20   location ~ ^/v1/[^/]+/jobs/[^/]+$ {{\n      default_type application/json;\n\
             \x20     add_header X-Request-Id $request_id always;\n      return 200 '{BODY}';\n    }}\n\
             \x20   location = /_status {{ stub_status; }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config).expect("nginx configuration written");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            child,
            plain,
            tls,
            ca: dir.join("ca.pem"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while nginx.try_requests().is_none() {
            assert!(
                Instant::now() < deadline,
                "nginx did not answer on 127.0.0.1:{plain}; see {}",
                dir.join("error.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }

    fn endpoint(&self, scheme: Scheme) -> String {
        match scheme {
            Scheme::Plain => format!("http://127.0.0.1:{}", self.plain),
            Scheme::Tls => format!("https://127.0.0.1:{}", self.tls),
        }
    }

    /// nginx's count of requests so far (the `stub_status` request that
    /// reads it included).
    fn try_requests(&self) -> Option<u64> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.plain)).ok()?;
        stream
            .write_all(b"GET /_status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let body = response.split_once("\r\n\r\n")?.1;
        // "server accepts handled requests\n A H R"
        let counts = body.lines().nth(2)?;
        counts.split_whitespace().nth(2)?.parse().ok()
    }

    fn requests(&self) -> u64 {
        self.try_requests().expect("nginx answers its status")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        support::stop(&mut self.child);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A CA and a server certificate for 127.0.0.1 signed by it (P-256, two
/// days), made with openssl.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?} failed");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
    ca.extend(["-subj", "/CN=ecs-jobwatch bench CA"]);
    run(&ca);
    let mut request = vec!["req"];
    request.extend(ec);
    request.extend(["-keyout", "server.key", "-out", "server.csr"]);
    request.extend(["-subj", "/CN=127.0.0.1"]);
    run(&request);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions written");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

/// Measures the window: CPU of `pid` and nginx's requests.
fn measure(nginx: &Nginx, pid: u32, window: Duration) -> Measured {
    let (t0, cpu0, requests0) = (Instant::now(), support::cpu_time(pid), nginx.requests());
    std::thread::sleep(window);
    let (t1, cpu1, requests1) = (Instant::now(), support::cpu_time(pid), nginx.requests());
    Measured {
        // The second status request is counted in `requests1`.
        polls: requests1.saturating_sub(requests0 + 1),
        seconds: (t1 - t0).as_secs_f64(),
        cpu: cpu1.saturating_sub(cpu0),
    }
}

/// The daemon polling `rate` jobs once a second each.
fn run_daemon(
    nginx: &Nginx,
    scheme: Scheme,
    rate: u32,
    warmup: Duration,
    window: Duration,
) -> Measured {
    let dir = tempfile::tempdir().expect("temporary directory");
    let state_dir = dir.path().join("state");
    let watch_dir = dir.path().join("jobs.d");
    std::fs::create_dir(&state_dir).expect("state directory");
    std::fs::create_dir(&watch_dir).expect("watch directory");
    let ids: String = (0..rate as usize)
        .map(|n| format!("{}\n", support::job_id(n)))
        .collect();
    std::fs::write(watch_dir.join("bench.jobs"), ids).expect("watch file");
    let config = DaemonConfig {
        endpoint: nginx.endpoint(scheme),
        state_dir,
        watch_dir,
        requests_per_second: 2 * rate + 50,
        burst: 50,
        max_in_flight: 64,
        interval: "1s",
        not_found_grace: "1h",
        log_level: "warn",
    };
    let mut text = config.text();
    if scheme == Scheme::Tls {
        text = text.replacen(
            "[cloud]\n",
            &format!("[cloud]\nca_file = \"{}\"\n", nginx.ca.display()),
            1,
        );
    }
    let path = dir.path().join("ecs-jobwatch.toml");
    std::fs::write(&path, text).expect("configuration");
    let daemon = Daemon::start(&path, None);
    std::thread::sleep(warmup);
    let measured = measure(nginx, daemon.pid(), window);
    // Anything the daemon printed at `warn` is a failure of the run.
    let complaints: Vec<String> = daemon.lines.try_iter().map(|line| line.text).collect();
    assert!(
        complaints.is_empty(),
        "the daemon complained ({}): {complaints:?}",
        scheme.label()
    );
    measured
}

/// The official SDK's ShowJob loop at `rate` calls per second.
fn run_sdk(
    nginx: &Nginx,
    scheme: Scheme,
    rate: u32,
    warmup: Duration,
    window: Duration,
) -> Measured {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/support/sdk_loop.py");
    let seconds = (warmup + window).as_secs_f64() + 3.0;
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(["--endpoint", &nginx.endpoint(scheme)])
        .args(["--rate", &rate.to_string()])
        .args(["--seconds", &format!("{seconds:.1}")])
        .args(["--jobs", &rate.to_string()]);
    if scheme == Scheme::Tls {
        command.arg("--ca-file").arg(&nginx.ca);
    }
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env_remove(name);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(ready, "ready", "the SDK loop did not start");
    std::thread::sleep(warmup);
    let measured = measure(nginx, child.id(), window);
    let summary = lines.next().and_then(Result::ok).unwrap_or_default();
    let status = child.wait().expect("the SDK loop ends");
    assert!(
        status.success(),
        "the SDK loop failed ({}): {summary}",
        scheme.label()
    );
    measured
}

/// Which of nginx, openssl and the SDK are missing.
fn missing_tools() -> Vec<&'static str> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let mut missing = Vec::new();
    if !works("nginx", &["-v"]) {
        missing.push("nginx");
    }
    if !works("openssl", &["version"]) {
        missing.push("openssl");
    }
    if !works("python3", &["-c", "import huaweicloudsdkecs"]) {
        missing.push("huaweicloudsdkecs (pip install huaweicloudsdkecs==3.1.219)");
    }
    missing
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let full = support::full_run();
    let missing = missing_tools();
    if !missing.is_empty() {
        // The tests' rule: a failure under CI or REQUIRE_TOOLS=1, else a
        // skip that is printed and logged for `.ci/run`'s skip summary.
        skip::skip(
            &format!("{} (benches/poll_cpu.rs)", missing.join(", ")),
            "not installed",
        );
        return;
    }
    let (rates, warmup, window_for): (Vec<u32>, Duration, WindowFor) = if !full {
        println!("poll_cpu: smoke run only (use `cargo bench --bench poll_cpu` to measure)");
        (
            vec![20],
            Duration::from_millis(2500),
            Box::new(|_| Duration::from_secs(1)),
        )
    } else {
        let rates = arg("--rates").map_or_else(
            || vec![50, 300, 2000],
            |text| {
                text.split(',')
                    .filter_map(|r| r.trim().parse().ok())
                    .collect()
            },
        );
        let window = arg("--window").and_then(|w| w.parse::<f64>().ok());
        (
            rates,
            WARMUP,
            Box::new(move |rate| match window {
                Some(seconds) => Duration::from_secs_f64(seconds),
                // About 2,000 polls or more in every window, so that the
                // 10 ms clock ticks of `/proc/<pid>/stat` stay small.
                None => Duration::from_secs(match rate {
                    0..=99 => 40,
                    100..=999 => 20,
                    _ => 10,
                }),
            }),
        )
    };
    println!("machine: {}", support::machine());
    let dir = tempfile::tempdir().expect("temporary directory");
    let nginx = Nginx::start(dir.path());
    println!();
    println!(
        "| target polls/s | scheme | ecs-jobwatch polls/s | ecs-jobwatch CPU µs/poll | SDK loop polls/s | SDK loop CPU µs/poll | SDK ÷ ecs-jobwatch |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for &rate in &rates {
        for scheme in [Scheme::Plain, Scheme::Tls] {
            let window = window_for(rate);
            let daemon = run_daemon(&nginx, scheme, rate, warmup, window);
            let sdk = run_sdk(&nginx, scheme, rate, warmup, window);
            println!(
                "| {rate} | {} | {:.0} | {:.1} | {:.0} | {:.0} | {:.1}× |",
                scheme.label(),
                daemon.rate(),
                daemon.cpu_us_per_poll(),
                sdk.rate(),
                sdk.cpu_us_per_poll(),
                sdk.cpu_us_per_poll() / daemon.cpu_us_per_poll().max(1e-9),
            );
            for (who, measured) in [("ecs-jobwatch", daemon), ("SDK loop", sdk)] {
                if measured.polls == 0 {
                    failures.push(format!("{who} made no poll over {}", scheme.label()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
