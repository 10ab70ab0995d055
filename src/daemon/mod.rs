//! The wiring of `ecs-jobwatch run`: configuration in, a running scheduler
//! out, until told to stop.
//!
//! [`run`] takes a validated [`Config`] and a stream of [`Control`]
//! orders (the signal handler feeds it; tests and the demo send orders
//! directly), so the whole daemon runs in-process in tests. The edge lives
//! here: files, the state store, credentials, the HTTP client; decisions
//! live in the scheduler and the policies it calls.

pub mod account;
pub mod exit;
mod reload;
pub mod signals;
pub mod systemd;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch as signal};

use crate::config::Config;
use crate::daemon::systemd::{Monitor, Notifier};
use crate::huaweicloud::credentials::Environment;
use crate::job::{JobKey, ProjectName};
use crate::output::event;
use crate::output::log;
use crate::output::notify::{self, Running};
use crate::policy::cadence::Cadence;
use crate::scheduler::{self, Command, Observer, Settings};
use crate::store::{Store, Writer, db_path, now_ms};
use reload::Current;

use crate::telemetry::{self, Stats};
use crate::watch::{self, WatchList};
pub use account::{Account, connect};
pub use exit::DaemonError;

/// How often `watch.dir` is scanned for changes.
pub const WATCH_SCAN_INTERVAL: Duration = Duration::from_secs(2);
/// How often `STATUS=` is refreshed.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// How often finished jobs past `state.retention` are forgotten.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// Orders to a running daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Re-read the configuration and the watch list.
    Reload,
    /// Stop gracefully.
    Shutdown,
}

/// What `run` needs besides the configuration.
#[derive(Default)]
pub struct RunOptions {
    /// The configuration file, re-read on reload (`None`: reload keeps the
    /// configuration and re-reads only the watch list).
    pub config_path: Option<PathBuf>,
    /// A snapshot of the environment.
    pub env: BTreeMap<String, String>,
    /// Sees every event the scheduler announces.
    pub observer: Option<Observer>,
    /// Told once the state is loaded and polling is armed.
    pub ready: Option<oneshot::Sender<Arc<Stats>>>,
}

/// The scheduler's settings of a configuration and its account.
pub fn settings(config: &Config, account: &Account) -> Settings {
    let poll = config.poll();
    let limits = config.limits();
    Settings {
        cadence: Cadence {
            initial_interval: poll.initial_interval,
            max_interval: poll.max_interval,
            pending_payment_interval: poll.pending_payment_interval,
            job_timeout: poll.job_timeout,
            not_found_grace: poll.not_found_grace,
        },
        requests_per_second: limits.requests_per_second,
        burst: limits.burst,
        max_in_flight: limits.max_in_flight,
        projects: account.projects.clone(),
        adaptive: poll.adaptive,
        sinks: notify::filters(config),
    }
}

/// Reads the watch list of a configuration, with every problem.
pub fn read_watch_list(config: &Config) -> (WatchList, Vec<watch::Problem>) {
    let projects: Vec<ProjectName> = config
        .projects()
        .iter()
        .map(|project| project.name.clone())
        .collect();
    let check = |key: &JobKey| match config.project(&key.project) {
        None => Err(watch::unknown_project(&key.project, &projects)),
        Some(project) => project
            .endpoint(key.service)
            .map(|_| ())
            .map_err(|missing| missing.to_string()),
    };
    watch::load(&config.watch().jobs, config.watch().dir.as_deref(), &check)
}

/// Reads the watch list of a configuration, emitting every problem.
pub fn load_watch_list(config: &Config) -> WatchList {
    let (list, problems) = read_watch_list(config);
    for problem in problems {
        log::announce(&event::watch_problem(&problem.to_string()));
    }
    list
}

