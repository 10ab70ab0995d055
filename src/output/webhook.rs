//! Webhooks: the durable outbox and its delivery.
//!
//! When the scheduler announces a job event, every `[[notify.webhook]]` sink
//! whose filter takes it gets a row in the `outbox` table of the state
//! store, written in the same transaction that records the fact (see
//! [`crate::output::sink`]). The body is the event's JSON line, fixed at
//! announcement time.
//!
//! Delivery runs apart from polling: one task per sink, each with its own
//! SQLite connection to `state.db` (WAL lets it read and delete while the
//! state writer writes), and one shared HTTP client. A task attempts only
//! the oldest row of its sink, so each sink receives events in announcement
//! order. A 2xx answer deletes the row; anything else (another status, a
//! timeout, a refused connection) records the error and schedules the next
//! attempt with full-jitter backoff, from 1 s doubling up to 5 min. A row
//! older than the sink's `max_age` is given up with `notify.dropped` and
//! deleted. Rows survive restarts and `kill -9`; a row whose delivery
//! succeeded but whose deletion a crash prevented is sent again, with the
//! same `Idempotency-Key`.
//!
//! Architecture invariant: nothing here can hold up the scheduler. A slow or
//! dead receiver slows only its own sink's task; the scheduler only queues
//! writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::{Url, redirect};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::huaweicloud::client::USER_AGENT;
use crate::huaweicloud::secret::Secret;
use crate::output::event;
use crate::output::log;
use crate::store::now_ms;
use crate::store::outbox::{Outbox, Row};
use crate::telemetry;

/// How long one delivery may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The first backoff cap after a failed attempt.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The largest backoff cap.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often an idle sink looks at the outbox even without a wake-up.
pub const SAFETY_POLL: Duration = Duration::from_secs(1);
/// How long [`Deliveries::stop`] lets a task finish its step before
/// cutting it off.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// The header carrying the `event_id`.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The header carrying `sha256={hex}` when the sink has a secret.
pub const SIGNATURE: &str = "X-Jobwatch-Signature";

/// `sha256={hex of HMAC-SHA256(secret, body)}`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

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

/// A sink ready to deliver to: its settings and its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sink {
    /// Where to POST.
    pub url: Url,
    /// The signing secret, when configured.
    pub secret: Option<Secret>,
    /// Give up after this long.
    pub max_age: Duration,
}

/// Builds the sinks of a configuration, reading each secret file (trimmed;
/// an empty one is an error). Errors name the key:
/// `notify.webhook[0].secret_file: ...`.
pub fn load_sinks(config: &Config) -> Result<Vec<Sink>, String> {
    config
        .webhooks()
        .iter()
        .enumerate()
        .map(|(index, settings)| {
            // Until Standard Webhooks signing lands, the first of several secrets signs.
            let secret = match settings.secret_files.first() {
                None => None,
                Some(path) => Some(
                    read_secret(path)
                        .map_err(|error| format!("notify.webhook[{index}].secret_file: {error}"))?,
                ),
            };
            Ok(Sink {
                url: settings.url.clone(),
                secret,
                max_age: settings.max_age,
            })
        })
        .collect()
}

fn read_secret(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let secret = Secret::trimmed(text);
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(secret)
}

/// The HTTP client of deliveries: rustls with certificate verification, no
/// redirects, a whole-request timeout.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .redirect(redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|error| format!("cannot build the webhook HTTP client: {error}"))
}

