//! The command line: clap definitions and dispatch to the library.
//!
//! Exit codes follow sysexits: 0 ok, 64 usage, 70 internal error, 78
//! configuration error. Every non-zero exit prints one line on stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use std::collections::BTreeMap;

use crate::config::{self, Config, LogFormat};
use crate::daemon::{self, RunOptions, exit};
use crate::huaweicloud::credentials::{CredentialProvider, Environment};
use crate::output::log;
use crate::store::Store;

/// Watches Huawei Cloud ECS jobs and announces every outcome as a
/// structured log event.
#[derive(Debug, Parser)]
#[command(name = "ecs-jobwatch", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Run {
        /// The configuration file [default: $ECS_JOBWATCH_CONFIG, else $CONFIGURATION_DIRECTORY/ecs-jobwatch.toml, else /etc/ecs-jobwatch/ecs-jobwatch.toml].
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Validate the configuration, the watch files and the credentials
    /// source, and print the effective configuration (secrets redacted).
    CheckConfig {
        /// The configuration file [default: as for `run`].
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// List the tracked jobs from the state store (never calls the API).
    Status {
        /// The configuration file, for `state.dir` [default: as for `run`].
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the bundled simulator and the daemon against it with a scripted
    /// set of jobs.
    Demo,
    /// Serve the bundled simulator of the ECS job API.
    Sim {
        /// Address to listen on, for example 127.0.0.1:8443 (port 0 picks a free one).
        #[arg(long)]
        listen: SocketAddr,
        /// The scenario file (TOML), see docs/simulator.md.
        #[arg(long)]
        scenario: PathBuf,
    },
}

/// Parses the command line, runs the command and maps the outcome to an
/// exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            // clap prints help and version on stdout, errors on stderr.
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Run { config } => run_daemon(config),
        Command::CheckConfig { config } => check_config(config),
        Command::Status { config, json } => status(config, json),
        Command::Demo => crate::demo::main(),
        Command::Sim { listen, scenario } => run_sim(listen, scenario),
    }
}

/// The process environment as a map (lossy for non-UTF-8 values, which
/// no variable we read can usefully hold).
pub fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

fn load_config(
    path: Option<PathBuf>,
    env: &BTreeMap<String, String>,
) -> Result<(PathBuf, Config), ExitCode> {
    let path = config::config_path(path, env);
    match Config::load(&path, env) {
        Ok(config) => Ok((path, config)),
        Err(error) => Err(fail(exit::CONFIG, error)),
    }
}

fn log_format(format: LogFormat) -> log::Format {
    match format {
        LogFormat::Json => log::Format::Json,
        LogFormat::Text => log::Format::Text,
        LogFormat::Journald => log::Format::Journald,
    }
}

fn run_daemon(config_path: Option<PathBuf>) -> ExitCode {
    let env = environment();
    let (path, config) = match load_config(config_path, &env) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if let Err(error) = log::init(log_format(config.log().format), &config.log().level, &env) {
        return fail(exit::CONFIG, format!("log.format: {error:#}"));
    }
    // One thread runs the whole daemon: the scheduler, its calls and the
    // endpoints. A poll is a few microseconds of work, and handing each
    // answer from a worker thread to the scheduler's cost more than the
    // work itself (the throughput benchmark). SQLite writes have a thread
    // of their own.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(exit::SOFTWARE, format!("cannot start the runtime: {error}")),
    };
    // A file size limit (RLIMIT_FSIZE) must fail a write with EFBIG, which
    // the state store reports and survives, not kill the process.
    if let Err(error) = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    ) {
        return fail(
            exit::SOFTWARE,
            format!("cannot install the SIGXFSZ handler: {error}"),
        );
    }
    runtime.block_on(async move {
        let (orders, control) = tokio::sync::mpsc::channel(1);
        if let Err(error) = crate::daemon::signals::forward(orders.clone()) {
            return fail(
                exit::SOFTWARE,
                format!("cannot install signal handlers: {error}"),
            );
        }
        let options = RunOptions {
            config_path: Some(path),
            env,
            ..RunOptions::default()
        };
        // The sender stays alive for the whole run, so only an order stops it.
        let _orders = orders;
        match daemon::run(config, options, control).await {
            Ok(()) => ExitCode::from(exit::OK),
            Err(error) => fail(error.exit_code(), error),
        }
    })
}

