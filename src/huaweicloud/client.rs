//! The signed HTTP client of every Huawei Cloud API the daemon calls: one
//! pooled connection client and one credential provider for every service
//! and project, requests signed with SDK-HMAC-SHA256, a request timeout, a
//! body cap, and the answer's `X-Request-Id`, `Retry-After` and `Date`.
//!
//! A request names its [`Endpoint`] (parsed once: base path, scheme,
//! authority and `Host` header), a path below the endpoint's own path,
//! query pairs and a body; [`Client::send`] returns the [`Answer`] (status,
//! headers, body) or the transport failure as an [`ApiError`]. What an
//! answer means is decided by [`super::error`] and the service's adapter
//! (`src/services/`).
//!
//! A request is cheap to make: its URI is put together from the
//! endpoint's parsed parts and one string (no URL parsing, no IDNA), the
//! signature is streamed into the hash (`sign::authorization_sorted`),
//! `X-Sdk-Date` is formatted by arithmetic, and the fixed headers are
//! prepared values. The transport ([`super::transport`]) is hyper's pooled
//! client, set up as reqwest set it up before: TLS is rustls with the
//! platform's verifier, `cloud.ca_file` adds the certificates of a PEM
//! bundle to the trusted roots and changes nothing else, and the proxy
//! variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) are
//! honoured.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue,
    USER_AGENT as USER_AGENT_HEADER,
};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http_body_util::Full;
use reqwest::{Method, Url};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::credentials::{CredentialError, CredentialProvider};
use super::error::{AnswerHeaders, ApiError, ErrorKind};
use super::sign;
use super::transport::{Failure, Head, Transport};

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
/// `Client::get_job` (`src/services/ecs.rs`: one ECS job of that project;
/// tools and tests with a client and no fleet).
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
    /// The TLS settings could not be made (for example, no TLS roots).
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
    scheme: Scheme,
    authority: Authority,
    host_value: HeaderValue,
}

impl Endpoint {
    /// Checks and prepares `url` (an `http` or `https` URL with a host;
    /// its path, without a trailing `/`, prefixes every request's path).
    pub fn new(url: &Url) -> Result<Endpoint, ClientError> {
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(ClientError::NotHttp(url.to_string()));
        }
        let host = host_header(url).ok_or_else(|| ClientError::NoHost(url.to_string()))?;
        let no_host = || ClientError::NoHost(url.to_string());
        let authority = Authority::try_from(host.as_str()).map_err(|_| no_host())?;
        let host_value = HeaderValue::from_str(&host).map_err(|_| no_host())?;
        let scheme = if url.scheme() == "https" {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let mut base = url.clone();
        base.set_query(None);
        base.set_fragment(None);
        let base_path = url.path().trim_end_matches('/').to_string();
        Ok(Endpoint {
            url: base,
            base_path,
            host,
            scheme,
            authority,
            host_value,
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
    http: Transport,
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
    /// `Client::get_job`; no I/O happens here.
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
        let extra_roots = match &settings.ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let http = Transport::build(settings.request_timeout, extra_roots, USER_AGENT)
            .map_err(ClientError::Build)?;
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
        // The path and query as sent, in one string.
        let mut target = String::with_capacity(endpoint.base_path.len() + request.path.len() + 16);
        target.push_str(&endpoint.base_path);
        target.push_str(request.path);
        let path_length = target.len();
        for (index, (key, value)) in request.query.iter().enumerate() {
            target.push(if index == 0 { '?' } else { '&' });
            target.push_str(&sign::percent_encode(key));
            target.push('=');
            target.push_str(&sign::percent_encode(value));
        }

        // The headers that are sent are the headers that are signed (names
        // sorted), plus `User-Agent` and `Accept`, which are not.
        let date = sign::sdk_date((self.inner.clock)().timestamp());
        let date = std::str::from_utf8(&date).unwrap_or_default();
        let project_id = request
            .project_id
            .filter(|value| HeaderValue::from_str(value).is_ok());
        let token = credentials
            .security_token
            .as_ref()
            .map(|token| token.expose())
            .filter(|value| HeaderValue::from_str(value).is_ok());
        let mut signed: [(&str, &str); 5] = [("", ""); 5];
        let mut count = 0;
        signed[count] = ("content-type", "application/json");
        count += 1;
        signed[count] = ("host", endpoint.host.as_str());
        count += 1;
        if let Some(project_id) = project_id {
            signed[count] = ("x-project-id", project_id);
            count += 1;
        }
        signed[count] = ("x-sdk-date", date);
        count += 1;
        if let Some(token) = token {
            signed[count] = ("x-security-token", token);
            count += 1;
        }
        let authorization = sign::authorization_sorted(
            &sign::Sorted {
                method: request.method.as_str(),
                path: &target[..path_length],
                query: request.query,
                headers: &signed[..count],
                body: request.body,
            },
            date,
            credentials.access_key.expose(),
            credentials.secret_key.expose(),
        );

        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(HOST, endpoint.host_value.clone());
        if let Some(Ok(value)) = project_id.map(HeaderValue::from_str) {
            headers.insert(X_PROJECT_ID, value);
        }
        if let Ok(value) = HeaderValue::from_str(date) {
            headers.insert(X_SDK_DATE, value);
        }
        if let Some(Ok(mut value)) = token.map(HeaderValue::from_str) {
            value.set_sensitive(true);
            headers.insert(X_SECURITY_TOKEN, value);
        }
        // The signature is hex and ASCII, so this cannot fail; should it
        // ever, the request goes unsigned and the gateway's 401 is
        // classified like any other.
        if let Ok(mut value) = HeaderValue::try_from(authorization) {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        headers.insert(USER_AGENT_HEADER, HeaderValue::from_static(USER_AGENT));
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));

        let uri = build_uri(endpoint, target)?;
        let body = if request.body.is_empty() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(request.body)
        };
        let mut outgoing = http::Request::new(Full::new(body));
        *outgoing.method_mut() = request.method.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = headers;

        match self.inner.http.send(outgoing, request.max_body_bytes).await {
            Ok((head, body)) => {
                let (status, request_id, retry_after, server_now_ms) = read_head(&head);
                Ok(Answer {
                    status,
                    request_id,
                    retry_after,
                    server_now_ms,
                    body,
                })
            }
            Err(failure) => Err(transport_failure(failure, request.max_body_bytes)),
        }
    }
}

