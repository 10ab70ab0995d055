//! `ecs-jobwatch sim`: the simulator of the job APIs on its own, until
//! SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::daemon::exit;

use super::fail;

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Serves `scenario_path` on `listen`; 0 after a stop signal.
pub fn main(listen: SocketAddr, scenario_path: PathBuf) -> ExitCode {
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
