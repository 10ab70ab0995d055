//! The metadata step of the chain: temporary keys from the instance
//! metadata service of ECS, and the cache that keeps them fresh.
//!
//! [`MetadataClient`] speaks the protocol: an optional session token
//! (`PUT /meta-data/latest/api/token`, skipped when the service does not
//! offer one), then `GET /openstack/latest/securitykey` or
//! `/openstack/latest/meta_data.json`, on a dedicated client without proxy,
//! with bodies capped at 64 KiB. [`MetadataSource`] caches the keys and
//! refreshes them once less than [`super::REFRESH_MARGIN`] remains, with one
//! request shared by every concurrent caller (single flight); a failed
//! refresh keeps a still-valid key, and an expired key is never handed out.
//! Errors name the URL; the body of a successful answer, which holds keys,
//! is never quoted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, NaiveDateTime, Utc};
use secrecy::zeroize::Zeroize;

use super::{
    CredentialError, Credentials, CredentialsConfig, MAX_BODY_BYTES, REFRESH_RETRY_INTERVAL,
    read_lock, write_lock,
};
use crate::huaweicloud::secret::Secret;

/// The lifetime asked for the metadata session token, in seconds.
const METADATA_TOKEN_TTL_SECONDS: &str = "21600";

/// The header that asks for a metadata session token.
pub(super) const METADATA_TOKEN_TTL_HEADER: &str = "X-Metadata-Token-Ttl-Seconds";

/// The header that carries the metadata session token.
pub(super) const METADATA_TOKEN_HEADER: &str = "X-Metadata-Token";

/// The phrase of the 401 answer given when the instance has no agency.
const NO_AGENCY_MARKER: &str = "Please configure Cloud Service Agency first";

/// How much of an error answer's body is quoted in an error message.
const ERROR_EXCERPT_CHARS: usize = 200;

/// A metadata failure, and whether the service could not be reached at all
/// (which, at the end of the automatic chain, means "nothing found").
pub(super) struct MetadataFailure {
    pub(super) error: CredentialError,
    pub(super) unreachable: bool,
}

impl From<CredentialError> for MetadataFailure {
    fn from(error: CredentialError) -> MetadataFailure {
        MetadataFailure {
            error,
            unreachable: false,
        }
    }
}

/// The HTTP side of the metadata service.
#[derive(Debug)]
pub(super) struct MetadataClient {
    http: reqwest::Client,
    base: String,
}

impl MetadataClient {
    /// A dedicated client: no proxy, `timeout` on each call.
    pub(super) fn new(config: &CredentialsConfig) -> Result<MetadataClient, CredentialError> {
        let base = config.metadata_url.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(config.metadata_timeout)
            .connect_timeout(config.metadata_timeout)
            .build()
            .map_err(|error| CredentialError::Metadata {
                url: base.clone(),
                message: format!("cannot build the HTTP client: {}", error_chain(&error)),
            })?;
        Ok(MetadataClient { http, base })
    }

    /// An error about `path` of this service.
    fn error(&self, path: &str, message: String) -> CredentialError {
        CredentialError::Metadata {
            url: format!("{}{path}", self.base),
            message,
        }
    }

