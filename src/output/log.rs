//! Where events are written: JSON lines, human text or the demo's brief
//! lines on stdout, or native entries in the journal.
//!
//! [`announce`] is the one door for our own events: it stamps the event,
//! renders its JSON line once ([`crate::output::render::json`]) and writes
//! that text (or the text or journal form) before handing the same JSON
//! back for the outbox of the sinks. With `log.format = "json"` and stdout
//! connected to the journal (`JOURNAL_STREAM` names stdout's device and
//! inode), each line starts with its syslog priority (`<3>` ERROR, `<4>`
//! WARN, `<6>` INFO, `<7>` DEBUG), which the journal strips and stores as
//! `PRIORITY`; in a pipe or a file there is no prefix.
//!
//! Lines from libraries (rustls, hyper, ...) come through `tracing`: a
//! small layer writes them in the same format with `event = "log"`, at most
//! one line per library per [`LIBRARY_PERIOD`] (a TLS failure repeated at
//! every retry must not flood the log), and with `log.format = "journald"`
//! they go through `tracing-journald`.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::{Subscriber, event::Event as TracingEvent};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::output::event::{Event, Level};
use crate::output::journal::Journal;
use crate::output::render;

/// At most one line per library (its `tracing` target) in this period;
/// the next line says how many were left out.
pub const LIBRARY_PERIOD: Duration = Duration::from_secs(10);

/// How lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line on stdout.
    Json,
    /// One human line per event on stdout.
    Text,
    /// Time, level, event and message only (the demo).
    Brief,
    /// Native journal entries.
    Journald,
}

/// An announced event: its time and its JSON line (without line ending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The `timestamp` of the line.
    pub timestamp: String,
    /// The JSON object, as printed with `log.format = "json"`.
    pub json: String,
}

/// The current time as the `timestamp` of a line: RFC 3339, UTC,
/// milliseconds.
pub fn timestamp_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where lines go.
enum Target {
    /// Stdout (or a buffer in tests), with the priority prefix or not.
    Stream {
        out: Mutex<Box<dyn std::io::Write + Send>>,
        priority_prefix: bool,
    },
    /// The journal's socket.
    Journal(Journal),
}

/// The writer of events, in one format.
pub struct Logger {
    format: Format,
    /// The most verbose level shown, as [`level_rank`].
    level: AtomicU8,
    target: Target,
    libraries: Mutex<HashMap<String, (Instant, u64)>>,
}

fn level_rank(level: Level) -> u8 {
    match level {
        Level::Error => 0,
        Level::Warn => 1,
        Level::Info => 2,
        Level::Debug => 3,
    }
}

/// The rank of a configured `log.level` (`trace` shows what `debug` does).
fn configured_rank(level: &str) -> u8 {
    match level.to_ascii_lowercase().as_str() {
        "error" => 0,
        "warn" => 1,
        "info" => 2,
        _ => 3,
    }
}

impl Logger {
    /// A logger writing `format` to `out`; `priority_prefix` when `out` is
    /// the journal's stream.
    pub fn to_stream(
        format: Format,
        level: &str,
        out: Box<dyn std::io::Write + Send>,
        priority_prefix: bool,
    ) -> Logger {
        Logger {
            format,
            level: AtomicU8::new(configured_rank(level)),
            target: Target::Stream {
                out: Mutex::new(out),
                priority_prefix,
            },
            libraries: Mutex::new(HashMap::new()),
        }
    }

    /// A logger writing native entries to `journal`.
    pub fn to_journal(level: &str, journal: Journal) -> Logger {
        Logger {
            format: Format::Journald,
            level: AtomicU8::new(configured_rank(level)),
            target: Target::Journal(journal),
            libraries: Mutex::new(HashMap::new()),
        }
    }

    /// Changes the level.
    pub fn set_level(&self, level: &str) {
        self.level.store(configured_rank(level), Ordering::Relaxed);
    }

