//! The command line: clap definitions and dispatch to the library.
//!
//! Exit codes follow sysexits: 0 ok, 64 usage, 70 internal error, 78
//! configuration error. Every non-zero exit prints one line on stderr.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command line was wrong.
pub const EXIT_USAGE: u8 = 64;
/// Exit code: an internal error.
pub const EXIT_SOFTWARE: u8 = 70;
/// Exit code: the configuration is invalid.
pub const EXIT_CONFIG: u8 = 78;

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
                EXIT_USAGE
            } else {
                EXIT_OK
            };
            // clap prints help and version on stdout, errors on stderr.
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Sim { listen, scenario } => run_sim(listen, scenario),
    }
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
        Err(error) => return fail(EXIT_CONFIG, error),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(EXIT_SOFTWARE, format!("cannot start the runtime: {error}")),
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(error) => return fail(EXIT_CONFIG, format!("cannot listen on {listen}: {error}")),
        };
        match listener.local_addr() {
            Ok(addr) => println!(
                "{}",
                serde_json::json!({"event": "sim.listening", "addr": addr.to_string(),
                    "message": format!("simulator listening on http://{addr}")})
            ),
            Err(error) => return fail(EXIT_SOFTWARE, error),
        }
        match crate::sim::serve(listener, scenario, shutdown_signal()).await {
            Ok(()) => ExitCode::from(EXIT_OK),
            Err(error) => fail(EXIT_SOFTWARE, format!("{error:#}")),
        }
    })
}

/// Completes on the first SIGTERM or SIGINT.
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
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
