//! The delivery loop shared by every notification sink: one task per sink
//! takes the oldest row of its outbox, hands it to the sink's
//! [`Transport`] (an HTTP POST for a webhook, a signed publish for an SMN
//! topic), and deletes, reschedules or gives up the row by the answer.
//!
//! A task attempts only the oldest row of its sink, so each sink receives
//! events in announcement order. A delivered row is deleted; a failed one
//! records the error and is tried again after the wait its receiver asked
//! for (`Retry-After`), else after a full-jitter backoff from 1 s doubling
//! up to 5 min. A row older than the sink's `max_age` is given up with
//! `notify.dropped` and deleted; a wait never passes that deadline. Rows
//! survive restarts and `kill -9`; a row whose delivery succeeded but whose
//! deletion a crash prevented is delivered again with the same `event_id`.
//!
//! Each task has its own SQLite connection to `state.db` (WAL lets it read
//! and delete while the state writer writes). The metrics of every sink
//! are the same series, told apart by `sink` (its stable name) and `kind`.
//!
//! Architecture invariant: nothing here can hold up the scheduler. A slow or
//! dead receiver slows only its own sink's task; the scheduler only queues
//! writes.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::output::event;
use crate::output::log;
use crate::store::now_ms;
use crate::store::outbox::{Outbox, Row};
use crate::telemetry;

/// The first backoff cap after a failed attempt.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The largest backoff cap.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often an idle sink looks at the outbox even without a wake-up.
pub const SAFETY_POLL: Duration = Duration::from_secs(1);
/// How long [`Deliveries::stop`] lets a task finish its step before
/// cutting it off.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// The wait before the next attempt after `attempts` failed ones: full
/// jitter, uniform in (0, cap] with the cap 1 s doubling to 5 min, and at
/// least 100 ms so a failing receiver is never hammered. `random` is in
/// [0, 1).
pub fn backoff(attempts: u64, random: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20) as u32;
    let cap = BACKOFF_MIN
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX);
    cap.mul_f64(random.clamp(0.0, 1.0))
        .max(Duration::from_millis(100))
}

/// What became of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver took it: the row is deleted.
    Delivered,
    /// Not delivered: the row is tried again.
    Failed(Failure),
}

/// Why an attempt failed, and when the receiver wants the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What the attempt said (`HTTP 503`, `timeout: ...`); never a secret.
    pub error: String,
    /// The wait the receiver asked for (`Retry-After`), used instead of
    /// the backoff.
    pub retry_after: Option<Duration>,
    /// The sink is refused as a whole (an SMN topic answering 403): it is
    /// reported paused until a delivery succeeds again.
    pub paused: bool,
}

impl Failure {
    /// A failure retried with the backoff.
    pub fn new(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            retry_after: None,
            paused: false,
        }
    }
}

/// How one kind of sink delivers a row.
pub trait Transport: Send + Sync + 'static {
    /// The `kind` label of the sink's metrics: `webhook` or `smn`.
    fn kind(&self) -> &'static str;
    /// Where it delivers, for `notify.dropped` (a URL or a topic URN).
    fn target(&self) -> &str;
    /// Delivers one row (its body is the event's JSON line).
    fn deliver(&self, row: &Row) -> impl Future<Output = Outcome> + Send;
}

/// The running delivery tasks.
pub struct Deliveries {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Default for Deliveries {
    fn default() -> Deliveries {
        Deliveries {
            cancel: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }
}

impl Deliveries {
    /// Starts the task of sink `name` over the store at `db` (already
    /// migrated). `wake` changes whenever the state writer committed new
    /// outbox rows.
    pub fn spawn<T: Transport>(
        &mut self,
        db: &Path,
        name: &str,
        max_age: Duration,
        transport: T,
        wake: watch::Receiver<u64>,
    ) -> Result<(), String> {
        let outbox = Outbox::open(db, name.to_string())?;
        telemetry::export_sink(name, transport.kind());
        let task = Task {
            name: name.to_string(),
            max_age,
            transport,
            outbox,
            wake,
            cancel: self.cancel.clone(),
            rng: SmallRng::from_os_rng(),
            store_failing: false,
            paused: false,
        };
        self.tasks.push(tokio::spawn(task.run()));
        Ok(())
    }

    /// Stops every task at once (a start that failed half-way).
    pub fn abort(self) {
        self.cancel.cancel();
        for task in self.tasks {
            task.abort();
        }
    }

