//! `ecs-jobwatch run`: the daemon in the foreground, on one tokio thread,
//! stopped by SIGTERM or SIGINT (see [`crate::daemon::signals`]).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::LogFormat;
use crate::daemon::{self, RunOptions, exit};
use crate::output::log;

use super::{environment, fail, load_config};

fn log_format(format: LogFormat) -> log::Format {
    match format {
        LogFormat::Json => log::Format::Json,
        LogFormat::Text => log::Format::Text,
        LogFormat::Journald => log::Format::Journald,
    }
}

/// Runs the daemon until it is stopped; the exit code of its outcome.
pub fn main(config_path: Option<PathBuf>) -> ExitCode {
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