/// `x-project-id`, `x-sdk-date`, `x-security-token`.
const X_PROJECT_ID: HeaderName = HeaderName::from_static("x-project-id");
const X_SDK_DATE: HeaderName = HeaderName::from_static("x-sdk-date");
const X_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-security-token");

/// The URI of a request: the endpoint's scheme and authority, `target`
/// (path and query, each part already percent-encoded) checked once.
fn build_uri(endpoint: &Endpoint, target: String) -> Result<Uri, ApiError> {
    let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(target)).map_err(|error| {
        ApiError::transport(ErrorKind::Client, format!("invalid request path: {error}"))
    })?;
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(endpoint.scheme.clone());
    parts.authority = Some(endpoint.authority.clone());
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|error| {
        ApiError::transport(ErrorKind::Client, format!("invalid request URI: {error}"))
    })
}

/// Status, `X-Request-Id`, `Retry-After` and `Date` (as Unix ms).
fn read_head(head: &Head) -> (u16, Option<String>, Option<String>, Option<i64>) {
    let server_now_ms = head
        .headers
        .get(http::header::DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(http_date_ms);
    (
        head.status,
        header_text(&head.headers, "x-request-id"),
        header_text(&head.headers, "retry-after"),
        server_now_ms,
    )
}
/// Reads the certificates of a PEM bundle.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
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
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| fail(format!("not a PEM bundle: {error}")))?;
    if certificates.is_empty() {
        return Err(fail("holds no certificate".to_string()));
    }
    Ok(certificates)
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
    let value = headers.get(name)?.to_str().ok()?;
    // `to_str` accepts visible ASCII only, so characters are bytes.
    Some(value[..value.len().min(MAX_HEADER_CHARS)].to_string())
}

/// An HTTP date as Unix milliseconds; `None` when unreadable or before
/// 1970.
pub fn http_date_ms(value: &str) -> Option<i64> {
    let time = httpdate::parse_http_date(value.trim()).ok()?;
    let since = time.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

/// The [`ApiError`] of a request that got no complete answer: `Timeout`,
/// `Connect`, or `Decode` for a body cut short or too long (those keep the
/// status and request id of the head that arrived).
fn transport_failure(failure: Failure, cap: usize) -> ApiError {
    let (kind, message, head) = match failure {
        Failure::Timeout(head) => (ErrorKind::Timeout, "operation timed out".to_string(), head),
        Failure::Connect {
            message,
            closed_before_answer,
        } => {
            let error = ApiError::transport(ErrorKind::Connect, message);
            return ApiError {
                closed_before_answer,
                ..error
            };
        }
        Failure::TooLarge(head) => (
            ErrorKind::Decode,
            format!("response body larger than {cap} bytes"),
            Some(head),
        ),
        Failure::Cut(head, message) => (
            ErrorKind::Decode,
            format!("response body cut short: {message}"),
            Some(head),
        ),
    };
    let mut error = ApiError::transport(kind, message);
    if let Some(head) = head {
        error.http_status = Some(head.status);
        error.request_id = header_text(&head.headers, "x-request-id");
    }
    error
}

fn credential_failure(error: CredentialError) -> ApiError {
    let kind = match &error {
        CredentialError::Metadata { .. } => ErrorKind::Connect,
        _ => ErrorKind::Auth,
    };
    ApiError::transport(kind, format!("credentials: {error}"))
}

#[cfg(test)]
mod tests;