    fn shows(&self, level: Level) -> bool {
        level_rank(level) <= self.level.load(Ordering::Relaxed)
    }

    /// Stamps, renders and writes one event; returns its JSON line.
    pub fn announce(&self, event: &Event) -> Line {
        let timestamp = timestamp_now();
        let json = render::json(event, &timestamp);
        if self.shows(event.level) {
            match &self.target {
                Target::Stream {
                    out,
                    priority_prefix,
                } => {
                    let text = match self.format {
                        Format::Json | Format::Journald => None,
                        Format::Text => Some(render::text(event, &timestamp)),
                        Format::Brief => Some(render::brief(
                            event.level.as_str(),
                            event.name(),
                            &event.message,
                            &timestamp,
                        )),
                    };
                    let prefix = priority_prefix.then(|| event.level.priority());
                    write_line(out, prefix, text.as_deref().unwrap_or(&json));
                }
                Target::Journal(journal) => {
                    // A journal that went away must not take the daemon
                    // down; the event still reaches the sinks.
                    let _ = journal.send(&render::journal_fields(event, &timestamp));
                }
            }
        }
        Line { timestamp, json }
    }

    /// Writes a library's record, rate-limited per library.
    fn record(&self, target: &str, level: Level, message: &str, fields: Vec<(String, String)>) {
        if !self.shows(level) {
            return;
        }
        let now = Instant::now();
        let left_out = {
            let Ok(mut libraries) = self.libraries.lock() else {
                return;
            };
            match libraries.get_mut(target) {
                Some((last, skipped)) if now.saturating_duration_since(*last) < LIBRARY_PERIOD => {
                    *skipped += 1;
                    return;
                }
                Some((last, skipped)) => {
                    *last = now;
                    std::mem::take(skipped)
                }
                None => {
                    libraries.insert(target.to_string(), (now, 0));
                    0
                }
            }
        };
        let mut fields = fields;
        fields.insert(0, ("target".to_string(), target.to_string()));
        if left_out > 0 {
            fields.push(("left_out".to_string(), left_out.to_string()));
        }
        let timestamp = timestamp_now();
        let Target::Stream {
            out,
            priority_prefix,
        } = &self.target
        else {
            return;
        };
        let line = match self.format {
            Format::Json | Format::Journald => {
                render::json_record(&timestamp, level.as_str(), message, &fields)
            }
            Format::Text => {
                let mut line = format!("{timestamp} {:<5} log: {message}", level.as_str());
                for (name, value) in &fields {
                    line.push_str(&format!(" {name}={value:?}"));
                }
                line
            }
            Format::Brief => render::brief(level.as_str(), "log", message, &timestamp),
        };
        let prefix = priority_prefix.then(|| level.priority());
        write_line(out, prefix, &line);
    }
}

/// One write per line, so that concurrent lines never interleave. A
/// broken stdout must not take the daemon down.
fn write_line(out: &Mutex<Box<dyn std::io::Write + Send>>, priority: Option<u8>, line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 4);
    if let Some(priority) = priority {
        bytes.extend_from_slice(format!("<{priority}>").as_bytes());
    }
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    if let Ok(mut out) = out.lock() {
        let _ = out.write_all(&bytes);
        let _ = out.flush();
    }
}

