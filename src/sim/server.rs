//! The simulator's HTTP side: a hand-rolled accept loop that serves each
//! connection with hyper, the axum router with the job APIs of every
//! service ([`super::routes`]) and the control API, and the gateway's
//! refusals; the job bodies and "no such job" answers of each service are
//! [`super::bodies`]'s.
//!
//! Connections are served one task each so that a handler can close its
//! own connection without answering (the `drop` fault): every request
//! carries its connection's `ConnectionAbort` token, and cancelling it makes
//! the connection task drop the connection. Panics are never relied upon,
//! since release builds abort on panic.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post, put};
use hyper_util::rt::TokioIo;
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::auth::{self, Received, Rejection};
use super::bodies::{self, ecs_error_body};
use super::faults;
use super::routes::{self, JobTarget};
use super::scenario::{FaultKind, FaultRule, JobSpec, NotFoundStyle};
use super::smn;
use super::state::{LiveKey, Shared};
use super::timeline;
use super::tls::{self, Activity, ServerOptions};
use crate::job::Service;

/// The largest request body read; job queries have none.
const MAX_REQUEST_BODY: usize = 1 << 20;

/// How long the accept loop rests after a failed `accept` (for example
/// when the process is out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The header every response carries.
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The error code the simulator uses for 403s (forbidden key, wrong project).
pub const FORBIDDEN_CODE: &str = "Ecs.0000";

/// The error code the simulator uses for paths it does not serve.
pub const NO_SUCH_API_CODE: &str = "Ecs.0404";

/// Cancelling this token closes the connection the request arrived on.
#[derive(Debug, Clone)]
struct ConnectionAbort(CancellationToken);

/// Accepts connections on `listener` until `shutdown` completes, then
/// closes idle connections, lets in-flight requests finish, and returns.
/// `options` add HTTPS and the closing of idle connections.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let acceptor = options.tls.as_ref().map(tls::acceptor).transpose()?;
    let idle_timeout = options.idle_timeout;
    let router = router(Arc::clone(&shared));
    let stop = CancellationToken::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let connection = Connection {
                        router: router.clone(),
                        shared: Arc::clone(&shared),
                        stop: stop.clone(),
                        idle_timeout,
                    };
                    connections.spawn(connection.accept(stream, acceptor.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "simulator: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    stop.cancel();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// What serving one connection needs.
struct Connection {
    router: Router,
    shared: Arc<Shared>,
    /// Cancelled when the server stops: a graceful close.
    stop: CancellationToken,
    idle_timeout: Option<Duration>,
}

impl Connection {
    /// Completes the TLS handshake, when there is one, and serves.
    async fn accept(self, stream: TcpStream, acceptor: Option<TlsAcceptor>) {
        self.shared.lock().stats.connections += 1;
        let Some(acceptor) = acceptor else {
            return self.serve(TokioIo::new(stream)).await;
        };
        match tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => self.serve(TokioIo::new(stream)).await,
            Ok(Err(error)) => {
                tracing::debug!(%error, "simulator: TLS handshake failed");
                self.shared.lock().stats.tls_handshake_failures += 1;
            }
            Err(_elapsed) => {
                tracing::debug!("simulator: TLS handshake timed out");
                self.shared.lock().stats.tls_handshake_failures += 1;
            }
        }
    }

    /// Serves one connection until it ends, a handler aborts it, or it is
    /// closed gracefully: when the server stops, or when no request has
    /// been in flight for `idle_timeout`.
    async fn serve<I>(self, io: TokioIo<I>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let abort = CancellationToken::new();
        let request_abort = abort.clone();
        let activity = Activity::default();
        let requests = activity.clone();
        let router = self.router;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request
                .extensions_mut()
                .insert(ConnectionAbort(request_abort.clone()));
            let in_flight = requests.begin();
            let answer = router.clone().oneshot(request.map(Body::new));
            async move {
                let answer = answer.await;
                drop(in_flight);
                answer
            }
        });
        let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        tokio::pin!(connection);
        let idle = async {
            match self.idle_timeout {
                Some(idle) => activity.idle_for(idle).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "simulator: connection ended with an error");
                }
                return;
            }
            // Returning drops the connection, which closes the socket unanswered.
            () = abort.cancelled() => return,
            () = self.stop.cancelled() => {}
            () = idle => self.shared.lock().stats.connections_closed_idle += 1,
        }
        connection.as_mut().graceful_shutdown();
        tokio::select! {
            _ = connection.as_mut() => {}
            () = abort.cancelled() => {}
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/stats", get(stats))
        .route("/_sim/jobs", post(add_jobs))
        .route("/_sim/faults", put(set_faults))
        .route("/_sim/smn", get(smn_messages))
        .fallback(api)
        .layer(axum::middleware::map_response(ensure_request_id))
        .with_state(shared)
}