fn check_config(config_path: Option<PathBuf>) -> ExitCode {
    let env = environment();
    let (path, config) = match load_config(config_path, &env) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let (list, problems) = daemon::read_watch_list(&config);
    if let Some(problem) = problems.first() {
        for other in &problems[1..] {
            eprintln!("ecs-jobwatch: {other}");
        }
        return fail(exit::CONFIG, problem);
    }
    let credentials = daemon::account::credentials_config(&config);
    let provider =
        match CredentialProvider::new(&credentials, &Environment::from_pairs(env.clone())) {
            Ok((provider, warnings)) => {
                for warning in warnings {
                    eprintln!("ecs-jobwatch: warning: {warning}");
                }
                provider
            }
            Err(error) => return fail(exit::CONFIG, format!("credentials: {error}")),
        };
    if let Err(error) = crate::output::webhook::load_sinks(&config) {
        return fail(exit::CONFIG, error);
    }
    println!("# ecs-jobwatch check-config: {} is valid", path.display());
    println!("# credentials: {}", provider.resolved());
    println!("# watch list: {} jobs", list.len());
    print!("{}", config.to_redacted_toml());
    ExitCode::from(exit::OK)
}

fn status(config_path: Option<PathBuf>, json: bool) -> ExitCode {
    let env = environment();
    let (_, config) = match load_config(config_path, &env) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let store = match Store::open_read_only(&config.state().dir) {
        Ok(store) => store,
        Err(error) => return fail(exit::state_exit_code(&error), error),
    };
    let jobs = match store.load_jobs() {
        Ok(jobs) => jobs,
        Err(error) => return fail(exit::SOFTWARE, error),
    };
    let time = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    if json {
        let rows: Vec<serde_json::Value> = jobs
            .iter()
            .map(|job| {
                serde_json::json!({
                    "job": job.key.to_string(),
                    "job_id": job.key.id.as_str(),
                    "service": job.key.service.as_str(),
                    "project": job.key.project.as_str(),
                    "status": job.status,
                    "job_type": job.job_type,
                    "since": time(job.last_change.or(Some(job.tracked_since))),
                    "polls": job.polls,
                    "next_poll": if job.finished { None } else { time(job.next_poll) },
                    "finished": job.finished,
                    "labels": job.labels,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return ExitCode::from(exit::OK);
    }
    println!(
        "{:<34} {:<8} {:<12} {:<16} {:<21} {:>6} {:<21} LABELS",
        "JOB", "SERVICE", "PROJECT", "STATUS", "SINCE", "POLLS", "NEXT POLL"
    );
    for job in &jobs {
        let labels: Vec<String> = job.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<34} {:<8} {:<12} {:<16} {:<21} {:>6} {:<21} {}",
            job.key.id.as_str(),
            job.key.service.as_str(),
            job.key.project.as_str(),
            job.status.as_deref().unwrap_or("-"),
            time(job.last_change.or(Some(job.tracked_since))).unwrap_or_default(),
            job.polls,
            if job.finished {
                "-".to_string()
            } else {
                time(job.next_poll).unwrap_or_else(|| "-".into())
            },
            labels.join(" ")
        );
    }
    ExitCode::from(exit::OK)
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ecs-jobwatch: {message}");
    ExitCode::from(code)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn run_sim(listen: SocketAddr, scenario_path: PathBuf) -> ExitCode {
    let scenario = match crate::sim::Scenario::load(&scenario_path) {
        Ok(scenario) => scenario,
        Err(error) => return fail(exit::CONFIG, error),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(exit::SOFTWARE, format!("cannot start the runtime: {error}")),
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(error) => return fail(exit::CONFIG, format!("cannot listen on {listen}: {error}")),
        };
        match listener.local_addr() {
            Ok(addr) => println!(
                "{}",
                serde_json::json!({"event": "sim.listening", "addr": addr.to_string(),
                    "message": format!("simulator listening on http://{addr}")})
            ),
            Err(error) => return fail(exit::SOFTWARE, error),
        }
        match crate::sim::serve(listener, scenario, shutdown_signal()).await {
            Ok(()) => ExitCode::from(exit::OK),
            Err(error) => fail(exit::SOFTWARE, format!("{error:#}")),
        }
    })
}

/// Completes on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            // Without signal handlers, wait for ctrl-c through the portable path.
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
