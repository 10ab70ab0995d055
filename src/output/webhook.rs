//! Webhooks: the durable outbox and its delivery.
//!
//! When the scheduler announces a job event, every `[[notify.webhook]]` sink
//! whose filter takes it gets a row in the `outbox` table of the state
//! store, written by [`Write::Outbox`] in the same transaction that records
//! the fact (see [`outbox_writes`]). The body is the event's JSON line,
//! fixed at announcement time.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::{Url, redirect};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, WebhookSettings};
use crate::huaweicloud::client::USER_AGENT;
use crate::huaweicloud::secret::Secret;
use crate::output::event::{self, Event};
use crate::store::{Write, now_ms};
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

/// What the scheduler needs of a sink: its name and what it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkFilter {
    /// The sink's name in the outbox: its URL.
    pub sink: String,
    /// Event names taken.
    pub events: Vec<String>,
    /// `job.transition` is taken only into these statuses.
    pub statuses: Vec<String>,
}

impl SinkFilter {
    /// The filter of a configured sink.
    pub fn new(settings: &WebhookSettings) -> SinkFilter {
        SinkFilter {
            sink: settings.url.to_string(),
            events: settings.events.clone(),
            statuses: settings.statuses.clone(),
        }
    }

    /// The filters of every configured sink.
    pub fn all(config: &Config) -> Vec<SinkFilter> {
        config.webhooks().iter().map(SinkFilter::new).collect()
    }

    /// Whether this sink takes `event`.
    pub fn matches(&self, event: &Event) -> bool {
        if !self.events.iter().any(|name| name == event.name) {
            return false;
        }
        if event.name != event::JOB_TRANSITION {
            return true;
        }
        let status = event.fields.get("status").and_then(|v| v.as_str());
        status.is_some_and(|status| self.statuses.iter().any(|s| s == status))
    }
}

/// The outbox rows of one announcement: one per sink that takes the
/// event, all with the same body (the log line at `timestamp`). Events
/// without an `event_id` are never queued.
pub fn outbox_writes(filters: &[SinkFilter], event: &Event, timestamp: &str) -> Vec<Write> {
    let Some(event_id) = event.event_id() else {
        return Vec::new();
    };
    let mut writes = Vec::new();
    let mut body: Option<String> = None;
    let created_at = now_ms();
    for filter in filters.iter().filter(|f| f.matches(event)) {
        let body = body.get_or_insert_with(|| event.to_json(timestamp).to_string());
        writes.push(Write::Outbox {
            sink: filter.sink.clone(),
            event_id: event_id.to_string(),
            body: body.clone(),
            created_at,
        });
    }
    writes
}

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
    let secret = Secret::new(text.trim());
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

/// One queued delivery.
#[derive(Debug)]
struct Row {
    id: i64,
    event_id: String,
    body: String,
    created_at: i64,
    attempts: u64,
    next_attempt_at: i64,
    last_error: Option<String>,
}

/// One sink's connection to the outbox. Calls run on the blocking pool.
struct Outbox {
    conn: Arc<Mutex<Connection>>,
    sink: String,
}