/// Runs the daemon until [`Control::Shutdown`] (or the sender is dropped).
pub async fn run(
    config: Config,
    options: RunOptions,
    mut control: mpsc::Receiver<Control>,
) -> Result<(), DaemonError> {
    let env = Environment::from_pairs(options.env.clone());
    let account = connect(&config, &env).await?;
    let sinks = notify::load(&config, &|project| account.project_id(project))
        .map_err(DaemonError::Config)?;
    // The recorder goes in before the delivery tasks and the scheduler
    // start, so that no early count is lost and every known series is
    // there from the first scrape.
    let recorder = match config.metrics().listen {
        Some(_) => {
            let handle = telemetry::http::install()
                .map_err(|error| DaemonError::Internal(format!("metrics: {error:#}")))?;
            telemetry::export_known(&event::NAMES);
            Some(handle)
        }
        None => None,
    };

    let state_dir = config.state().dir.clone();
    let mut store = Store::open(&state_dir)?;
    let retention_ms = config.state().retention.as_millis() as i64;
    store.forget_finished_before(now_ms() - retention_ms)?;
    let records = store.load_jobs()?;
    let announced = store.announced_for_unfinished()?;
    let durations = store.durations(crate::policy::adaptive::SAMPLE_SIZE)?;
    // The writer tells the delivery tasks when it committed new outbox rows.
    let (outbox_committed, outbox_wake) = signal::channel(0u64);
    let writer = Writer::start_with_outbox_hook(
        store,
        Box::new(|error| {
            log::announce(&event::state_error(&error.to_string()));
        }),
        Box::new(move || outbox_committed.send_modify(|n| *n = n.wrapping_add(1))),
    );
    // Rows of a sink's former key move to its name; rows of sinks no longer
    // configured are given up. The writer has written nothing yet.
    notify::reconcile(&db_path(&state_dir), &sinks).map_err(DaemonError::Internal)?;

    // The listener is bound now so a bad address fails the start instead
    // of going unnoticed.
    let metrics = match (config.metrics().listen, recorder) {
        (Some(addr), Some(handle)) => {
            let listener = telemetry::http::bind(addr)
                .await
                .map_err(DaemonError::Config)?;
            if let Ok(bound) = listener.local_addr() {
                log::announce(&event::metrics_listening(&bound.to_string()));
            }
            Some((handle, listener))
        }
        _ => None,
    };

    let watch_list = load_watch_list(&config);
    let mut fingerprint = config.watch().dir.as_deref().map(watch::fingerprint);
    let handle = scheduler::spawn(scheduler::Start {
        settings: settings(&config, &account),
        poller: Arc::new(account.fleet.clone()),
        writer,
        records,
        announced,
        watch_list,
        durations,
        observer: options.observer,
    });
    let stats = handle.stats.clone();
    // The delivery tasks start once the scheduler can grant the permits
    // of SMN publishes.
    let deliveries = Running::start(
        &db_path(&state_dir),
        sinks,
        &outbox_wake,
        &account.notify(handle.permits()),
    )
    .map_err(DaemonError::Internal)?;
    // The scheduler has built its job table; what loading took is free.
    release_freed_memory();
    let (metrics_stop, metrics_stopped) = oneshot::channel::<()>();
    let metrics_task = metrics.map(|(prometheus, listener)| {
        let health = Arc::new(telemetry::http::Health::new(stats.clone()));
        tokio::spawn(telemetry::http::serve(
            listener,
            prometheus,
            health,
            async {
                let _ = metrics_stopped.await;
            },
        ))
    });
    // The scheduler has applied the watch list before it answers anything.
    log::announce(&event::daemon_started(watch_list_len(&stats)));
    if let Some(ready) = options.ready {
        let _ = ready.send(stats.clone());
    }

    let notifier = Notifier::from_env();
    notifier.ready();
    let mut monitor = Monitor::new(&stats);
    notifier.status(&monitor.status_line(&stats, now_ms()));
    let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog = notifier.watchdog_interval().map(|period| {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });

    let mut current = Current {
        config,
        account,
        deliveries: Some(deliveries),
        outbox_db: db_path(&state_dir),
        outbox_wake,
    };
    let mut scan = tokio::time::interval(WATCH_SCAN_INTERVAL);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retention = tokio::time::interval(RETENTION_INTERVAL);
    retention.tick().await;
    loop {
        tokio::select! {
            order = control.recv() => match order {
                Some(Control::Reload) => {
                    // Reload orders that queued up meanwhile coalesce; a stop
                    // among them still stops.
                    let mut stop = false;
                    while let Ok(next) = control.try_recv() {
                        stop |= next == Control::Shutdown;
                    }
                    notifier.reloading();
                    current.reload(&options.config_path, &options.env, &handle).await;
                    notifier.ready();
                    if stop {
                        break;
                    }
                    fingerprint = current.config.watch().dir.as_deref().map(watch::fingerprint);
                }
                Some(Control::Shutdown) | None => break,
            },
            _ = scan.tick() => {
                if let Some(dir) = current.config.watch().dir.clone() {
                    let now = watch::fingerprint(&dir);
                    if fingerprint.as_ref() != Some(&now) {
                        fingerprint = Some(now);
                        handle.send(Command::WatchList(load_watch_list(&current.config)));
                    }
                }
            }
            _ = status_tick.tick() => {
                notifier.status(&monitor.status_line(&stats, now_ms()));
            }
            _ = tick_opt(&mut watchdog) => {
                if monitor.progressed(&stats) {
                    notifier.watchdog();
                }
            }
            _ = retention.tick() => {
                let retention_ms = current.config.state().retention.as_millis() as i64;
                handle.send(Command::Forget(now_ms() - retention_ms));
            }
        }
    }

    notifier.stopping();
    log::announce(&event::daemon_stopping(watch_list_len(&stats)));
    let _ = metrics_stop.send(());
    if let Some(task) = metrics_task {
        // A scraper holding its connection open must not hold up the stop.
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    // A delivery in flight is cut off; its row is retried at the next start.
    let deliveries = current.deliveries.take();
    let (writer, ()) = tokio::join!(handle.shutdown(), async {
        if let Some(deliveries) = deliveries {
            deliveries.stop().await;
        }
    });
    if let Some(writer) = writer {
        // A state that cannot be written at the stop (a full disk) is an
        // I/O error, exit 74, after at most a short retry.
        tokio::task::spawn_blocking(move || writer.finish())
            .await
            .map_err(|error| DaemonError::Internal(format!("state writer: {error}")))??;
    }
    Ok(())
}

/// Returns the free pages of the heap to the system (glibc `malloc_trim`).
///
/// Loading 100,000 jobs allocates their records and watch entries (label
/// maps, strings) between the allocations that stay (job ids); once freed
/// they are holes glibc keeps, so the resident size would stay near the
/// start-up peak. Measured with the scale benchmark at 100,000 jobs of two
/// labels each: see `docs/benchmarks.md`.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: `malloc_trim` only releases memory the allocator holds
        // free; it takes no pointer and is thread-safe in glibc.
        unsafe {
            malloc_trim(0);
        }
    }
}

async fn tick_opt(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn watch_list_len(stats: &Stats) -> usize {
    stats.tracked.load(std::sync::atomic::Ordering::Relaxed) as usize
}
