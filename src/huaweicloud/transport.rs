//! The HTTP transport of the API client: hyper's pooled client (HTTP/1.1
//! keep-alive, and HTTP/2 where TLS negotiates it) over rustls, with the
//! proxies of the environment, one deadline per request and a cap on the
//! body.
//!
//! It is built the way reqwest 0.13 builds its client for the same
//! settings, so that nothing the operator sees changes: rustls with the
//! aws-lc-rs provider (or the process default), every TLS version rustls
//! has, the platform verifier (`rustls-platform-verifier`: the system's
//! roots, `SSL_CERT_FILE` and `SSL_CERT_DIR`) with the certificates of
//! `cloud.ca_file` as extra roots, ALPN `h2` and `http/1.1`, `TCP_NODELAY`,
//! TCP keep-alive probes after 15 s, idle pooled connections closed after
//! 60 s, no redirects followed. Proxies are read from `HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (and their lowercase forms) by
//! hyper-util's matcher, the one reqwest uses: an `https` endpoint is
//! reached through a `CONNECT` tunnel (with the proxy URL's credentials as
//! `Proxy-Authorization`), an `http` one by sending the request to the
//! proxy in absolute form.
//!
//! What reqwest adds on top and the daemon does not use (redirect and
//! retry layers, a URL parsed and re-parsed per request, header maps merged
//! per request) is left out: a request is built from parts prepared once
//! per endpoint.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderValue, PROXY_AUTHORIZATION, USER_AGENT};
use http::uri::Scheme;
use http::{HeaderMap, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use tokio::time::Instant;
use tower_service::Service;

/// A boxed error of the connector.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// TCP keep-alive: the first probe after this much silence, then one
/// every interval, given up after the retries (reqwest's defaults).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// Why a request got no complete answer.
#[derive(Debug)]
pub enum Failure {
    /// The deadline passed: connecting, waiting for the head, or (with the
    /// head) reading the body.
    Timeout(Option<Box<Head>>),
    /// No answer: the connection could not be made, or was closed or reset
    /// before the head arrived.
    Connect {
        /// What happened, with its causes.
        message: String,
        /// The server closed the connection as the request went out
        /// (hyper's "connection closed before message completed"), as a
        /// gateway does to a keep-alive connection it closes as idle.
        closed_before_answer: bool,
    },
    /// The head arrived but the body is longer than the cap.
    TooLarge(Box<Head>),
    /// The head arrived but the body was cut short.
    Cut(Box<Head>, String),
}

/// The head of an answer.
#[derive(Debug)]
pub struct Head {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
}

/// The pooled client.
#[derive(Clone)]
pub struct Transport {
    client: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    proxies: Arc<Matcher>,
    /// Whether a proxy for plain `http` may be configured (so that a
    /// request may need `Proxy-Authorization`).
    http_proxy: bool,
    timeout: Duration,
}

impl Transport {
    /// Builds the client: TLS as described above, `extra_roots` trusted
    /// beside the platform's roots; reads the proxy variables now.
    pub fn build(
        timeout: Duration,
        extra_roots: Vec<CertificateDer<'static>>,
        user_agent: &'static str,
    ) -> Result<Transport, String> {
        let tls = tls_config(extra_roots)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        http.set_keepalive(Some(TCP_KEEPALIVE));
        http.set_keepalive_interval(Some(TCP_KEEPALIVE));
        http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
        let direct = HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http.clone());
        // A proxy itself speaks HTTP/1.1 (CONNECT, or absolute-form
        // requests), also when its URL is https.
        let to_proxy = HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let proxies = Arc::new(Matcher::from_env());
        let connector = Connector {
            direct,
            to_proxy,
            tls: Arc::new(tls),
            proxies: proxies.clone(),
            user_agent: HeaderValue::from_static(user_agent),
        };
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        let http_proxy = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
        Ok(Transport {
            client,
            proxies,
            http_proxy,
            timeout,
        })
    }

    /// Sends `request` and reads its answer, the body up to `cap` bytes,
    /// all within the request timeout.
    pub async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
        cap: usize,
    ) -> Result<(Head, Vec<u8>), Failure> {
        let deadline = Instant::now() + self.timeout;
        if self.http_proxy && request.uri().scheme() == Some(&Scheme::HTTP) {
            self.proxy_authorization(&mut request);
        }
        let response = match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                return Err(Failure::Connect {
                    message: describe(&error),
                    closed_before_answer: closed_before_answer(&error),
                });
            }
            Err(_) => return Err(Failure::Timeout(None)),
        };
        read_capped(response, cap, deadline).await
    }

    /// `Proxy-Authorization` for a plain-HTTP request that goes through a
    /// proxy whose URL carries credentials (a tunnel sends them in its
    /// `CONNECT` instead).
    fn proxy_authorization(&self, request: &mut Request<Full<Bytes>>) {
        if let Some(auth) = self
            .proxies
            .intercept(request.uri())
            .and_then(|proxy| proxy.basic_auth().cloned())
        {
            request.headers_mut().insert(PROXY_AUTHORIZATION, auth);
        }
    }
}