impl Outbox {
    fn open(db: &Path, sink: String) -> Result<Outbox, String> {
        let conn = Connection::open(db)
            .and_then(|conn| {
                conn.busy_timeout(Duration::from_secs(5))?;
                Ok(conn)
            })
            .map_err(|error| format!("state database {}: {error}", db.display()))?;
        Ok(Outbox {
            conn: Arc::new(Mutex::new(conn)),
            sink,
        })
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let conn = self.conn.clone();
        let sink = self.sink.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| "outbox connection poisoned".to_string())?;
            f(&conn, &sink).map_err(|error| error.to_string())
        })
        .await
        .map_err(|error| error.to_string())?
    }

    /// How many rows this sink has queued, and when the oldest was queued.
    async fn depth(&self) -> Result<(i64, Option<i64>), String> {
        self.call(|conn, sink| {
            conn.prepare_cached("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sink = ?1")?
                .query_row([sink], |row| Ok((row.get(0)?, row.get(1)?)))
        })
        .await
    }

    /// The oldest row of this sink.
    async fn head(&self) -> Result<Option<Row>, String> {
        self.call(|conn, sink| {
            conn.prepare_cached(
                "SELECT id, event_id, body, created_at, attempts, next_attempt_at, last_error
                 FROM outbox WHERE sink = ?1 ORDER BY id LIMIT 1",
            )?
            .query_row([sink], |row| {
                Ok(Row {
                    id: row.get(0)?,
                    event_id: row.get(1)?,
                    body: row.get(2)?,
                    created_at: row.get(3)?,
                    attempts: row.get::<_, i64>(4)?.max(0) as u64,
                    next_attempt_at: row.get(5)?,
                    last_error: row.get(6)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn delete(&self, id: i64) -> Result<(), String> {
        self.call(move |conn, _| {
            conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute([id])
                .map(drop)
        })
        .await
    }

    async fn failed(
        &self,
        id: i64,
        attempts: u64,
        error: String,
        next_attempt_at: i64,
    ) -> Result<(), String> {
        self.call(move |conn, _| {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = ?2, last_error = ?3, next_attempt_at = ?4
                 WHERE id = ?1",
            )?
            .execute(params![id, attempts as i64, error, next_attempt_at])
            .map(drop)
        })
        .await
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
        event::notify_dropped(self.sink.url.as_str(), &row.event_id, row.attempts, error).emit();
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
            event::state_error(&format!("webhook outbox of {}: {error}", self.sink.url)).emit();
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
    use serde_json::json;
    use std::collections::BTreeMap;

    fn event(name: &'static str, status: Option<&str>, event_id: Option<&str>) -> Event {
        let mut fields = serde_json::Map::new();
        if let Some(status) = status {
            fields.insert("status".into(), json!(status));
        }
        if let Some(event_id) = event_id {
            fields.insert("event_id".into(), json!(event_id));
        }
        Event {
            name,
            level: tracing::Level::INFO,
            message: "m".into(),
            fields,
        }
    }

    fn filter(sink: &str, events: &[&str], statuses: &[&str]) -> SinkFilter {
        SinkFilter {
            sink: sink.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            statuses: statuses.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn filters_take_events_and_final_statuses() {
        let all = filter(
            "a",
            &[
                "job.transition",
                "job.subjob_failed",
                "job.timeout",
                "job.not_found",
            ],
            &["SUCCESS", "FAIL", "PENDING_PAYMENT"],
        );
        let timeouts = filter("b", &["job.timeout"], &["SUCCESS"]);
        let cases = [
            (
                event("job.transition", Some("SUCCESS"), Some("e")),
                true,
                false,
            ),
            (
                event("job.transition", Some("RUNNING"), Some("e")),
                false,
                false,
            ),
            (event("job.transition", None, Some("e")), false, false),
            (event("job.timeout", Some("RUNNING"), Some("e")), true, true),
            (event("job.subjob_failed", None, Some("e")), true, false),
            (event("api.error", None, None), false, false),
            (event("notify.dropped", None, Some("e")), false, false),
        ];
        for (event, a, b) in cases {
            assert_eq!(
                (all.matches(&event), timeouts.matches(&event)),
                (a, b),
                "{event:?}"
            );
        }
    }

    #[test]
    fn outbox_rows_carry_the_log_line() {
        let filters = [
            filter("https://a/", &["job.transition"], &["FAIL"]),
            filter("https://b/", &["job.timeout"], &["FAIL"]),
            filter("https://c/", &["job.transition"], &["FAIL"]),
        ];
        let event = event("job.transition", Some("FAIL"), Some("e1"));
        let timestamp = "2024-01-01T00:00:00.000Z";
        let writes = outbox_writes(&filters, &event, timestamp);
        let sinks: Vec<&str> = writes
            .iter()
            .map(|w| match w {
                Write::Outbox {
                    sink,
                    event_id,
                    body,
                    ..
                } => {
                    assert_eq!(event_id, "e1");
                    assert_eq!(*body, event.to_json(timestamp).to_string());
                    sink.as_str()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sinks, ["https://a/", "https://c/"]);
        // No event_id, no delivery.
        let anonymous = self::event("job.transition", Some("FAIL"), None);
        assert!(outbox_writes(&filters, &anonymous, timestamp).is_empty());
    }

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
