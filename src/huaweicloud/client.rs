//! The HTTP client of the job API: one pooled reqwest client, signed
//! requests, a request timeout, a body cap, and every failure classified
//! into [`ErrorKind`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Url, redirect};

use super::credentials::{CredentialError, CredentialProvider, Credentials};
use super::error::{self, AnswerHeaders, ApiError, ErrorKind};
use super::sign;
use crate::services::ecs::{Job, MAX_BODY_BYTES};

/// `ecs-jobwatch/{version}`.
pub const USER_AGENT: &str = concat!("ecs-jobwatch/", env!("CARGO_PKG_VERSION"));

/// What the client needs to know; validated by the configuration.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL, for example `https://ecs.cn-north-4.myhuaweicloud.com`.
    pub endpoint: Url,
    /// The project whose jobs are read.
    pub project_id: String,
    /// Whole-request timeout (connect, headers and body).
    pub request_timeout: Duration,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint has no host.
    #[error("endpoint {0} has no host")]
    NoHost(String),
    /// reqwest refused the settings (for example, no TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// The signed job API client. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    base_path: String,
    host: String,
    project_id: String,
    credentials: CredentialProvider,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("project_id", &self.inner.project_id)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the client; no I/O happens here.
    pub fn new(
        config: &ClientConfig,
        credentials: CredentialProvider,
    ) -> Result<Client, ClientError> {
        let host = host_header(&config.endpoint)
            .ok_or_else(|| ClientError::NoHost(config.endpoint.to_string()))?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .redirect(redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| ClientError::Build(error.to_string()))?;
        // Paths are joined to the endpoint's own path, without its
        // trailing slash.
        let base_path = config.endpoint.path().trim_end_matches('/').to_string();
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoint: config.endpoint.clone(),
                base_path,
                host,
                project_id: config.project_id.clone(),
                credentials,
            }),
        })
    }

    /// The project this client reads.
    pub fn project_id(&self) -> &str {
        &self.inner.project_id
    }

    /// The credential provider this client signs with.
    pub fn credentials(&self) -> &CredentialProvider {
        &self.inner.credentials
    }

    /// `GET /v1/{project_id}/jobs/{job_id}`, signed, classified.
    pub async fn get_job(&self, job_id: &str) -> Result<Job, ApiError> {
        let credentials = self
            .inner
            .credentials
            .get()
            .await
            .map_err(credential_failure)?;
        let path = format!(
            "{}/v1/{}/jobs/{}",
            self.inner.base_path,
            sign::percent_encode(&self.inner.project_id),
            sign::percent_encode(job_id)
        );
        let headers = self.signed_headers(&path, &credentials, chrono::Utc::now());
        let mut url = self.inner.endpoint.clone();
        url.set_path(&path);

        let response = self
            .inner
            .http
            .get(url)
            .headers(headers)
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status().as_u16();
        let request_id = header_text(response.headers(), "x-request-id");
        let retry_after = header_text(response.headers(), "retry-after");
        let body = read_capped(response).await.map_err(|mut error| {
            error.http_status = Some(status);
            error.request_id = request_id.clone();
            error
        })?;
        let answer = AnswerHeaders {
            request_id: request_id.as_deref(),
            retry_after: retry_after.as_deref(),
        };
        error::classify(status, answer, &body, SystemTime::now())
    }

    /// The headers of one request: the signed set plus `Authorization`.
    fn signed_headers(
        &self,
        path: &str,
        credentials: &Credentials,
        now: chrono::DateTime<chrono::Utc>,
    ) -> HeaderMap {
        let mut pairs: Vec<(String, String)> = vec![
            ("Content-Type".into(), "application/json".into()),
            ("Host".into(), self.inner.host.clone()),
            ("X-Project-Id".into(), self.inner.project_id.clone()),
            ("X-Sdk-Date".into(), sign::format_sdk_date(now)),
        ];
        if let Some(token) = &credentials.security_token {
            pairs.push(("X-Security-Token".into(), token.expose().to_string()));
        }
        let request = sign::Request {
            method: "GET",
            path,
            query: &[],
            headers: &pairs,
            body: b"",
        };
        // Host and X-Sdk-Date are always present, so signing cannot fail;
        // should it ever, the request goes unsigned and the gateway's 401
        // is classified like any other.
        let authorization = sign::authorization(
            &request,
            credentials.access_key.expose(),
            credentials.secret_key.expose(),
        )
        .ok();
        let mut map = HeaderMap::with_capacity(pairs.len() + 1);
        for (name, value) in pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())) {
            insert(&mut map, name, value, false);
        }
        if let Some(authorization) = authorization {
            insert(&mut map, "Authorization", &authorization, true);
        }
        map
    }
}

fn insert(map: &mut HeaderMap, name: &str, value: &str, sensitive: bool) {
    let (Ok(name), Ok(mut value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) else {
        return;
    };
    value.set_sensitive(sensitive);
    map.insert(name, value);
}

/// `host` or `host:port` as it goes into the `Host` header (the port only
/// when it is not the scheme's default).
fn host_header(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.chars().take(256).collect())
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] without reading
/// it whole.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, ApiError> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    {
        return Err(ApiError::transport(
            ErrorKind::Decode,
            format!("response body larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ApiError::transport(
                        ErrorKind::Decode,
                        format!("response body larger than {MAX_BODY_BYTES} bytes"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) if error.is_timeout() => {
                return Err(ApiError::transport(ErrorKind::Timeout, describe(&error)));
            }
            Err(error) => {
                return Err(ApiError::transport(
                    ErrorKind::Decode,
                    format!("response body cut short: {}", describe(&error)),
                ));
            }
        }
    }
}

fn transport_failure(error: reqwest::Error) -> ApiError {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connect
    };
    ApiError::transport(kind, describe(&error))
}

/// The error and its causes in one line, without the URL.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn credential_failure(error: CredentialError) -> ApiError {
    let kind = match &error {
        CredentialError::Metadata { .. } => ErrorKind::Connect,
        _ => ErrorKind::Auth,
    };
    ApiError::transport(kind, format!("credentials: {error}"))
}
