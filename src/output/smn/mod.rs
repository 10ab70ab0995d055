//! SMN topics: a [`Transport`] that publishes each queued event to a topic
//! of Simple Message Notification with
//! `POST /v2/{project_id}/notifications/topics/{topic_urn}/publish`.
//!
//! The request is the one the job calls make: the same signed client and
//! credentials, and a permit of the account's budget, throttle and
//! authentication gate taken from the scheduler before each publish
//! ([`Permits`]); its outcome goes back to the scheduler, so a throttled
//! publish slows the job polls and a refused signature (401) pauses them,
//! as a poll's would. A 403 (the key may not publish to this topic) is
//! this sink's own problem: it pauses the sink (retried every
//! [`FORBIDDEN_PAUSE`], `ecs_jobwatch_notify_paused` = 1) and nothing else.
//!
//! The body was rendered when the event was announced
//! ([`message::publish_body`]) and waits in the outbox like a webhook's.

pub mod message;

use std::time::{Duration, SystemTime};

use reqwest::Method;

use crate::huaweicloud::client::{Client, Endpoint, Request};
use crate::huaweicloud::error::{self, ErrorKind};
use crate::output::delivery::{Failure, Outcome, Transport};
use crate::policy::permit::{CallOutcome, Permits};
use crate::store::outbox::Row;

/// How long a sink refused with 403 waits before it tries again.
pub const FORBIDDEN_PAUSE: Duration = Duration::from_secs(60);
/// The most answer bytes read (an answer is `request_id` and `message_id`).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// An SMN sink ready to publish to: its settings, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sink {
    /// The stable name: the outbox key and the `sink` label.
    pub name: String,
    /// The topic.
    pub topic_urn: String,
    /// The SMN endpoint of the publishing project.
    pub endpoint: reqwest::Url,
    /// The publishing project's id (in the path and `X-Project-Id`).
    pub project_id: String,
    /// Give up after this long.
    pub max_age: Duration,
}

/// The path of a publish to `topic_urn` in `project_id`.
pub fn publish_path(project_id: &str, topic_urn: &str) -> String {
    format!("/v2/{project_id}/notifications/topics/{topic_urn}/publish")
}

/// Publishes to one topic.
pub struct Smn {
    topic_urn: String,
    endpoint: Endpoint,
    path: String,
    project_id: String,
    client: Client,
    permits: Permits,
}

impl Smn {
    /// The transport of `sink` over the daemon's signed client.
    pub fn new(sink: &Sink, client: Client, permits: Permits) -> Result<Smn, String> {
        let endpoint = Endpoint::new(&sink.endpoint)
            .map_err(|error| format!("notify.smn {}: {error}", sink.name))?;
        Ok(Smn {
            topic_urn: sink.topic_urn.clone(),
            endpoint,
            path: publish_path(&sink.project_id, &sink.topic_urn),
            project_id: sink.project_id.clone(),
            client,
            permits,
        })
    }
}

/// What the account's gate learns from a failed publish, and what the sink
/// does about it.
fn judge(error: &error::ApiError) -> (CallOutcome, Failure) {
    let failure = Failure::new(error.to_string());
    match &error.kind {
        ErrorKind::Throttled { retry_after } => (
            CallOutcome::Throttled {
                retry_after: *retry_after,
            },
            Failure {
                retry_after: *retry_after,
                ..failure
            },
        ),
        ErrorKind::Auth => (CallOutcome::Unauthenticated, failure),
        ErrorKind::Forbidden => (
            CallOutcome::Answered,
            Failure {
                retry_after: Some(FORBIDDEN_PAUSE),
                paused: true,
                ..failure
            },
        ),
        _ if error.http_status.is_some() => (CallOutcome::Answered, failure),
        _ => (CallOutcome::NoAnswer, failure),
    }
}

impl Transport for Smn {
    fn kind(&self) -> &'static str {
        "smn"
    }

    fn target(&self) -> &str {
        &self.topic_urn
    }

    async fn deliver(&self, row: &Row) -> Outcome {
        if self.permits.acquire().await.is_err() {
            return Outcome::Failed(Failure::new("the daemon is stopping"));
        }
        let request = Request {
            method: &Method::POST,
            endpoint: &self.endpoint,
            path: &self.path,
            query: &[],
            project_id: Some(&self.project_id),
            body: row.body.as_bytes(),
            max_body_bytes: MAX_ANSWER_BYTES,
        };
        let result = self.client.send(&request).await.and_then(|answer| {
            error::classify(
                answer.status,
                answer.headers(),
                &answer.body,
                SystemTime::now(),
                &|_| false,
            )
            .map(drop)
        });
        match result {
            Ok(()) => {
                self.permits.report(CallOutcome::Answered);
                Outcome::Delivered
            }
            Err(error) => {
                let (outcome, failure) = judge(&error);
                self.permits.report(outcome);
                Outcome::Failed(failure)
            }
        }
    }
}
