//! The metrics listener: the Prometheus recorder, and `/metrics`,
//! `/healthz` and `/readyz` on `metrics.listen`.
//!
//! Process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, ...) are collected
//! by `metrics-process` at each scrape, under their standard names.
//!
//! `/healthz` says whether the process and its scheduler are alive;
//! `/readyz` whether the scheduler makes progress and the API answered
//! anything but authentication errors lately.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use tokio::time::Instant;

use super::names::*;
use super::stats::{Stats, now_ms};

/// How long without scheduler progress before `/healthz` fails.
pub const STALL_LIMIT: Duration = Duration::from_secs(30);
/// How recent an answer of the API must be for `/readyz`.
pub const ANSWER_WINDOW: Duration = Duration::from_secs(300);

/// Installs the global Prometheus recorder (once per process).
pub fn install() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let latency = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let lag = &[0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0];
    // Jobs take seconds (a volume) to hours (a bare-metal batch).
    let jobs = &[
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(API_REQUEST_DURATION.into()), latency)?
        .set_buckets_for_metric(Matcher::Full(STATE_WRITE.into()), latency)?
        .set_buckets_for_metric(Matcher::Full(SCHEDULER_LAG.into()), lag)?
        .set_buckets_for_metric(Matcher::Full(BUDGET_WAIT.into()), lag)?
        .set_buckets_for_metric(Matcher::Full(JOB_DURATION.into()), jobs)?
        .install_recorder()?;
    describe();
    metrics_process::Collector::default().describe();
    ::metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// What the health endpoints read.
pub struct Health {
    stats: Arc<Stats>,
    progress: Mutex<(u64, Instant)>,
}

impl Health {
    /// Health over the scheduler's counters; the state is loaded by then.
    pub fn new(stats: Arc<Stats>) -> Health {
        let heartbeat = stats.heartbeat.load(Ordering::Relaxed);
        Health {
            stats,
            progress: Mutex::new((heartbeat, Instant::now())),
        }
    }

    /// Whether the scheduler's heartbeat moved within [`STALL_LIMIT`].
    fn progressing(&self) -> bool {
        let heartbeat = self.stats.heartbeat.load(Ordering::Relaxed);
        let Ok(mut progress) = self.progress.lock() else {
            return false;
        };
        let now = Instant::now();
        if progress.0 != heartbeat {
            *progress = (heartbeat, now);
        }
        now.saturating_duration_since(progress.1) < STALL_LIMIT
    }

    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<String> {
        if !self.progressing() {
            return Some("the scheduler has made no progress for 30 s".into());
        }
        let now = now_ms();
        let answered = self.stats.last_answer_ms.load(Ordering::Relaxed);
        let refused = self.stats.last_auth_failure_ms.load(Ordering::Relaxed);
        if refused > 0 && refused >= answered {
            return Some("the API refuses the credentials (authentication failed)".into());
        }
        let window = ANSWER_WINDOW.as_millis() as i64;
        let started = self.stats.started_ms.load(Ordering::Relaxed);
        let polls = self.stats.polls.load(Ordering::Relaxed);
        if polls > 0 && now - answered > window && now - started > window {
            return Some("the API has not answered in the last 5 minutes".into());
        }
        None
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = handle.clone();
    let upkeep_task = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state((handle, health));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep_task.abort();
    served
}

type AppState = (PrometheusHandle, Arc<Health>);

async fn metrics_page(State((handle, health)): State<AppState>) -> Response {
    metrics_process::Collector::default().collect();
    let ready = if health.not_ready().is_none() {
        1.0
    } else {
        0.0
    };
    ::metrics::gauge!(READY).set(ready);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

async fn healthz(State((_, health)): State<AppState>) -> Response {
    if health.progressing() {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    } else {
        let reason = "the scheduler has made no progress for 30 s";
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "reason": reason})),
        )
            .into_response()
    }
}

async fn readyz(State((_, health)): State<AppState>) -> Response {
    match health.not_ready() {
        None => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": reason})),
        )
            .into_response(),
    }
}

/// Binds the metrics listener, naming the address on failure.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| format!("metrics.listen: cannot listen on {addr}: {error}"))
}
