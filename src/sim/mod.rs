//! The job API simulator: an HTTP server that speaks the job APIs of the
//! Huawei Cloud job family (ECS, BMS, EVS, IMS, CCE, RDS and EIP, each at
//! its own path, with its own body shape, time format, status words and
//! "no such job" answer), checks SDK-HMAC-SHA256 signatures like the API
//! gateway, plays job timelines from a scenario, and injects faults, for
//! the daemon's tests, demo and benchmarks. One simulator is every
//! service's endpoint: `http://ADDR/{service}` (and ECS also at
//! `http://ADDR/`).
//!
//! `spawn` runs it on an ephemeral loopback port in the background and
//! returns a `SimHandle`; `serve` runs it on a given listener until a
//! shutdown future completes (the `sim` subcommand). The unsigned control
//! API under `/_sim/` and the handle's methods read statistics, add jobs
//! and replace fault rules while it runs. It also serves SMN's publish API
//! under `/smn` and records every message ([`SmnMessage`], `GET /_sim/smn`). `docs/simulator.md` describes the
//! scenario format and every answer.

mod auth;
mod bodies;
mod faults;
mod routes;
mod scenario;
mod server;
mod smn;
mod state;
mod timeline;
mod tls;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use scenario::{
    Credential, FaultKind, FaultRule, JobSpec, Limits, NotFoundStyle, Scenario, ScenarioError,
    SubJobSpec, TimelineEntry,
};
pub use server::{FORBIDDEN_CODE, NO_SUCH_API_CODE};
pub use smn::SmnMessage;
pub use state::{JobStats, ServiceStats, Stats};
pub use tls::{ServerOptions, TlsIdentity};

use state::Shared;

/// A simulator running in a background task.
///
/// Dropping the handle stops the server as `shutdown` would, without
/// waiting for it.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl SimHandle {
    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` when serving HTTPS), the
    /// endpoint to point a client at (ECS's job API is served at its root).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `http://127.0.0.1:PORT/smn` (or `https://`), the SMN endpoint
    /// (publishes are served below it).
    pub fn smn_url(&self) -> String {
        format!("{}/smn", self.base_url())
    }

    /// Every message SMN topics received so far, in arrival order.
    pub fn smn_messages(&self) -> Vec<SmnMessage> {
        self.shared.lock().smn_messages.clone()
    }

    /// A copy of the statistics so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Adds jobs whose timelines start now; a job with an existing id
    /// replaces it. Invalid jobs are logged and none of the list is added;
    /// use `try_add_jobs` to see the error.
    pub fn add_jobs(&self, jobs: Vec<JobSpec>) {
        if let Err(error) = self.try_add_jobs(jobs) {
            tracing::warn!(%error, "simulator: jobs not added");
        }
    }

    /// Like `add_jobs`, but returns the validation error.
    pub fn try_add_jobs(&self, jobs: Vec<JobSpec>) -> Result<(), ScenarioError> {
        self.shared.add_jobs(jobs).map(|_| ())
    }

    /// Replaces the fault rules; their windows stay relative to the
    /// simulator's start. Invalid rules are logged and the old ones kept;
    /// use `try_set_faults` to see the error.
    pub fn set_faults(&self, faults: Vec<FaultRule>) {
        if let Err(error) = self.try_set_faults(faults) {
            tracing::warn!(%error, "simulator: fault rules not replaced");
        }
    }

    /// Like `set_faults`, but returns the validation error.
    pub fn try_set_faults(&self, faults: Vec<FaultRule>) -> Result<(), ScenarioError> {
        self.shared.set_faults(faults).map(|_| ())
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the
    /// server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "simulator: server ended with an error"),
            Err(error) => tracing::warn!(%error, "simulator: server task failed"),
        }
    }
}

/// Binds 127.0.0.1:0 and serves HTTP in a background task (for tests).
pub async fn spawn(scenario: Scenario) -> anyhow::Result<SimHandle> {
    spawn_with(scenario, ServerOptions::default()).await
}

/// Like [`spawn`], with HTTPS or the closing of idle connections.
pub async fn spawn_with(scenario: Scenario, options: ServerOptions) -> anyhow::Result<SimHandle> {
    let shared = Shared::new(scenario).context("invalid simulator scenario")?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("cannot bind the simulator to 127.0.0.1:0")?;
    let addr = listener
        .local_addr()
        .context("cannot read the simulator's address")?;
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // A bad identity fails here, not in the background task.
    if let Some(identity) = &options.tls {
        tls::acceptor(identity)?;
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        // A dropped sender stops the server as well.
        let _ = stopped.await;
    };
    let task = tokio::spawn(server::run(
        listener,
        Arc::clone(&shared),
        options,
        shutdown,
    ));
    Ok(SimHandle {
        addr,
        scheme,
        shared,
        stop: Some(stop),
        task,
    })
}

/// Serves HTTP on an already bound listener until `shutdown` completes (for
/// the `sim` subcommand).
pub async fn serve(
    listener: TcpListener,
    scenario: Scenario,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(listener, scenario, ServerOptions::default(), shutdown).await
}

/// Like [`serve`], with HTTPS or the closing of idle connections.
pub async fn serve_with(
    listener: TcpListener,
    scenario: Scenario,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shared = Shared::new(scenario).context("invalid simulator scenario")?;
    server::run(listener, shared, options, shutdown).await
}

#[cfg(test)]
mod tests;
