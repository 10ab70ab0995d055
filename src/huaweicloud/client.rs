//! The signed HTTP client of every Huawei Cloud API the daemon calls: one
//! pooled reqwest client and one credential provider for every service and
//! project, requests signed with SDK-HMAC-SHA256, a request timeout, a body
//! cap, and the answer's `X-Request-Id`, `Retry-After` and `Date`.
//!
//! A request names its [`Endpoint`] (parsed once: base path and `Host`
//! header), a path below the endpoint's own path, query pairs and a body;
//! [`Client::send`] returns the [`Answer`] (status, headers, body) or the
//! transport failure as an [`ApiError`]. What an answer means is decided
//! by [`super::error`] and the service's adapter (`src/services/`).
//!
//! TLS is rustls with the platform's verifier, as reqwest sets it up;
//! `cloud.ca_file` adds the certificates of a PEM bundle to the trusted
//! roots and changes nothing else.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url, redirect};

use super::credentials::{CredentialError, CredentialProvider, Credentials};
use super::error::{AnswerHeaders, ApiError, ErrorKind};
use super::sign;

/// `ecs-jobwatch/{version}`.
pub const USER_AGENT: &str = concat!("ecs-jobwatch/", env!("CARGO_PKG_VERSION"));

/// The largest PEM bundle `ca_file` may name.
const MAX_CA_FILE_BYTES: u64 = 4 << 20;

/// The longest header value kept from an answer, in characters.
const MAX_HEADER_CHARS: usize = 256;

/// What the shared HTTP client needs; validated by the configuration.
#[derive(Clone, Debug, Default)]
pub struct HttpSettings {
    /// Whole-request timeout (connect, headers and body).
    pub request_timeout: Duration,
    /// A PEM bundle of certificates trusted beside the platform's roots
    /// (`cloud.ca_file`).
    pub ca_file: Option<PathBuf>,
    /// The clock `X-Sdk-Date` is read from; `None` is the system clock.
    /// Tests fix it to compare whole signed requests with stored vectors.
    pub clock: Option<fn() -> chrono::DateTime<chrono::Utc>>,
}

/// The settings of a client with one default project, read through
/// [`Client::get_job`] (the ECS-only client before the job family; kept
/// for its callers).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL, for example `https://ecs.cn-north-4.myhuaweicloud.com`.
    pub endpoint: Url,
    /// The project whose jobs are read.
    pub project_id: String,
    /// Whole-request timeout (connect, headers and body).
    pub request_timeout: Duration,
}

/// Why a client or an endpoint could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint has no host.
    #[error("endpoint {0} has no host")]
    NoHost(String),
    /// The endpoint cannot carry a path (for example `mailto:`).
    #[error("endpoint {0} is not an http(s) URL")]
    NotHttp(String),
    /// reqwest refused the settings (for example, no TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    /// The PEM bundle of `ca_file` could not be used.
    #[error("ca_file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// An API endpoint, parsed once: requests go to paths below its own path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    url: Url,
    base_path: String,
    host: String,
}

impl Endpoint {
    /// Checks and prepares `url` (an `http` or `https` URL with a host;
    /// its path, without a trailing `/`, prefixes every request's path).
    pub fn new(url: &Url) -> Result<Endpoint, ClientError> {
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(ClientError::NotHttp(url.to_string()));
        }
        let host = host_header(url).ok_or_else(|| ClientError::NoHost(url.to_string()))?;
        let mut base = url.clone();
        base.set_query(None);
        base.set_fragment(None);
        let base_path = url.path().trim_end_matches('/').to_string();
        Ok(Endpoint {
            url: base,
            base_path,
            host,
        })
    }

    /// The endpoint as configured.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The `Host` header of its requests.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// One request: where, what, and how much of the answer to read.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `GET` for job queries, `POST` for publishing.
    pub method: &'a Method,
    /// The endpoint.
    pub endpoint: &'a Endpoint,
    /// The path below the endpoint's own path, starting with `/`, each
    /// segment already percent-encoded.
    pub path: &'a str,
    /// Query pairs, not encoded.
    pub query: &'a [(&'static str, String)],
    /// Sent as `X-Project-Id` when set (the official SDKs send it).
    pub project_id: Option<&'a str>,
    /// The body, sent as `application/json`; empty for a GET.
    pub body: &'a [u8],
    /// The most answer bytes read; a longer answer is a `Decode` error.
    pub max_body_bytes: usize,
}

impl<'a> Request<'a> {
    /// A GET without query or body.
    pub fn get(
        endpoint: &'a Endpoint,
        path: &'a str,
        project_id: Option<&'a str>,
        max_body_bytes: usize,
    ) -> Request<'a> {
        Request {
            method: &Method::GET,
            endpoint,
            path,
            query: &[],
            project_id,
            body: b"",
            max_body_bytes,
        }
    }
}

