//! The output of events: JSON lines, human text, or the journal.
//!
//! JSON is written by a small `tracing` layer of our own rather than the
//! stock formatter, because the contract wants structured fields at the top
//! level with their real JSON types (`labels` an object, `server_ids` an
//! array, `previous_status` a real `null`), while `tracing` records every
//! field as a primitive. Events built by [`crate::output::event`] carry their
//! fields as one JSON text in [`crate::output::event::FIELDS_JSON`]; this layer
//! merges it into the line. Lines from other code (a dependency's warning)
//! get `event = "log"` and their fields as strings.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::output::event::{FIELDS_JSON, TIMESTAMP, level_name, line_object, timestamp_now};

/// How lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line on stdout.
    Json,
    /// One human line per event on stdout.
    Text,
    /// Time, level, event and message only (the demo).
    Brief,
    /// Native journald fields.
    Journald,
}

/// Where lines go: stdout, or a buffer in tests.
pub type Writer = Arc<Mutex<dyn std::io::Write + Send>>;

/// The layer that writes JSON or text lines.
pub struct LineLayer {
    format: Format,
    writer: Writer,
}

impl LineLayer {
    /// A layer writing `format` lines to `writer`.
    pub fn new(format: Format, writer: Writer) -> LineLayer {
        LineLayer { format, writer }
    }
}

#[derive(Default)]
struct Collect {
    message: Option<String>,
    event: Option<String>,
    timestamp: Option<String>,
    structured: Option<String>,
    other: Map<String, Value>,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            TIMESTAMP => self.timestamp = Some(value.to_string()),
            FIELDS_JSON => self.structured = Some(value.to_string()),
            name => {
                self.other
                    .insert(name.to_string(), Value::String(value.to_string()));
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.record_str(field, &text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.other
            .insert(field.name().to_string(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.other
            .insert(field.name().to_string(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.other
            .insert(field.name().to_string(), Value::from(value));
    }
}

impl<S: Subscriber> Layer<S> for LineLayer {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut collect = Collect::default();
        event.record(&mut collect);
        let metadata = event.metadata();
        // An event of ours brings its own time (see `Event::emit_at`).
        let timestamp = collect.timestamp.unwrap_or_else(timestamp_now);
        let name = collect.event.unwrap_or_else(|| "log".to_string());
        let message = collect.message.unwrap_or_default();
        let mut fields = match collect
            .structured
            .as_deref()
            .map(serde_json::from_str::<Value>)
        {
            Some(Ok(Value::Object(fields))) => fields,
            _ => Map::new(),
        };
        if name == "log" {
            fields.insert(
                "target".into(),
                Value::String(metadata.target().to_string()),
            );
        }
        fields.extend(collect.other);

        let mut line = String::with_capacity(256);
        match self.format {
            Format::Json | Format::Journald => {
                let object = line_object(
                    &timestamp,
                    level_name(metadata.level()),
                    &name,
                    &message,
                    fields,
                );
                line.push_str(&Value::Object(object).to_string());
            }
            Format::Brief => {
                let time = timestamp.get(11..23).unwrap_or(&timestamp);
                let _ = write!(
                    line,
                    "{time} {:<5} {name:<18} {message}",
                    level_name(metadata.level())
                );
            }
            Format::Text => {
                let _ = write!(
                    line,
                    "{timestamp} {:<5} {name}: {message}",
                    level_name(metadata.level())
                );
                for (key, value) in fields {
                    match value {
                        Value::Null => continue,
                        Value::String(text) => {
                            let _ = write!(line, " {key}={text:?}");
                        }
                        other => {
                            let _ = write!(line, " {key}={other}");
                        }
                    }
                }
            }
        }
        line.push('\n');
        // One write per line so concurrent lines never interleave. A
        // broken stdout must not take the daemon down.
        if let Ok(mut writer) = self.writer.lock() {
            let _ = writer.write_all(line.as_bytes());
            let _ = writer.flush();
        }
    }
}

/// The filter for a configured level: our own crate at that level, the
/// libraries below us at no more than `warn` (their debug output is noise
/// and could in principle show request details).
pub fn filter(level: &str) -> EnvFilter {
    let level = level.to_ascii_lowercase();
    let libraries = match level.as_str() {
        "error" => "error",
        _ => "warn",
    };
    EnvFilter::new(format!("{libraries},ecs_jobwatch={level}"))
}

/// Installs the global subscriber. Returns an error when the journal is
/// asked for but cannot be reached, or a subscriber is already set.
pub fn init(format: Format, level: &str) -> anyhow::Result<()> {
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter(level));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        Format::Journald => {
            let journald = tracing_journald::layer()
                .map_err(|error| anyhow::anyhow!("cannot reach the journal: {error}"))?;
            registry.with(journald).try_init()?;
        }
        Format::Json | Format::Text | Format::Brief => {
            let writer: Writer = Arc::new(Mutex::new(std::io::stdout()));
            registry.with(LineLayer::new(format, writer)).try_init()?;
        }
    }
    let _ = LEVEL.set(handle);
    Ok(())
}

/// The handle that changes the level of the installed subscriber.
static LEVEL: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

/// Changes the level at run time (on reload). A no-op when [`init`] was
/// not called (tests, the library used on its own).
pub fn set_level(level: &str) {
    if let Some(handle) = LEVEL.get() {
        let _ = handle.reload(filter(level));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::id::JobId;
    use crate::output::event;
    use crate::watch::Labels;

    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(format: Format, body: impl FnOnce()) -> String {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer: Writer = Arc::new(Mutex::new(Buffer(buffer.clone())));
        let subscriber = tracing_subscriber::registry().with(LineLayer::new(format, writer));
        tracing::subscriber::with_default(subscriber, body);
        let bytes = buffer.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_have_top_level_typed_fields() {
        let id = JobId::parse("job1").unwrap();
        let labels = Labels::from([("team".to_string(), "x".to_string())]);
        let output = capture(Format::Json, || {
            event::job_not_found(&id, None, &labels).emit();
            tracing::warn!(answer = 42, "plain");
        });
        let lines: Vec<Value> = output
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        let first = &lines[0];
        assert_eq!(first["event"], "job.not_found");
        assert_eq!(first["level"], "ERROR");
        assert_eq!(first["job_id"], "job1");
        assert_eq!(first["last_status"], Value::Null);
        assert_eq!(first["labels"]["team"], "x");
        assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(first.get("fields_json").is_none());
        assert_eq!(lines[1]["event"], "log");
        assert_eq!(lines[1]["answer"], 42);
        assert_eq!(lines[1]["message"], "plain");
    }

    #[test]
    fn json_line_is_the_events_own_object() {
        // A webhook body is `Event::to_json`; it must be the log line, byte
        // for byte, when both carry the same time.
        let id = JobId::parse("job1").unwrap();
        let labels = Labels::from([("team".to_string(), "x".to_string())]);
        let event = event::job_not_found(&id, Some("RUNNING"), &labels);
        let timestamp = "2024-05-01T12:00:00.123Z";
        let output = capture(Format::Json, || event.emit_at(timestamp));
        assert_eq!(
            output.trim_end(),
            event.to_json(timestamp).to_string(),
            "{output}"
        );
    }

    #[test]
    fn text_lines_are_readable() {
        let output = capture(Format::Text, || event::daemon_started(3).emit());
        assert!(
            output.contains("INFO  daemon.started: ecs-jobwatch"),
            "{output}"
        );
        assert!(output.contains("jobs_tracked=3"), "{output}");
    }
}