/// Gives the answers axum makes itself (405 for a wrong method on a control
/// path, 400 for a body it cannot read) an `X-Request-Id` too.
async fn ensure_request_id(mut response: Response) -> Response {
    if !response.headers().contains_key(REQUEST_ID_HEADER)
        && let Ok(value) = HeaderValue::from_str(&new_request_id())
    {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// A fresh random request id, 32 hex digits.
fn new_request_id() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// A JSON response with `X-Request-Id`.
fn respond(status: StatusCode, body: impl Into<Body>, request_id: &str) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serializing plain structs and maps with string keys cannot fail; an
    // empty object is a safe answer if it ever did.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// The API gateway's error shape: `{"error_code","error_msg","request_id"}`.
fn gateway_error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response {
    let body = json!({"error_code": code, "error_msg": message, "request_id": request_id});
    respond(status, to_json(&body), request_id)
}

fn ecs_error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response {
    respond(status, ecs_error_body(code, message), request_id)
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// What the handlers know of a job request once it is routed.
#[derive(Debug, Clone)]
struct Asked {
    /// The service.
    service: Service,
    /// The job the path names, when it names one in the service's shape;
    /// its project is the scenario's default when the request names none.
    target: Option<JobTarget>,
    /// The key the job is counted under in `Stats::jobs`.
    stats_key: Option<String>,
}

impl Asked {
    /// The names a fault rule's `jobs` may use for this job: its id and
    /// its statistics key.
    fn names(&self) -> Vec<&str> {
        let mut names = Vec::with_capacity(2);
        if let Some(target) = &self.target {
            names.push(target.job_id.as_str());
        }
        if let Some(key) = &self.stats_key {
            names.push(key.as_str());
        }
        names
    }
}

/// Everything that is not the control API: the job API of every service,
/// and 404 for the rest.
async fn api(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let request_id = new_request_id();
    if let Some(target) = smn::publish_target(request.uri().path()) {
        return smn_publish(shared, request, target, request_id).await;
    }
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let Some(route) = routes::route(path) else {
        return no_such_api(&parts.method, path, &request_id);
    };
    let arrival = Instant::now();
    let project_header = parts
        .headers
        .get("x-project-id")
        .and_then(|value| value.to_str().ok());
    let target = routes::job_target(&route, parts.uri.query(), project_header).map(|mut target| {
        if target.project_id.is_none() {
            target.project_id = shared.project_id.clone();
        }
        target
    });
    let asked = {
        let mut state = shared.lock();
        let stats_key = target.as_ref().map(|target| {
            let requested = LiveKey {
                service: route.service,
                project: target.project_id.clone(),
                id: target.job_id.clone(),
            };
            let key = state
                .find(route.service, target.project_id.as_deref(), &target.job_id)
                .map_or(requested, |(key, _)| key.clone());
            shared.stats_key(&key)
        });
        state.record_arrival(arrival, route.service, stats_key.as_deref());
        Asked {
            service: route.service,
            target,
            stats_key,
        }
    };

    let body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(body) => body,
        Err(_) => Bytes::new(),
    };
    let forbidden = || {
        let action = format!("{}:jobs:get", asked.service.host_label());
        forbidden_answer(&action, &request_id)
    };
    if let Some(refusal) = gateway(&shared, &parts, &body, arrival, &request_id, forbidden) {
        return refusal;
    }
    if let Some(rule) = draw_fault(&shared, &parts, &asked.names()).await {
        return fault_response(&shared, &rule, &parts.method, &asked, &request_id);
    }

    let (status, body) = answer(&shared, &parts.method, &asked, true);
    respond(status, body, &request_id)
}

/// A 403 of the IAM policy for `action` (a forbidden credential).
fn forbidden_answer(action: &str, request_id: &str) -> Response {
    ecs_error(
        StatusCode::FORBIDDEN,
        FORBIDDEN_CODE,
        &format!("Policy doesn't allow {action} to be performed."),
        request_id,
    )
}

/// The gateway's checks of every API request, in its order: the
/// signature (401), the credential's `forbidden` (403, answered by
/// `forbidden`), the global rate limit (429). `Some` is the refusal.
fn gateway(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    arrival: Instant,
    request_id: &str,
    forbidden: impl FnOnce() -> Response,
) -> Option<Response> {
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let received = Received {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &headers,
        body,
    };
    let now_wall = shared.clock.wall(shared.clock.elapsed());
    let credential = match auth::verify(&received, &shared.credentials, now_wall) {
        Ok(credential) => credential,
        Err(rejection) => {
            shared.lock().stats.rejected_auth += 1;
            return Some(match rejection {
                Rejection::Signature => gateway_error(
                    StatusCode::UNAUTHORIZED,
                    "APIGW.0301",
                    "Incorrect IAM authentication information: verify aksk signature fail",
                    request_id,
                ),
                Rejection::Date => gateway_error(
                    StatusCode::UNAUTHORIZED,
                    "APIGW.0303",
                    "Incorrect IAM authentication information: \
                     X-Sdk-Date is missing or not within 15 minutes of the server time",
                    request_id,
                ),
            });
        }
    };
    if credential.forbidden {
        return Some(forbidden());
    }
    let limit = shared.requests_per_second;
    if !shared.lock().admit(arrival, limit) {
        let message = format!(
            "The throttling threshold has been reached: policy user over ratelimit,limit:{limit},time:1 second"
        );
        let mut response = gateway_error(
            StatusCode::TOO_MANY_REQUESTS,
            "APIGW.0308",
            &message,
            request_id,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Some(response);
    }
    None
}

/// The fault rule drawn for a request known by `names`, after the latency
/// of every latency rule drawn; `drop` closes the connection here and never
/// returns.
async fn draw_fault(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    names: &[&str],
) -> Option<FaultRule> {
    let drawn = {
        let mut state = shared.lock();
        let drawn = faults::draw(
            &state.faults,
            shared.clock.elapsed(),
            names,
            &mut rand::rng(),
        );
        for _ in 0..drawn.latency_rules {
            state.record_fault(FaultKind::Latency);
        }
        if let Some(rule) = &drawn.answer {
            state.record_fault(rule.kind);
        }
        drawn
    };
    if !drawn.latency.is_zero() {
        tokio::time::sleep(drawn.latency).await;
    }
    let rule = drawn.answer?;
    if rule.kind == FaultKind::Drop
        && let Some(ConnectionAbort(abort)) = parts.extensions.get::<ConnectionAbort>()
    {
        // The connection task drops the connection, and this future with
        // it, before any byte of a response is written.
        abort.cancel();
        std::future::pending::<()>().await;
    }
    Some(rule)
}

/// `POST /smn/v2/{project_id}/notifications/topics/{topic_urn}/publish`:
/// the gateway, the faults, then the publish (see [`super::smn`]).
async fn smn_publish(
    shared: Arc<Shared>,
    request: Request,
    target: smn::PublishTarget,
    request_id: String,
) -> Response {
    let arrival = Instant::now();
    shared.lock().record_smn_arrival(arrival);
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_REQUEST_BODY)
        .await
        .unwrap_or_default();
    let forbidden = || smn_forbidden(&request_id);
    if let Some(refusal) = gateway(&shared, &parts, &body, arrival, &request_id, forbidden) {
        return refusal;
    }
    if let Some(rule) = draw_fault(&shared, &parts, &["smn", target.topic()]).await
        && let Some(response) = smn_fault(&shared, &rule, &request_id)
    {
        return response;
    }
    if parts.method != Method::POST {
        return no_such_api(&parts.method, parts.uri.path(), &request_id);
    }
    let read = smn::read_publish(&target, &body, |project| shared.serves_project(project));
    match read {
        Ok(mut message) => {
            message.message_id = new_request_id();
            message.at_ms = shared.clock.elapsed().as_millis() as u64;
            let answer = json!({"request_id": request_id, "message_id": message.message_id});
            shared.lock().record_smn_message(message);
            respond(StatusCode::OK, to_json(&answer), &request_id)
        }
        Err(refused) => {
            let status = if refused.code == "SMN.00010009" {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            };
            gateway_error(status, refused.code, &refused.message, &request_id)
        }
    }
}

/// SMN's 403 for a key that may not publish.
fn smn_forbidden(request_id: &str) -> Response {
    gateway_error(
        StatusCode::FORBIDDEN,
        "SMN.00011008",
        "Policy doesn't allow smn:topic:publish to be performed.",
        request_id,
    )
}

/// The answer of a fault rule drawn for a publish (`None`: the publish
/// goes on).
fn smn_fault(shared: &Shared, rule: &FaultRule, request_id: &str) -> Option<Response> {
    let response = match rule.kind {
        FaultKind::ServerError => {
            let code = status(faults::server_error_status(rule, &mut rand::rng()));
            gateway_error(code, "SMN.00010000", "Internal server error.", request_id)
        }
        FaultKind::Throttle | FaultKind::Throttle202 => throttle_answer(shared, rule, request_id),
        FaultKind::Forbidden => smn_forbidden(request_id),
        FaultKind::ClientError => gateway_error(
            StatusCode::BAD_REQUEST,
            "SMN.00010001",
            "request body is illegal.",
            request_id,
        ),
        // A 200 cut short, and (without a connection to close) a drop.
        FaultKind::Truncate | FaultKind::Drop => {
            let full = to_json(&json!({"request_id": request_id, "message_id": "cut"}));
            cut_short(full, request_id)
        }
        // Latency rules never answer; `faults::draw` adds them up instead.
        FaultKind::Latency => return None,
    };
    Some(response)
}

fn no_such_api(method: &Method, path: &str, request_id: &str) -> Response {
    ecs_error(
        StatusCode::NOT_FOUND,
        NO_SUCH_API_CODE,
        &format!("The API does not exist: {method} {path}"),
        request_id,
    )
}

/// The answer past authentication, rate limit and faults: project check,
/// job lookup, job body. `record` notes served statuses in the statistics.
fn answer(shared: &Shared, method: &Method, asked: &Asked, record: bool) -> (StatusCode, Vec<u8>) {
    let Some(target) = asked.target.as_ref().filter(|_| method == Method::GET) else {
        return (
            StatusCode::NOT_FOUND,
            ecs_error_body(NO_SUCH_API_CODE, "The API does not exist."),
        );
    };
    if let Some(project_id) = &target.project_id
        && !shared.serves_project(project_id)
    {
        return (
            StatusCode::FORBIDDEN,
            ecs_error_body(
                FORBIDDEN_CODE,
                "The project in the request is not a project of the credential.",
            ),
        );
    }
    let elapsed = shared.clock.elapsed();
    let mut state = shared.lock();
    let service = asked.service;
    let found = state
        .find(service, target.project_id.as_deref(), &target.job_id)
        .map(|(_, job)| job.clone());
    let style = match &found {
        None => Some(NotFoundStyle::default_for(service)),
        Some(job) if !timeline::is_visible(&job.spec, elapsed.saturating_sub(job.base)) => Some(
            job.spec
                .not_found
                .unwrap_or(NotFoundStyle::default_for(service)),
        ),
        Some(_) => None,
    };
    if let Some(style) = style {
        if record {
            state.service_stats(service).not_found += 1;
        }
        let (status_code, body) = bodies::not_found(service, style);
        return (status(status_code), body);
    }
    let Some(job) = found else {
        return (
            status(500),
            ecs_error_body("Ecs.0500", "Internal server error."),
        );
    };
    let served = bodies::render(
        &job.spec,
        elapsed.saturating_sub(job.base),
        shared.clock.wall(job.base),
    );
    if record && let Some(key) = &asked.stats_key {
        state.record_served(service, key, &served.status, elapsed);
    }
    (StatusCode::OK, served.body)
}

/// The answer a drawn fault rule gives instead of the normal one.
fn fault_response(
    shared: &Shared,
    rule: &FaultRule,
    method: &Method,
    asked: &Asked,
    request_id: &str,
) -> Response {
    match rule.kind {
        FaultKind::ServerError => {
            let code = status(faults::server_error_status(rule, &mut rand::rng()));
            let message = match code.as_u16() {
                502 => "Bad gateway.",
                503 => "Service unavailable.",
                504 => "Gateway timeout.",
                _ => "Internal server error.",
            };
            ecs_error(code, "Ecs.0500", message, request_id)
        }
        FaultKind::Throttle => throttle_answer(shared, rule, request_id),
        FaultKind::Throttle202 => gateway_error(
            StatusCode::ACCEPTED,
            "Common.0024",
            "Flow limit exceeded",
            request_id,
        ),
        FaultKind::ClientError => ecs_error(
            StatusCode::BAD_REQUEST,
            "Ecs.0005",
            "request body is illegal.",
            request_id,
        ),
        FaultKind::Forbidden => {
            let action = format!("{}:jobs:get", asked.service.host_label());
            forbidden_answer(&action, request_id)
        }
        FaultKind::Truncate => truncated(shared, method, asked, request_id),
        // `api` closes the connection itself; this answer is only reached
        // without a connection to close (the router served by another
        // loop), and a truncated answer is the nearest thing.
        FaultKind::Drop => truncated(shared, method, asked, request_id),
        // Latency rules never answer; `faults::draw` adds them up instead.
        FaultKind::Latency => {
            let (status, body) = answer(shared, method, asked, true);
            respond(status, body, request_id)
        }
    }
}

/// A 200 announcing the normal answer's length but sending half of it.
fn truncated(shared: &Shared, method: &Method, asked: &Asked, request_id: &str) -> Response {
    let (_, full) = answer(shared, method, asked, false);
    cut_short(full, request_id)
}

/// A 200 whose `Content-Length` announces `full` while its body is half of
/// it.
fn cut_short(full: Vec<u8>, request_id: &str) -> Response {
    let length = HeaderValue::from(full.len());
    let mut response = respond(StatusCode::OK, faults::truncated_body(full), request_id);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, length);
    response
}

/// The 429 of a `throttle` fault rule, with its `Retry-After`.
fn throttle_answer(shared: &Shared, rule: &FaultRule, request_id: &str) -> Response {
    let mut response = gateway_error(
        StatusCode::TOO_MANY_REQUESTS,
        "APIGW.0308",
        "The throttling threshold has been reached: policy user over ratelimit,limit:200,time:1 second",
        request_id,
    );
    if let Some(delay) = rule.retry_after {
        let now = shared.clock.wall(shared.clock.elapsed());
        if let Some(value) = retry_after_value(now, delay, rule.retry_after_http_date) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        // The date form counts from this answer's own `Date`, so a client
        // that reads both gets the delay exactly.
        if rule.retry_after_http_date
            && let Ok(date) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::from(now)))
        {
            response.headers_mut().insert(header::DATE, date);
        }
    }
    response
}

