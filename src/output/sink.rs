//! What a notification sink takes, and the outbox rows of one
//! announcement. Every sink (webhook or SMN topic) has a filter: the event
//! names it takes and, for `job.transition`, the statuses. The scheduler
//! queues a row for every sink whose filter takes an event, in the same
//! batch that records the fact; the row's body is the event's JSON line,
//! the very text the log got.

use crate::output::event::{self, Event};
use crate::output::log::Line;
use crate::store::Write;
use crate::store::outbox::Queued;

/// What a sink's outbox rows carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyFormat {
    /// The event's JSON line (webhooks).
    #[default]
    Json,
    /// The body of an SMN publish request
    /// ([`crate::output::smn::message::publish_body`]).
    SmnPublish,
}

/// What the scheduler needs of a sink: its key in the outbox and what it
/// takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkFilter {
    /// The sink's key in the outbox.
    pub sink: String,
    /// Where it delivers (a webhook's URL, a topic's URN), kept on its rows.
    pub target: String,
    /// What its rows carry.
    pub format: BodyFormat,
    /// Event names taken.
    pub events: Vec<String>,
    /// `job.transition` is taken only into these statuses.
    pub statuses: Vec<String>,
}

impl SinkFilter {
    /// Whether this sink takes `event`.
    pub fn matches(&self, event: &Event) -> bool {
        if !self.events.iter().any(|name| name == event.name()) {
            return false;
        }
        match event.status() {
            Some(status) => self.statuses.iter().any(|s| s == status.as_str()),
            None => event.name() != event::JOB_TRANSITION,
        }
    }
}

/// The outbox rows of one announcement: one per sink that takes the
/// event, with the body of its format (rendered once per format). Events
/// without an `event_id` are never queued.
pub fn outbox_writes(
    filters: &[SinkFilter],
    event: &Event,
    line: &Line,
    now_ms: i64,
) -> Vec<Write> {
    let Some(event_id) = event.event_id() else {
        return Vec::new();
    };
    let mut publish: Option<String> = None;
    filters
        .iter()
        .filter(|filter| filter.matches(event))
        .map(|filter| {
            let body = match filter.format {
                BodyFormat::Json => line.json.clone(),
                BodyFormat::SmnPublish => publish
                    .get_or_insert_with(|| crate::output::smn::message::publish_body(event, line))
                    .clone(),
            };
            Write::Outbox(Queued {
                sink: filter.sink.clone(),
                target: filter.target.clone(),
                event_id: event_id.to_string(),
                body,
                created_at: now_ms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::job::{JobKey, JobView, Labels, Status};
    use crate::output::event::{JobRef, TransitionContext};

    fn job() -> JobRef {
        JobRef {
            key: JobKey::parse("j").unwrap(),
            project_id: Arc::from("p"),
            region: None,
            labels: Arc::new(Labels::new()),
        }
    }

    fn transition(status: Status) -> Event {
        let view = JobView {
            status,
            ..JobView::default()
        };
        event::job_transition(
            job(),
            TransitionContext {
                previous: None,
                sequence: 0,
            },
            &view,
        )
    }

    fn filter(events: &[&str], statuses: &[&str]) -> SinkFilter {
        SinkFilter {
            target: "https://s.example.com/".into(),
            sink: "s".into(),
            format: BodyFormat::Json,
            events: events.iter().map(|s| s.to_string()).collect(),
            statuses: statuses.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn filters_take_events_and_statuses() {
        let all = filter(
            &["job.transition", "job.not_found"],
            &["SUCCESS", "FAIL", "PENDING_PAYMENT"],
        );
        assert!(all.matches(&transition(Status::Fail)));
        assert!(!all.matches(&transition(Status::Running)));
        assert!(all.matches(&event::job_not_found(job(), None)));
        assert!(!all.matches(&event::daemon_started(1)));
        assert!(!filter(&["job.not_found"], &["FAIL"]).matches(&transition(Status::Fail)));
    }

    #[test]
    fn rows_carry_the_log_line() {
        let line = Line {
            timestamp: "T".into(),
            json: "{\"x\":1}".into(),
        };
        let event = transition(Status::Fail);
        let filters = [
            filter(&["job.transition"], &["FAIL"]),
            SinkFilter {
                sink: "other".into(),
                ..filter(&["job.transition"], &["SUCCESS"])
            },
        ];
        let rows = outbox_writes(&filters, &event, &line, 7);
        assert_eq!(rows.len(), 1);
        let Write::Outbox(queued) = &rows[0] else {
            panic!("an outbox row")
        };
        assert_eq!(queued.body, line.json);
        assert_eq!(queued.event_id, event.event_id().unwrap());
        assert_eq!(queued.created_at, 7);
        assert!(outbox_writes(&filters, &event::daemon_started(1), &line, 7).is_empty());
    }
}