/// A complete HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `X-Request-Id`, at most 256 characters.
    pub request_id: Option<String>,
    /// `Retry-After` as sent, at most 256 characters.
    pub retry_after: Option<String>,
    /// The server's clock at the answer (`Date`), Unix milliseconds.
    pub server_now_ms: Option<i64>,
    /// The body, at most the request's `max_body_bytes`.
    pub body: Vec<u8>,
}

impl Answer {
    /// The headers classification reads.
    pub fn headers(&self) -> AnswerHeaders<'_> {
        AnswerHeaders {
            request_id: self.request_id.as_deref(),
            retry_after: self.retry_after.as_deref(),
        }
    }
}

/// The signed API client. Cheap to clone; clones share the pool and the
/// credential provider.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    credentials: CredentialProvider,
    /// The endpoint and project of [`ClientConfig`], for `get_job`.
    default: Option<(Endpoint, String)>,
    /// The signing clock ([`HttpSettings::clock`]).
    clock: fn() -> chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Client");
        if let Some((endpoint, project_id)) = &self.inner.default {
            debug
                .field("endpoint", &endpoint.url().as_str())
                .field("project_id", project_id);
        }
        debug.finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the shared client; reads `ca_file`, no network I/O.
    pub fn build(
        settings: &HttpSettings,
        credentials: CredentialProvider,
    ) -> Result<Client, ClientError> {
        Client::assemble(settings, credentials, None)
    }

    /// A client with one default project, read through
    /// [`Client::get_job`]; no I/O happens here.
    pub fn new(
        config: &ClientConfig,
        credentials: CredentialProvider,
    ) -> Result<Client, ClientError> {
        let endpoint = Endpoint::new(&config.endpoint)?;
        let settings = HttpSettings {
            request_timeout: config.request_timeout,
            ..HttpSettings::default()
        };
        let default = Some((endpoint, config.project_id.clone()));
        Client::assemble(&settings, credentials, default)
    }

    fn assemble(
        settings: &HttpSettings,
        credentials: CredentialProvider,
        default: Option<(Endpoint, String)>,
    ) -> Result<Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .redirect(redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(path) = &settings.ca_file {
            builder = builder.tls_certs_merge(read_ca_file(path)?);
        }
        let http = builder
            .build()
            .map_err(|error| ClientError::Build(describe(&error)))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                credentials,
                default,
                clock: settings.clock.unwrap_or(chrono::Utc::now),
            }),
        })
    }

    /// The default project of a client built with [`Client::new`]; empty
    /// otherwise.
    pub fn project_id(&self) -> &str {
        self.inner
            .default
            .as_ref()
            .map_or("", |(_, project_id)| project_id.as_str())
    }

    /// The default endpoint and project, when the client has them.
    pub fn default_target(&self) -> Option<(&Endpoint, &str)> {
        self.inner
            .default
            .as_ref()
            .map(|(endpoint, project_id)| (endpoint, project_id.as_str()))
    }

    /// The credential provider this client signs with.
    pub fn credentials(&self) -> &CredentialProvider {
        &self.inner.credentials
    }

    /// Sends `request`, signed with the current credentials, and reads the
    /// whole answer (up to its cap). Every failure before a complete
    /// answer is an [`ApiError`]: `Auth` or `Connect` for credentials,
    /// `Timeout`, `Connect`, or `Decode` for a body cut short or too long.
    pub async fn send(&self, request: &Request<'_>) -> Result<Answer, ApiError> {
        let credentials = self
            .inner
            .credentials
            .get()
            .await
            .map_err(credential_failure)?;
        let endpoint = request.endpoint;
        let mut path = String::with_capacity(endpoint.base_path.len() + request.path.len());
        path.push_str(&endpoint.base_path);
        path.push_str(request.path);
        let query: Vec<(String, String)> = request
            .query
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect();
        let headers = signed_headers(request, &path, &query, &credentials, (self.inner.clock)());
        let mut url = endpoint.url.clone();
        url.set_path(&path);
        if !query.is_empty() {
            url.set_query(Some(&encoded_query(&query)));
        }

        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url)
            .headers(headers);
        if !request.body.is_empty() {
            builder = builder.body(request.body.to_vec());
        }
        let response = builder.send().await.map_err(transport_failure)?;
        let status = response.status().as_u16();
        let request_id = header_text(response.headers(), "x-request-id");
        let retry_after = header_text(response.headers(), "retry-after");
        let server_now_ms = header_text(response.headers(), "date")
            .as_deref()
            .and_then(http_date_ms);
        let body = read_capped(response, request.max_body_bytes)
            .await
            .map_err(|mut error| {
                error.http_status = Some(status);
                error.request_id = request_id.clone();
                error
            })?;
        Ok(Answer {
            status,
            request_id,
            retry_after,
            server_now_ms,
            body,
        })
    }
}