/// The running delivery tasks.
pub struct Deliveries {
    sinks: Vec<Sink>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Deliveries {
    /// Starts one task per sink over the store at `db` (already migrated).
    /// `wake` changes whenever the state writer committed new outbox rows.
    pub fn start(
        db: PathBuf,
        sinks: Vec<Sink>,
        wake: watch::Receiver<u64>,
    ) -> Result<Deliveries, String> {
        let cancel = CancellationToken::new();
        let mut tasks = Vec::with_capacity(sinks.len());
        if !sinks.is_empty() {
            let http = http_client()?;
            for (index, sink) in sinks.iter().enumerate() {
                let outbox = Outbox::open(&db, sink.url.to_string())?;
                let task = Task {
                    sink: sink.clone(),
                    outbox,
                    http: http.clone(),
                    wake: wake.clone(),
                    cancel: cancel.clone(),
                    rng: SmallRng::from_os_rng(),
                    store_failing: false,
                    label: index.to_string(),
                };
                tasks.push(tokio::spawn(task.run()));
            }
        }
        Ok(Deliveries {
            sinks,
            cancel,
            tasks,
        })
    }

    /// The sinks being served.
    pub fn sinks(&self) -> &[Sink] {
        &self.sinks
    }

    /// Stops every task: each may finish its current step (a delete after
    /// a delivery) for [`STOP_GRACE`]; a request in flight is cut off, and
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
struct Task {
    sink: Sink,
    outbox: Outbox,
    http: reqwest::Client,
    wake: watch::Receiver<u64>,
    cancel: CancellationToken,
    rng: SmallRng,
    store_failing: bool,
    /// The sink's position in the configuration: its metric label (the
    /// URL may carry a token in its path, so it is not one).
    label: String,
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

impl Task {
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
                self.sink.max_age,
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
            let age = oldest.map_or(0.0, |at| (now_ms() - at).max(0) as f64 / 1000.0);
            let sink = self.label.clone();
            ::metrics::gauge!(telemetry::WEBHOOK_QUEUE_DEPTH, "sink" => sink.clone())
                .set(depth as f64);
            ::metrics::gauge!(telemetry::WEBHOOK_OLDEST_AGE, "sink" => sink).set(age);
        }
    }

    fn count_delivery(&self, result: &'static str) {
        let sink = self.label.clone();
        ::metrics::counter!(telemetry::WEBHOOK_DELIVERIES, "sink" => sink, "result" => result)
            .increment(1);
    }

    async fn give_up(&mut self, row: Row) {
        self.count_delivery("dropped");
        ::metrics::counter!(telemetry::EVENTS, "event" => event::NOTIFY_DROPPED).increment(1);
        let error = row
            .last_error
            .as_deref()
            .unwrap_or("never attempted: an earlier event of this sink was still undelivered");
        log::announce(&event::notify_dropped(
            &self.label,
            self.sink.url.as_str(),
            &row.event_id,
            row.attempts,
            error,
        ));
        if let Err(error) = self.outbox.delete(row.id).await {
            self.store_problem(&error);
            self.pause(SAFETY_POLL).await;
        }
    }

    async fn attempt(&mut self, row: Row) {
        let result = tokio::select! {
            () = self.cancel.cancelled() => return,
            result = self.post(&row) => result,
        };
        if row.attempts > 0 {
            ::metrics::counter!(telemetry::WEBHOOK_RETRIES, "sink" => self.label.clone())
                .increment(1);
        }
        let stored = match result {
            Ok(()) => {
                self.count_delivery("delivered");
                self.outbox.delete(row.id).await
            }
            Err(error) => {
                self.count_delivery("failed");
                let attempts = row.attempts + 1;
                let wait = backoff(attempts, self.rng.random::<f64>());
                let next = now_ms() + wait.as_millis() as i64;
                self.outbox.failed(row.id, attempts, error, next).await
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

    async fn post(&self, row: &Row) -> Result<(), String> {
        let mut request = self
            .http
            .post(self.sink.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_KEY, row.event_id.as_str());
        if let Some(secret) = &self.sink.secret {
            request = request.header(
                SIGNATURE,
                signature(secret.expose().as_bytes(), row.body.as_bytes()),
            );
        }
        match request.body(row.body.clone()).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
            Err(error) => Err(describe(&error)),
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
                "webhook outbox of {}: {error}",
                self.sink.url
            )));
        }
    }
}

/// A short description of a failed request, without the URL (the event
/// names it).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "request"
    };
    let mut text = kind.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_to_five_minutes_with_full_jitter() {
        let cases = [
            (1, 0.5, 500),
            (2, 0.5, 1_000),
            (3, 0.999, 3_996),
            (10, 0.5, 150_000),
            (40, 0.5, 150_000),
            (1, 0.0, 100),
            (u64::MAX, 0.0, 100),
        ];
        for (attempts, random, ms) in cases {
            assert_eq!(
                backoff(attempts, random),
                Duration::from_millis(ms),
                "{attempts} {random}"
            );
        }
        assert!(backoff(50, 0.999_999) <= BACKOFF_MAX);
    }

    #[test]
    fn steps_follow_the_head_row() {
        let hour = Duration::from_secs(3600);
        let cases = [
            (None, Step::Idle),
            (Some((0, 0)), Step::Attempt),
            (Some((0, 5_000)), Step::Wait(Duration::from_millis(4_000))),
            // The wait never passes the deadline.
            (
                Some((0, 9_000_000)),
                Step::Wait(Duration::from_millis(3_599_000)),
            ),
            (Some((-3_600_000, 0)), Step::Drop),
        ];
        for (head, expected) in cases {
            assert_eq!(decide(head, hour, 1_000), expected, "{head:?}");
        }
    }

    #[test]
    fn secrets_are_read_trimmed_and_named_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "s3cret\n").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let text = |file: &Path| {
            format!(
                "[cloud]\nregion = \"r\"\n[[notify.webhook]]\nurl = \"https://a.example.com/\"\n\
                 [[notify.webhook]]\nurl = \"https://b.example.com/\"\nsecret_file = {:?}\n",
                file.display().to_string()
            )
        };
        let load = |file: &Path| {
            let config = Config::from_toml_str(&text(file), "t", &BTreeMap::new()).unwrap();
            load_sinks(&config)
        };
        let sinks = load(&good).unwrap();
        assert_eq!(sinks[0].secret, None);
        assert_eq!(sinks[1].secret.as_ref().unwrap().expose(), "s3cret");
        let error = load(&empty).unwrap_err();
        assert!(
            error.starts_with("notify.webhook[1].secret_file: "),
            "{error}"
        );
        let error = load(&dir.path().join("missing")).unwrap_err();
        assert!(
            error.starts_with("notify.webhook[1].secret_file: cannot read"),
            "{error}"
        );
    }
}