    /// Stops every task: each may finish its current step (a delete after
    /// a delivery) for [`STOP_GRACE`]; an attempt in flight is cut off, and
    /// its row stays for the next start.
    pub async fn stop(self) {
        self.cancel.cancel();
        for mut task in self.tasks {
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

/// One sink's delivery loop.
struct Task<T> {
    /// The sink's stable name: its key in the outbox and its `sink` label.
    name: String,
    max_age: Duration,
    transport: T,
    outbox: Outbox,
    wake: watch::Receiver<u64>,
    cancel: CancellationToken,
    rng: SmallRng,
    store_failing: bool,
    paused: bool,
}

/// What to do next, decided from the head row and the time.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Nothing queued: wait for a wake-up.
    Idle,
    /// Too old: give up.
    Drop,
    /// Not yet: wait this long.
    Wait(Duration),
    /// Try now.
    Attempt,
}

fn decide(head: Option<(i64, i64)>, max_age: Duration, now: i64) -> Step {
    let Some((created_at, next_attempt_at)) = head else {
        return Step::Idle;
    };
    let deadline = created_at.saturating_add(max_age.as_millis() as i64);
    if now >= deadline {
        return Step::Drop;
    }
    if next_attempt_at > now {
        let until = next_attempt_at.min(deadline);
        return Step::Wait(Duration::from_millis((until - now) as u64));
    }
    Step::Attempt
}

/// When to try again after `failure`, the `attempts`-th failed attempt:
/// when the receiver asked (`Retry-After`), else after the backoff.
/// (The deadline of `max_age` bounds it in [`decide`].)
fn next_attempt_at(failure: &Failure, attempts: u64, random: f64, now: i64) -> i64 {
    let wait = failure
        .retry_after
        .unwrap_or_else(|| backoff(attempts, random));
    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    now.saturating_add(wait_ms)
}

impl<T: Transport> Task<T> {
    async fn run(mut self) {
        // Mark the current state seen: rows committed before now are found
        // by the first look at the outbox.
        self.wake.mark_unchanged();
        while !self.cancel.is_cancelled() {
            self.report_depth().await;
            let head = match self.outbox.head().await {
                Ok(head) => head,
                Err(error) => {
                    self.store_problem(&error);
                    self.pause(SAFETY_POLL).await;
                    continue;
                }
            };
            let step = decide(
                head.as_ref()
                    .map(|row| (row.created_at, row.next_attempt_at)),
                self.max_age,
                now_ms(),
            );
            match (step, head) {
                (Step::Idle, _) | (_, None) => self.idle().await,
                (Step::Wait(wait), _) => self.pause(wait).await,
                (Step::Drop, Some(row)) => self.give_up(row).await,
                (Step::Attempt, Some(row)) => self.attempt(row).await,
            }
        }
    }

    /// The queue gauges of this sink.
    async fn report_depth(&self) {
        if let Ok((depth, oldest)) = self.outbox.depth().await {
            let oldest = oldest.map_or(0.0, |at| at as f64 / 1000.0);
            let (sink, kind) = (self.name.clone(), self.transport.kind());
            ::metrics::gauge!(telemetry::NOTIFY_QUEUE_DEPTH, "sink" => sink.clone(), "kind" => kind)
                .set(depth as f64);
            ::metrics::gauge!(telemetry::NOTIFY_OLDEST_UNDELIVERED, "sink" => sink, "kind" => kind)
                .set(oldest);
        }
    }

    fn count_delivery(&self, result: &'static str) {
        let (sink, kind) = (self.name.clone(), self.transport.kind());
        ::metrics::counter!(telemetry::NOTIFY_DELIVERIES, "sink" => sink, "kind" => kind, "result" => result)
            .increment(1);
    }

    fn set_paused(&mut self, paused: bool) {
        if self.paused != paused {
            self.paused = paused;
            let (sink, kind) = (self.name.clone(), self.transport.kind());
            ::metrics::gauge!(telemetry::NOTIFY_PAUSED, "sink" => sink, "kind" => kind)
                .set(if paused { 1.0 } else { 0.0 });
        }
    }

    async fn give_up(&mut self, row: Row) {
        self.count_delivery("dropped");
        let error = row
            .last_error
            .as_deref()
            .unwrap_or("never attempted: an earlier event of this sink was still undelivered");
        announce_dropped(&self.name, self.transport.target(), &row, error);
        if let Err(error) = self.outbox.delete(row.id).await {
            self.store_problem(&error);
            self.pause(SAFETY_POLL).await;
        }
    }

    async fn attempt(&mut self, row: Row) {
        let outcome = tokio::select! {
            () = self.cancel.cancelled() => return,
            outcome = self.transport.deliver(&row) => outcome,
        };
        if row.attempts > 0 {
            let (sink, kind) = (self.name.clone(), self.transport.kind());
            ::metrics::counter!(telemetry::NOTIFY_RETRIES, "sink" => sink, "kind" => kind)
                .increment(1);
        }
        let stored = match outcome {
            Outcome::Delivered => {
                self.count_delivery("delivered");
                self.set_paused(false);
                self.outbox.delete(row.id).await
            }
            Outcome::Failed(failure) => {
                self.count_delivery("failed");
                self.set_paused(failure.paused);
                let attempts = row.attempts + 1;
                let random = self.rng.random::<f64>();
                let next = next_attempt_at(&failure, attempts, random, now_ms());
                self.outbox
                    .failed(row.id, attempts, failure.error, next)
                    .await
            }
        };
        match stored {
            Ok(()) => self.store_failing = false,
            Err(error) => {
                self.store_problem(&error);
                self.pause(SAFETY_POLL).await;
            }
        }
    }

    /// Waits for new rows, the safety poll, or the stop.
    async fn idle(&mut self) {
        tokio::select! {
            () = self.cancel.cancelled() => {}
            _ = self.wake.changed() => {}
            () = tokio::time::sleep(SAFETY_POLL) => {}
        }
    }

    /// Waits `duration` or until the stop.
    async fn pause(&self, duration: Duration) {
        tokio::select! {
            () = self.cancel.cancelled() => {}
            () = tokio::time::sleep(duration) => {}
        }
    }

    /// Reports a failing outbox once, until it works again.
    fn store_problem(&mut self, error: &str) {
        if !self.store_failing {
            self.store_failing = true;
            log::announce(&event::state_error(&format!(
                "outbox of sink {}: {error}",
                self.name
            )));
        }
    }
}

/// Announces a row given up (`notify.dropped`) and counts the event.
pub fn announce_dropped(sink: &str, target: &str, row: &Row, error: &str) {
    ::metrics::counter!(telemetry::EVENTS, "event" => event::NOTIFY_DROPPED).increment(1);
    log::announce(&event::notify_dropped(
        sink,
        target,
        &row.event_id,
        row.attempts,
        error,
    ));
}

#[cfg(test)]
mod tests;