    /// Asks for a session token; `None` when the service does not use them.
    async fn token(&self) -> Result<Option<Secret>, MetadataFailure> {
        let path = "/meta-data/latest/api/token";
        let request = self
            .http
            .put(format!("{}{path}", self.base))
            .header(METADATA_TOKEN_TTL_HEADER, METADATA_TOKEN_TTL_SECONDS);
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) if error.is_connect() || error.is_timeout() => {
                return Err(MetadataFailure {
                    error: self.error(path, error_chain(&error)),
                    unreachable: true,
                });
            }
            Err(error) => {
                tracing::debug!(error = %error_chain(&error), "metadata token request failed; going on without a token");
                return Ok(None);
            }
        };
        let status = response.status();
        if matches!(status.as_u16(), 404 | 405 | 503) {
            return Ok(None);
        }
        let mut body = read_capped(response, &self.base, path).await?;
        if !status.is_success() {
            return Err(self.error(path, answered(status, &body)).into());
        }
        let token = Secret::trimmed(String::from_utf8_lossy(&body).into_owned());
        body.zeroize();
        Ok((!token.is_empty()).then_some(token))
    }

    /// GETs `path` with the session token when there is one.
    async fn get(
        &self,
        path: &str,
        token: Option<&Secret>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), MetadataFailure> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header(METADATA_TOKEN_HEADER, token.expose());
        }
        let response = request.send().await.map_err(|error| MetadataFailure {
            unreachable: error.is_connect() || error.is_timeout(),
            error: self.error(path, error_chain(&error)),
        })?;
        let status = response.status();
        let body = read_capped(response, &self.base, path).await?;
        Ok((status, body))
    }

    /// GETs a JSON document, with the token flow; a 401 about the agency
    /// becomes [`CredentialError::NoAgency`].
    async fn get_json(&self, path: &str) -> Result<serde_json::Value, MetadataFailure> {
        let token = self.token().await?;
        let (status, mut body) = self.get(path, token.as_ref()).await?;
        if status == reqwest::StatusCode::UNAUTHORIZED
            && String::from_utf8_lossy(&body).contains(NO_AGENCY_MARKER)
        {
            return Err(CredentialError::NoAgency.into());
        }
        if !status.is_success() {
            return Err(self.error(path, answered(status, &body)).into());
        }
        // The body of a successful answer may hold keys: it is zeroized once
        // parsed, and the message gives the position of a syntax error,
        // never the text.
        let document = serde_json::from_slice(&body);
        body.zeroize();
        document.map_err(|error| {
            self.error(
                path,
                format!(
                    "the answer is not JSON (line {}, column {})",
                    error.line(),
                    error.column()
                ),
            )
            .into()
        })
    }

    /// Fetches temporary keys from `/openstack/latest/securitykey`.
    async fn security_key(&self) -> Result<Credentials, MetadataFailure> {
        let path = "/openstack/latest/securitykey";
        let document = self.get_json(path).await?;
        parse_security_key(&document).map_err(|message| self.error(path, message).into())
    }

    /// Fetches the project id from `/openstack/latest/meta_data.json`.
    pub(super) async fn project_id(&self) -> Result<String, MetadataFailure> {
        let path = "/openstack/latest/meta_data.json";
        let document = self.get_json(path).await?;
        document
            .get("project_id")
            .and_then(serde_json::Value::as_str)
            .filter(|project_id| !project_id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                self.error(path, "the answer has no `project_id`".to_string())
                    .into()
            })
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of an answer.
async fn read_capped(
    mut response: reqwest::Response,
    base: &str,
    path: &str,
) -> Result<Vec<u8>, CredentialError> {
    let error = |message: String| CredentialError::Metadata {
        url: format!("{base}{path}"),
        message,
    };
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|failure| {
        error(format!(
            "reading the answer failed: {}",
            error_chain(&failure)
        ))
    })? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(error("the answer is larger than 64 KiB".to_string()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// "answered HTTP 500: <start of the body>", for an error answer (which
/// holds no keys).
fn answered(status: reqwest::StatusCode, body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .take(ERROR_EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        format!("answered HTTP {}", status.as_u16())
    } else {
        format!("answered HTTP {}: {text}", status.as_u16())
    }
}

/// An error and its causes, joined by ": ".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads `{"credential":{"access","secret","securitytoken","expires_at"}}`.
/// The message of an error names the field, never its value.
fn parse_security_key(document: &serde_json::Value) -> Result<Credentials, String> {
    let Some(credential) = document.get("credential") else {
        return Err("the answer has no `credential` object".to_string());
    };
    let field = |name: &str| {
        credential
            .get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|value| !value.is_empty())
    };
    let access = field("access").ok_or("the answer has no `credential.access`")?;
    let secret = field("secret").ok_or("the answer has no `credential.secret`")?;
    let expires_at = field("expires_at").ok_or("the answer has no `credential.expires_at`")?;
    let expires_at = parse_timestamp(expires_at)
        .ok_or_else(|| format!("`credential.expires_at` is not a timestamp: {expires_at:?}"))?;
    Ok(Credentials {
        access_key: Secret::new(access),
        secret_key: Secret::new(secret),
        security_token: field("securitytoken").map(Secret::new),
        expires_at: Some(expires_at),
    })
}

/// Parses RFC 3339 (`2022-10-17T18:51:25.231000Z`, any fraction, any
/// offset), and the same without an offset, taken as UTC.
pub(super) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|time| time.and_utc())
}

/// The metadata source: a cache, and the lock that makes a refresh single.
#[derive(Debug)]
pub(super) struct MetadataSource {
    client: MetadataClient,
    /// The steps the automatic chain tried before settling here.
    tried: Option<String>,
    current: RwLock<Option<Arc<Credentials>>>,
    /// How many refresh attempts have finished, so that callers that waited
    /// for an attempt share its outcome instead of starting another.
    attempts: AtomicU64,
    refresh: tokio::sync::Mutex<RefreshState>,
}