/// Reads the certificates of a PEM bundle.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let fail = |reason: String| ClientError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|error| fail(error.to_string()))?;
    if metadata.len() > MAX_CA_FILE_BYTES {
        return Err(fail(format!(
            "larger than {MAX_CA_FILE_BYTES} bytes ({} bytes)",
            metadata.len()
        )));
    }
    let pem = std::fs::read(path).map_err(|error| fail(error.to_string()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|error| fail(format!("not a PEM bundle: {}", describe(&error))))?;
    if certificates.is_empty() {
        return Err(fail("holds no certificate".to_string()));
    }
    Ok(certificates)
}

/// The headers of one request: the signed set plus `Authorization`.
fn signed_headers(
    request: &Request<'_>,
    path: &str,
    query: &[(String, String)],
    credentials: &Credentials,
    now: chrono::DateTime<chrono::Utc>,
) -> HeaderMap {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(5);
    pairs.push(("Content-Type".into(), "application/json".into()));
    pairs.push(("Host".into(), request.endpoint.host.clone()));
    if let Some(project_id) = request.project_id {
        pairs.push(("X-Project-Id".into(), project_id.to_string()));
    }
    pairs.push(("X-Sdk-Date".into(), sign::format_sdk_date(now)));
    if let Some(token) = &credentials.security_token {
        pairs.push(("X-Security-Token".into(), token.expose().to_string()));
    }
    let signing = sign::Request {
        method: request.method.as_str(),
        path,
        query,
        headers: &pairs,
        body: request.body,
    };
    // Host and X-Sdk-Date are always present, so signing cannot fail;
    // should it ever, the request goes unsigned and the gateway's 401 is
    // classified like any other.
    let authorization = sign::authorization(
        &signing,
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

/// `k=v&k=v`, each part percent-encoded the way the signature reads it.
fn encoded_query(query: &[(String, String)]) -> String {
    let mut text = String::new();
    for (key, value) in query {
        if !text.is_empty() {
            text.push('&');
        }
        text.push_str(&sign::percent_encode(key));
        text.push('=');
        text.push_str(&sign::percent_encode(value));
    }
    text
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
        .map(|value| value.chars().take(MAX_HEADER_CHARS).collect())
}

/// An HTTP date as Unix milliseconds; `None` when unreadable or before
/// 1970.
pub fn http_date_ms(value: &str) -> Option<i64> {
    let time = httpdate::parse_http_date(value.trim()).ok()?;
    let since = time.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

/// Reads the body, refusing more than `cap` bytes without reading it
/// whole.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::transport(
            ErrorKind::Decode,
            format!("response body larger than {cap} bytes"),
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > cap as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(too_large());
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
    ApiError {
        closed_before_answer: closed_before_answer(&error),
        ..ApiError::transport(kind, describe(&error))
    }
}

/// Whether the connection was closed before any answer arrived (hyper's
/// "connection closed before message completed"), as when a server closes
/// an idle keep-alive connection just as the client reuses it.
fn closed_before_answer(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            return hyper.is_incomplete_message();
        }
        source = cause.source();
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_their_path_and_host() {
        let check = |url: &str, base: &str, host: &str| {
            let endpoint = Endpoint::new(&Url::parse(url).unwrap()).unwrap();
            assert_eq!(endpoint.base_path, base, "{url}");
            assert_eq!(endpoint.host(), host, "{url}");
        };
        check(
            "https://ecs.cn-north-4.myhuaweicloud.com",
            "",
            "ecs.cn-north-4.myhuaweicloud.com",
        );
        check("http://127.0.0.1:9000/cce/", "/cce", "127.0.0.1:9000");
        check("https://example.com:443/a/b?x=1", "/a/b", "example.com");
        for bad in ["mailto:x@example.com", "file:///tmp/x", "data:text/plain,x"] {
            assert!(Endpoint::new(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_encoding_matches_the_signature() {
        let query = vec![("id".to_string(), "a b/c".to_string())];
        assert_eq!(encoded_query(&query), "id=a%20b%2Fc");
        assert_eq!(encoded_query(&[]), "");
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date_ms("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480_000)
        );
        assert_eq!(http_date_ms("yesterday"), None);
        assert_eq!(http_date_ms(""), None);
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("missing.pem");
        let garbage = directory.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        for path in [missing, garbage] {
            let error = read_ca_file(&path).unwrap_err().to_string();
            assert!(error.contains(&path.display().to_string()), "{error}");
        }
    }
}
