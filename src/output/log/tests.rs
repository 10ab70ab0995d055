use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::*;
use crate::job::{JobKey, Labels, Status};
use crate::output::event::{self, JobRef};

#[derive(Clone, Default)]
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

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn job() -> JobRef {
    JobRef {
        key: JobKey::parse("job1").unwrap(),
        project_id: Arc::from("p"),
        region: None,
        labels: Arc::new(Labels::from([("team".to_string(), "x".to_string())])),
    }
}

#[test]
fn json_lines_are_the_rendered_text_and_come_back_for_the_sinks() {
    let buffer = Buffer::default();
    let logger = Logger::to_stream(Format::Json, "info", Box::new(buffer.clone()), false);
    let line = logger.announce(&event::job_not_found(job(), Some(&Status::Running)));
    assert_eq!(buffer.text(), format!("{}\n", line.json));
    let parsed: Value = serde_json::from_str(&line.json).unwrap();
    assert_eq!(parsed["event"], "job.not_found");
    assert_eq!(parsed["level"], "ERROR");
    assert_eq!(parsed["last_status"], "RUNNING");
    assert_eq!(parsed["labels"]["team"], "x");
    assert_eq!(parsed["timestamp"], line.timestamp.as_str());
    assert!(line.timestamp.ends_with('Z'));
}

#[test]
fn the_journal_stream_gets_priority_prefixes() {
    let buffer = Buffer::default();
    let logger = Logger::to_stream(Format::Json, "info", Box::new(buffer.clone()), true);
    logger.announce(&event::job_not_found(job(), None));
    logger.announce(&event::daemon_started(1));
    logger.announce(&event::watch_problem("x"));
    let text = buffer.text();
    let prefixes: Vec<&str> = text.lines().map(|l| &l[..3]).collect();
    assert_eq!(prefixes, ["<3>", "<6>", "<4>"]);
    for line in text.lines() {
        let _: Value = serde_json::from_str(&line[3..]).unwrap();
    }
}

#[test]
fn journal_stream_must_match_device_and_inode() {
    assert!(journal_stream_matches("8:12345", 8, 12345));
    assert!(!journal_stream_matches("8:12345", 8, 12346));
    assert!(!journal_stream_matches("8:12345", 9, 12345));
    assert!(!journal_stream_matches("garbage", 8, 12345));
    assert!(!journal_stream_matches("", 0, 0));
    // Under `cargo test` stdout is never the journal.
    let env = BTreeMap::from([("JOURNAL_STREAM".to_string(), "1:1".to_string())]);
    assert!(!stdout_is_journal(&env));
    assert!(!stdout_is_journal(&BTreeMap::new()));
}

#[test]
fn the_level_filters_and_can_change() {
    let buffer = Buffer::default();
    let logger = Logger::to_stream(Format::Text, "error", Box::new(buffer.clone()), false);
    logger.announce(&event::daemon_started(3));
    assert_eq!(buffer.text(), "");
    logger.set_level("info");
    logger.announce(&event::daemon_started(3));
    let text = buffer.text();
    assert!(
        text.contains("INFO  daemon.started: ecs-jobwatch"),
        "{text}"
    );
    assert!(text.contains("jobs_tracked=3"), "{text}");
}

#[test]
fn library_lines_are_rate_limited_per_library() {
    let buffer = Buffer::default();
    let logger = Logger::to_stream(Format::Json, "info", Box::new(buffer.clone()), false);
    for _ in 0..5 {
        logger.record("rustls::conn", Level::Warn, "bad cert", Vec::new());
    }
    logger.record("hyper", Level::Warn, "other", Vec::new());
    let lines: Vec<Value> = buffer
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event"], "log");
    assert_eq!(lines[0]["target"], "rustls::conn");
    assert_eq!(lines[0]["message"], "bad cert");
    assert_eq!(lines[1]["target"], "hyper");
}