/// `Retry-After` as whole seconds (rounded up) or as the HTTP date `delay`
/// after `now`.
fn retry_after_value(
    now: chrono::DateTime<chrono::Utc>,
    delay: Duration,
    http_date: bool,
) -> Option<HeaderValue> {
    let text = if http_date {
        httpdate::fmt_http_date(SystemTime::from(timeline::wall_time(now, delay)))
    } else {
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        seconds.to_string()
    };
    HeaderValue::from_str(&text).ok()
}

/// `GET /_sim/stats`.
async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    respond(StatusCode::OK, to_json(&shared.stats()), &new_request_id())
}

/// `GET /_sim/smn`: every message a topic received, in arrival order.
async fn smn_messages(State(shared): State<Arc<Shared>>) -> Response {
    let messages = shared.lock().smn_messages.clone();
    respond(StatusCode::OK, to_json(&messages), &new_request_id())
}

/// `POST /_sim/jobs` with a JSON array of `JobSpec`.
async fn add_jobs(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request_id = new_request_id();
    let result = serde_json::from_slice::<Vec<JobSpec>>(&body)
        .map_err(|error| error.to_string())
        .and_then(|jobs| shared.add_jobs(jobs).map_err(|error| error.to_string()));
    match result {
        Ok(count) => respond(
            StatusCode::OK,
            to_json(&json!({"added": count})),
            &request_id,
        ),
        Err(message) => control_error(&message, &request_id),
    }
}

/// `PUT /_sim/faults` with a JSON array of `FaultRule`.
async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request_id = new_request_id();
    let result = serde_json::from_slice::<Vec<FaultRule>>(&body)
        .map_err(|error| error.to_string())
        .and_then(|faults| shared.set_faults(faults).map_err(|error| error.to_string()));
    match result {
        Ok(count) => respond(
            StatusCode::OK,
            to_json(&json!({"faults": count})),
            &request_id,
        ),
        Err(message) => control_error(&message, &request_id),
    }
}

fn control_error(message: &str, request_id: &str) -> Response {
    respond(
        StatusCode::BAD_REQUEST,
        to_json(&json!({"error": message})),
        request_id,
    )
}
