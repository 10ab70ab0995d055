//! Webhooks: a [`Transport`] that POSTs each queued event to a URL.
//!
//! The body is the event's JSON line, fixed at announcement time. Every
//! request carries `Content-Type: application/json` and
//! `Idempotency-Key: {event_id}`; with a secret, also
//! `X-Jobwatch-Signature` and the Standard Webhooks headers `webhook-id`
//! (the `event_id`), `webhook-timestamp` (Unix seconds of this attempt) and
//! `webhook-signature` (see [`crate::output::signing`]). A 2xx answer is
//! delivery. Any other answer, a timeout or a refused connection is a
//! failure retried by [`crate::output::delivery`]; a `Retry-After` on the
//! answer (seconds, or an HTTP date, counted from the answer's `Date`)
//! sets when the next attempt is made.
//! Redirects are not followed (a receiver that moved must be configured
//! anew).

use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::{Url, redirect};
use secrecy::zeroize::Zeroizing;

use crate::config::Config;
use crate::huaweicloud::client::USER_AGENT;
use crate::huaweicloud::secret::Secret;
use crate::output::delivery::{Failure, Outcome, Transport};
use crate::output::signing;
use crate::store::outbox::Row;

pub use crate::output::signing::signature;

/// How long one delivery may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The header carrying the `event_id`.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The header carrying `sha256={hex}` when the sink has a secret.
pub const SIGNATURE: &str = "X-Jobwatch-Signature";
/// Standard Webhooks: the message id (the `event_id`).
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks: Unix seconds of this attempt.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks: `v1,{base64}` signatures, space separated.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// A webhook sink ready to deliver to: its settings and its secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sink {
    /// The stable name: the outbox key and the `sink` label.
    pub name: String,
    /// Where to POST.
    pub url: Url,
    /// The signing secrets, the current one first (several during a
    /// rotation); empty without a secret.
    pub secrets: Vec<Secret>,
    /// Give up after this long.
    pub max_age: Duration,
}

/// Builds the webhook sinks of a configuration, reading each secret file
/// (trimmed; an empty one, or a `whsec_` one that is not base64, is an
/// error). Errors name the key: `notify.webhook[0].secret_file: ...`.
pub fn load_sinks(config: &Config) -> Result<Vec<Sink>, String> {
    config
        .webhooks()
        .iter()
        .enumerate()
        .map(|(index, settings)| {
            let files = &settings.secret_files;
            let key = if files.len() > 1 {
                "secret_files"
            } else {
                "secret_file"
            };
            let secrets = files
                .iter()
                .map(|path| read_secret(path))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| format!("notify.webhook[{index}].{key}: {error}"))?;
            Ok(Sink {
                name: settings.name.clone(),
                url: settings.url.clone(),
                secrets,
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
    signing::standard_key(&secret).map_err(|error| format!("{}: {error}", path.display()))?;
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

/// The wait a `Retry-After` value asks for at `now`: whole seconds, or an
/// HTTP date (a date in the past asks for no wait). `None` when the value
/// is neither.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Delivers to one webhook.
pub struct Webhook {
    url: Url,
    http: reqwest::Client,
    /// The secret of `X-Jobwatch-Signature` (the current one).
    secret: Option<Secret>,
    /// The Standard Webhooks keys, one per secret.
    keys: Vec<Zeroizing<Vec<u8>>>,
}

impl Webhook {
    /// The transport of `sink` over the shared client.
    pub fn new(sink: &Sink, http: reqwest::Client) -> Result<Webhook, String> {
        let keys = sink
            .secrets
            .iter()
            .map(signing::standard_key)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("sink {}: a secret {error}", sink.name))?;
        Ok(Webhook {
            url: sink.url.clone(),
            http,
            secret: sink.secrets.first().cloned(),
            keys,
        })
    }

    /// The request of one attempt at `timestamp` (Unix seconds).
    fn request(&self, row: &Row, timestamp: i64) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_KEY, row.event_id.as_str());
        if let Some(secret) = &self.secret {
            let body = row.body.as_bytes();
            request = request
                .header(SIGNATURE, signature(secret.expose().as_bytes(), body))
                .header(WEBHOOK_ID, row.event_id.as_str())
                .header(WEBHOOK_TIMESTAMP, timestamp.to_string())
                .header(
                    WEBHOOK_SIGNATURE,
                    signing::standard_signature(&self.keys, &row.event_id, timestamp, body),
                );
        }
        request.body(row.body.clone())
    }
}

impl Transport for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn target(&self) -> &str {
        self.url.as_str()
    }

    async fn deliver(&self, row: &Row) -> Outcome {
        let timestamp = chrono::Utc::now().timestamp();
        match self.request(row, timestamp).send().await {
            Ok(response) if response.status().is_success() => Outcome::Delivered,
            Ok(response) => {
                let header = |name| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                };
                // A date counts from the answer's own `Date` when it has
                // one, so a receiver's clock skew does not matter.
                let now = header(reqwest::header::DATE)
                    .and_then(|date| httpdate::parse_http_date(date).ok())
                    .unwrap_or_else(SystemTime::now);
                let asked =
                    header(reqwest::header::RETRY_AFTER).and_then(|value| retry_after(value, now));
                Outcome::Failed(Failure {
                    retry_after: asked,
                    ..Failure::new(format!("HTTP {}", response.status().as_u16()))
                })
            }
            Err(error) => Outcome::Failed(Failure::new(describe(&error))),
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
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let cases = [
            ("3", Some(Duration::from_secs(3))),
            (" 120 ", Some(Duration::from_secs(120))),
            ("0", Some(Duration::ZERO)),
            // 2001-09-09T01:46:40Z is `now`; ten seconds later.
            (
                "Sun, 09 Sep 2001 01:46:50 GMT",
                Some(Duration::from_secs(10)),
            ),
            ("Sun, 09 Sep 2001 01:46:00 GMT", Some(Duration::ZERO)),
            ("-1", None),
            ("soon", None),
        ];
        for (value, expected) in cases {
            assert_eq!(retry_after(value, now), expected, "{value}");
        }
    }

    #[test]
    fn secrets_are_read_trimmed_and_named_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "s3cret\n").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "whsec_***\n").unwrap();
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
        assert!(sinks[0].secrets.is_empty());
        assert_eq!(sinks[0].name, "webhook-1");
        assert_eq!(sinks[1].secrets[0].expose(), "s3cret");
        for (file, start) in [
            (&empty, "notify.webhook[1].secret_file: "),
            (&bad, "notify.webhook[1].secret_file: "),
            (
                &dir.path().join("missing"),
                "notify.webhook[1].secret_file: cannot read",
            ),
        ] {
            let error = load(file).unwrap_err();
            assert!(error.starts_with(start), "{error}");
            assert!(!error.contains("***"), "{error}");
        }
    }
}