/// Whether stdout is the journal's stream: `JOURNAL_STREAM` is
/// `DEVICE:INODE` of the stream systemd connected, and stdout's own device
/// and inode must match (a child whose stdout was redirected inherits the
/// variable but not the stream).
pub fn stdout_is_journal(env: &BTreeMap<String, String>) -> bool {
    let Some(value) = env.get("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(metadata) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    journal_stream_matches(value, metadata.dev(), metadata.ino())
}

/// Whether a `JOURNAL_STREAM` value names this device and inode.
pub fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((device, inode)) = value.trim().split_once(':') else {
        return false;
    };
    device.parse::<u64>() == Ok(dev) && inode.parse::<u64>() == Ok(ino)
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Announces an event through the installed logger; without one (tests,
/// the library used on its own) nothing is written, but the line is still
/// rendered for the sinks.
pub fn announce(event: &Event) -> Line {
    match LOGGER.get() {
        Some(logger) => logger.announce(event),
        None => {
            let timestamp = timestamp_now();
            let json = render::json(event, &timestamp);
            Line { timestamp, json }
        }
    }
}

/// The `tracing` filter for libraries: our crate at the configured level,
/// the libraries below us at no more than `warn` (their debug output is
/// noise and could in principle show request details).
pub fn filter(level: &str) -> EnvFilter {
    let level = level.to_ascii_lowercase();
    let libraries = match level.as_str() {
        "error" => "error",
        _ => "warn",
    };
    EnvFilter::new(format!("{libraries},ecs_jobwatch={level}"))
}

/// The handle that changes the level of the installed subscriber.
static FILTER: OnceLock<
    tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
> = OnceLock::new();

/// Installs the logger and the `tracing` subscriber for library lines.
/// `env` is the process environment (for `JOURNAL_STREAM`). Fails when the
/// journal is asked for but cannot be reached, or a logger is already set.
pub fn init(format: Format, level: &str, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    let logger = match format {
        Format::Journald => Logger::to_journal(
            level,
            Journal::connect()
                .map_err(|error| anyhow::anyhow!("cannot reach the journal: {error}"))?,
        ),
        Format::Json | Format::Text | Format::Brief => {
            let prefix = format == Format::Json && stdout_is_journal(env);
            Logger::to_stream(format, level, Box::new(std::io::stdout()), prefix)
        }
    };
    LOGGER
        .set(logger)
        .map_err(|_| anyhow::anyhow!("the logger is already installed"))?;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter(level));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        Format::Journald => {
            let journald = tracing_journald::layer()
                .map_err(|error| anyhow::anyhow!("cannot reach the journal: {error}"))?
                .with_field_prefix(None)
                .with_syslog_identifier("ecs-jobwatch".to_string())
                .with_custom_fields([("EVENT", "log"), ("MESSAGE_ID", render::message_id("log"))]);
            registry.with(journald).try_init()?;
        }
        Format::Json | Format::Text | Format::Brief => {
            registry.with(LibraryLayer).try_init()?;
        }
    }
    let _ = FILTER.set(handle);
    Ok(())
}

/// Changes the level at run time (on reload). A no-op when [`init`] was
/// not called.
pub fn set_level(level: &str) {
    if let Some(logger) = LOGGER.get() {
        logger.set_level(level);
    }
    if let Some(handle) = FILTER.get() {
        let _ = handle.reload(filter(level));
    }
}

/// The `tracing` layer for library lines.
struct LibraryLayer;

#[derive(Default)]
struct Collect {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        // The `log` bridge's own fields (`log.target`, `log.file`, ...):
        // the target is taken from the normalized metadata instead.
        if field.name().starts_with("log.") {
            return;
        }
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

fn level_of(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warn,
        tracing::Level::INFO => Level::Info,
        _ => Level::Debug,
    }
}

impl<S: Subscriber> Layer<S> for LibraryLayer {
    fn on_event(&self, event: &TracingEvent<'_>, _context: Context<'_, S>) {
        let Some(logger) = LOGGER.get() else {
            return;
        };
        let mut collect = Collect::default();
        event.record(&mut collect);
        // Records of the `log` crate (rustls logs through it) all arrive
        // with the target "log"; their own target is in the normalized
        // metadata, so each library keeps its own rate limit.
        let normalized = event.normalized_metadata();
        let metadata = normalized.as_ref().unwrap_or_else(|| event.metadata());
        logger.record(
            metadata.target(),
            level_of(metadata.level()),
            &collect.message,
            collect.fields,
        );
    }
}

#[cfg(test)]
mod tests;