/// What the refresh lock guards.
#[derive(Debug, Default)]
struct RefreshState {
    /// No new attempt before this instant while the cached key is valid.
    retry_after: Option<tokio::time::Instant>,
    /// The failure of the last attempt, shared with those who waited for it.
    last_error: Option<CredentialError>,
}

impl MetadataSource {
    /// Chooses the metadata service without contacting it; `tried` lists
    /// the steps of the automatic chain that came before.
    pub(super) fn new(
        config: &CredentialsConfig,
        tried: Option<String>,
    ) -> Result<MetadataSource, CredentialError> {
        Ok(MetadataSource {
            client: MetadataClient::new(config)?,
            tried,
            current: RwLock::new(None),
            attempts: AtomicU64::new(0),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        })
    }

    /// The base URL of the service, for [`super::Resolved::Metadata`].
    pub(super) fn url(&self) -> &str {
        &self.client.base
    }

    /// The metadata branch of [`super::CredentialProvider::get`]: the cached
    /// keys while fresh, else one refresh shared by every caller; bumps
    /// `generation` when the keys change.
    pub(super) async fn get(
        &self,
        generation: &AtomicU64,
    ) -> Result<Arc<Credentials>, CredentialError> {
        let now = Utc::now();
        let cached = read_lock(&self.current);
        if let Some(cached) = &cached
            && cached.is_fresh_at(now)
        {
            return Ok(cached.clone());
        }
        let attempts_seen = self.attempts.load(Ordering::Acquire);
        let mut state = match self.refresh.try_lock() {
            Ok(state) => state,
            Err(_) => match cached.filter(|cached| cached.is_valid_at(now)) {
                // Another caller is refreshing and the cached key still
                // works: use it rather than wait for the metadata service.
                Some(valid) => return Ok(valid),
                None => self.refresh.lock().await,
            },
        };
        let now = Utc::now();
        let cached = read_lock(&self.current);
        if let Some(cached) = &cached
            && cached.is_fresh_at(now)
        {
            return Ok(cached.clone());
        }
        let valid = cached.clone().filter(|cached| cached.is_valid_at(now));
        if self.attempts.load(Ordering::Acquire) != attempts_seen {
            // An attempt finished while this caller waited: share its outcome.
            if let Some(valid) = valid {
                return Ok(valid);
            }
            if let Some(error) = &state.last_error {
                return Err(error.duplicate());
            }
        }
        if let Some(valid) = &valid
            && state
                .retry_after
                .is_some_and(|retry_after| tokio::time::Instant::now() < retry_after)
        {
            return Ok(valid.clone());
        }

        let outcome = self.client.security_key().await;
        self.attempts.fetch_add(1, Ordering::AcqRel);
        let now = Utc::now();
        let outcome = match outcome {
            Ok(fresh) => match fresh.expires_at {
                Some(expires_at) if expires_at <= now => {
                    Err(CredentialError::Expired { expires_at })
                }
                _ => Ok(fresh),
            },
            Err(failure) => Err(match (&self.tried, failure.unreachable) {
                (Some(tried), true) => CredentialError::NotFound {
                    tried: format!("{tried}, {}", failure.error),
                },
                _ => failure.error,
            }),
        };
        match outcome {
            Ok(fresh) => {
                let unchanged = cached
                    .as_ref()
                    .is_some_and(|cached| cached.same_keys(&fresh));
                if !unchanged {
                    generation.fetch_add(1, Ordering::AcqRel);
                }
                // The service has not rotated the key yet: ask again later,
                // not on every call.
                state.retry_after = (unchanged && !fresh.is_fresh_at(now))
                    .then(|| tokio::time::Instant::now() + REFRESH_RETRY_INTERVAL);
                state.last_error = None;
                let fresh = Arc::new(fresh);
                write_lock(&self.current, Some(fresh.clone()));
                Ok(fresh)
            }
            Err(error) => match valid {
                Some(valid) => {
                    tracing::warn!(
                        error = %error,
                        expires_at = ?valid.expires_at,
                        "refreshing the temporary credentials failed; using the cached ones until they expire"
                    );
                    state.retry_after = Some(tokio::time::Instant::now() + REFRESH_RETRY_INTERVAL);
                    state.last_error = Some(error);
                    Ok(valid)
                }
                None => {
                    state.retry_after = None;
                    state.last_error = Some(error.duplicate());
                    Err(error)
                }
            },
        }
    }
}
