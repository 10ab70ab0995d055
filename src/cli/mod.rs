//! The command line: clap definitions and dispatch, one file per command.
//!
//! `run` (the daemon), `check-config`, `status` (the state store, one job
//! or all), `add` (one line into `watch.dir`), `wait` (until jobs have an
//! outcome), `demo` and `sim`. Every exit code comes from the one table in
//! [`crate::daemon::exit`]; every non-zero exit prints one line on stderr
//! saying what is wrong.

mod add;
mod check_config;
mod run;
mod sim;
mod status;
mod wait;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::daemon::exit;
use crate::job::JobKey;
use crate::watch;

pub use add::{ADD_FILE, LOCK_FILE};

/// Watches Huawei Cloud jobs (ECS, BMS, EVS, IMS, CCE, RDS, EIP) and
/// announces every outcome as a structured log event.
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
    /// List the tracked jobs from the state store, or show one job (never
    /// calls the API). With JOB: exit 0 SUCCESS, 1 FAIL or not found, 3
    /// PENDING_PAYMENT, 4 still working, 5 not tracked.
    Status {
        /// The configuration file, for `state.dir` [default: as for `run`].
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// One job, `[PROJECT/][SERVICE:]JOB_ID`.
        job: Option<String>,
    },
    /// Add one job to the watch list: a line in `watch.dir/added.jobs`,
    /// written under a lock, so parallel adds lose nothing.
    Add {
        /// The configuration file, for `watch.dir` [default: as for `run`].
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// The job, `[PROJECT/][SERVICE:]JOB_ID`.
        job: String,
        /// Labels carried on every event of the job, `key=value`.
        labels: Vec<String>,
    },
    /// Wait until every job has an outcome (SUCCESS, FAIL, not found,
    /// PENDING_PAYMENT). Exit 0 all SUCCESS, 1 any FAIL or not found, 3 any
    /// PENDING_PAYMENT, 124 timeout.
    Wait {
        /// The configuration file [default: as for `run`].
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Give up after this long (`90s`, `30m`, `2h`); exit 124.
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// Print each job's last event as one JSON object per line.
        #[arg(long)]
        json: bool,
        /// The jobs, `[PROJECT/][SERVICE:]JOB_ID`.
        #[arg(required = true)]
        jobs: Vec<String>,
    },
    /// Run the bundled simulator and the daemon against it with a scripted
    /// set of jobs.
    Demo,
    /// Serve the bundled simulator of the job APIs.
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
        Command::Run { config } => run::main(config),
        Command::CheckConfig { config } => check_config::main(config),
        Command::Status { config, json, job } => status::main(config, json, job),
        Command::Add {
            config,
            job,
            labels,
        } => add::main(config, &job, &labels),
        Command::Wait {
            config,
            timeout,
            json,
            jobs,
        } => wait::main(wait::Options {
            config,
            timeout,
            json,
            jobs,
        }),
        Command::Demo => crate::demo::main(),
        Command::Sim { listen, scenario } => sim::main(listen, scenario),
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

/// Loads the configuration the flag, `$ECS_JOBWATCH_CONFIG` or the
/// default names; a configuration that does not load is exit 78.
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

/// Parses a job named on the command line and checks that the
/// configuration can poll it (its project is configured, its service has
/// an endpoint there). The error names the job and what is wrong.
fn parse_job(config: &Config, text: &str) -> Result<JobKey, String> {
    let key = JobKey::parse(text).map_err(|error| format!("bad job {text:?}: {error}"))?;
    match config.project(&key.project) {
        None => {
            let projects: Vec<_> = config
                .projects()
                .iter()
                .map(|project| project.name.clone())
                .collect();
            Err(format!(
                "job {text:?}: {}",
                watch::unknown_project(&key.project, &projects)
            ))
        }
        Some(project) => match project.endpoint(key.service) {
            Ok(_) => Ok(key),
            Err(missing) => Err(format!("job {text:?}: {missing}")),
        },
    }
}

/// Prints `ecs-jobwatch: {message}` on stderr and returns `code`.
fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ecs-jobwatch: {message}");
    ExitCode::from(code)
}

/// A `--timeout` value: humantime's units (`90s`, `30m`, `1h 30m`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    Ok(duration)
}

/// A Unix millisecond as RFC 3339 (seconds, UTC).
fn time(ms: Option<i64>) -> Option<String> {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