/// Reads the body, refusing more than `cap` bytes without reading it
/// whole (an announced length over the cap is refused unread).
async fn read_capped(
    response: Response<Incoming>,
    cap: usize,
    deadline: Instant,
) -> Result<(Head, Vec<u8>), Failure> {
    let (parts, mut body) = response.into_parts();
    let head = Head {
        status: parts.status.as_u16(),
        headers: parts.headers,
    };
    let announced = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > cap as u64) {
        return Err(Failure::TooLarge(Box::new(head)));
    }
    let mut bytes = Vec::with_capacity(announced.map_or(0, |length| length as usize));
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => return Ok((head, bytes)),
            Ok(Some(Err(error))) => return Err(Failure::Cut(Box::new(head), describe(&error))),
            Err(_) => return Err(Failure::Timeout(Some(Box::new(head)))),
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > cap {
                return Err(Failure::TooLarge(Box::new(head)));
            }
            bytes.extend_from_slice(&data);
        }
    }
}

/// The TLS settings reqwest 0.13 makes for a client with extra roots and
/// nothing else changed.
fn tls_config(extra_roots: Vec<CertificateDer<'static>>) -> Result<rustls::ClientConfig, String> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|error| format!("invalid TLS versions: {error}"))?;
    let verifier = if extra_roots.is_empty() {
        rustls_platform_verifier::Verifier::new(provider)
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider)
    }
    .map_err(|error| format!("cannot set up certificate verification: {error}"))?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Connects directly, through a `CONNECT` tunnel, or to a plain-HTTP
/// proxy, as the proxy matcher says for the destination.
#[derive(Clone)]
struct Connector {
    direct: HttpsConnector<HttpConnector>,
    to_proxy: HttpsConnector<HttpConnector>,
    tls: Arc<rustls::ClientConfig>,
    proxies: Arc<Matcher>,
    user_agent: HeaderValue,
}

type Connecting = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, destination: Uri) -> Connecting {
        let Some(proxy) = self.proxies.intercept(&destination) else {
            let mut direct = self.direct.clone();
            return Box::pin(async move {
                let io = direct.call(destination).await?;
                Ok(Conn::new(io, false))
            });
        };
        if destination.scheme() == Some(&Scheme::HTTPS) {
            let mut tunnel = Tunnel::new(proxy.uri().clone(), self.to_proxy.clone());
            if let Some(auth) = proxy.basic_auth() {
                tunnel = tunnel.with_auth(auth.clone());
            }
            let mut headers = HeaderMap::new();
            headers.insert(USER_AGENT, self.user_agent.clone());
            tunnel = tunnel.with_headers(headers);
            let mut tls = HttpsConnectorBuilder::new()
                .with_tls_config((*self.tls).clone())
                .https_only()
                .enable_http1()
                .enable_http2()
                .wrap_connector(tunnel);
            return Box::pin(async move {
                let io = tls.call(destination).await?;
                Ok(Conn::new(io, false))
            });
        }
        let mut to_proxy = self.to_proxy.clone();
        let proxy = proxy.uri().clone();
        Box::pin(async move {
            let io = to_proxy.call(proxy).await?;
            Ok(Conn::new(io, true))
        })
    }
}

/// What a connection must be for the pooled client.
trait Io: hyper::rt::Read + hyper::rt::Write + Connection + Send + Unpin + 'static {}

impl<T: hyper::rt::Read + hyper::rt::Write + Connection + Send + Unpin + 'static> Io for T {}

/// A connection of any of the three kinds; `proxied` when requests on it go
/// to a plain-HTTP proxy (in absolute form).
struct Conn {
    io: Box<dyn Io>,
    proxied: bool,
}

impl Conn {
    fn new(io: impl Io, proxied: bool) -> Conn {
        Conn {
            io: Box::new(io),
            proxied,
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write_vectored(cx, bufs)
    }
}

/// Whether hyper says the connection closed before an answer began.
fn closed_before_answer(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            return hyper.is_incomplete_message();
        }
        source = cause.source();
    }
    false
}

/// The error and its causes in one line.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
