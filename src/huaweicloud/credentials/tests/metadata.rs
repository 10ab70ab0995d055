//! Tests of the instance metadata source against a fake metadata service
//! on 127.0.0.1: the token flow, refresh inside the margin only, single
//! flight under concurrency, a valid key served while a refresh is in
//! flight, the agency error, rotation, and answers whose errors must name
//! the URL and never the body.

use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};

use super::super::metadata::{METADATA_TOKEN_HEADER, METADATA_TOKEN_TTL_HEADER, parse_timestamp};
use super::*;

#[test]
fn timestamps_in_several_forms() {
    let expected = DateTime::parse_from_rfc3339("2022-10-17T18:51:25.231Z")
        .expect("valid")
        .with_timezone(&Utc);
    for text in [
        "2022-10-17T18:51:25.231000Z",
        "2022-10-17T18:51:25.231Z",
        "2022-10-17T20:51:25.231+02:00",
        "2022-10-17T18:51:25.231000",
        "2022-10-17 18:51:25.231",
    ] {
        assert_eq!(parse_timestamp(text), Some(expected), "{text}");
    }
    assert_eq!(parse_timestamp("yesterday"), None);
}

/// What the fake metadata service answers and what it saw.
struct Fake {
    /// The token to hand out; `None` answers the PUT with 404.
    token: Option<String>,
    /// The next securitykey answer: status and body.
    answer: Mutex<(u16, String)>,
    token_puts: AtomicUsize,
    key_gets: AtomicUsize,
    /// The `X-Metadata-Token` of each securitykey GET.
    seen_tokens: Mutex<Vec<Option<String>>>,
    /// The TTL header of each token PUT.
    seen_ttls: Mutex<Vec<Option<String>>>,
    /// When set, each securitykey GET announces itself and waits.
    gate: Option<(tokio::sync::Notify, tokio::sync::Semaphore)>,
}

impl Fake {
    fn new(token: Option<&str>) -> Fake {
        Fake {
            token: token.map(str::to_string),
            answer: Mutex::new((500, String::new())),
            token_puts: AtomicUsize::new(0),
            key_gets: AtomicUsize::new(0),
            seen_tokens: Mutex::new(Vec::new()),
            seen_ttls: Mutex::new(Vec::new()),
            gate: None,
        }
    }

    fn serve_key(&self, access: &str, expires_at: DateTime<Utc>) {
        let body = serde_json::json!({
            "credential": {
                "access": access,
                "secret": format!("{access}-{SK}"),
                "securitytoken": TOKEN,
                "expires_at": expires_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            }
        });
        self.answer_with(200, &body.to_string());
    }

    fn answer_with(&self, status: u16, body: &str) {
        *self.answer.lock().expect("fake lock") = (status, body.to_string());
    }

    fn gets(&self) -> usize {
        self.key_gets.load(Ordering::SeqCst)
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

async fn token_handler(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> (StatusCode, String) {
    fake.token_puts.fetch_add(1, Ordering::SeqCst);
    fake.seen_ttls
        .lock()
        .expect("fake lock")
        .push(header(&headers, METADATA_TOKEN_TTL_HEADER));
    match &fake.token {
        Some(token) => (StatusCode::OK, token.clone()),
        None => (StatusCode::NOT_FOUND, "not found".to_string()),
    }
}

async fn key_handler(State(fake): State<Arc<Fake>>, headers: HeaderMap) -> (StatusCode, String) {
    fake.key_gets.fetch_add(1, Ordering::SeqCst);
    fake.seen_tokens
        .lock()
        .expect("fake lock")
        .push(header(&headers, METADATA_TOKEN_HEADER));
    if let Some((entered, release)) = &fake.gate {
        entered.notify_one();
        let permit = release.acquire().await.expect("gate is open");
        permit.forget();
    }
    let (status, body) = fake.answer.lock().expect("fake lock").clone();
    (StatusCode::from_u16(status).expect("valid status"), body)
}

async fn meta_data_handler() -> (StatusCode, String) {
    (
        StatusCode::OK,
        r#"{"project_id":"c0ffee","availability_zone":"az1"}"#.to_string(),
    )
}

/// Starts the fake on 127.0.0.1 and returns a metadata configuration
/// pointing at it.
async fn start(fake: Arc<Fake>) -> CredentialsConfig {
    let app = axum::Router::new()
        .route("/meta-data/latest/api/token", put(token_handler))
        .route("/openstack/latest/securitykey", get(key_handler))
        .route("/openstack/latest/meta_data.json", get(meta_data_handler))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    CredentialsConfig {
        source: Source::Metadata,
        metadata_url: format!("http://{address}/"),
        metadata_timeout: Duration::from_secs(30),
        ..CredentialsConfig::default()
    }
}

async fn metadata_provider(fake: &Arc<Fake>) -> CredentialProvider {
    let config = start(fake.clone()).await;
    let (provider, warnings) =
        CredentialProvider::new(&config, &env(&[])).expect("metadata chosen");
    assert!(warnings.is_empty());
    assert_eq!(fake.gets(), 0, "new() does no network I/O");
    provider
}

#[tokio::test]
async fn metadata_token_flow() {
    let fake = Arc::new(Fake::new(Some("session-token")));
    fake.serve_key("ak-1", Utc::now() + TimeDelta::hours(1));
    let provider = metadata_provider(&fake).await;
    let credentials = provider.get().await.expect("metadata keys");
    assert_eq!(credentials.access_key.expose(), "ak-1");
    assert_eq!(credentials.secret_key.expose(), format!("ak-1-{SK}"));
    assert_eq!(
        credentials.security_token.as_ref().map(Secret::expose),
        Some(TOKEN)
    );
    assert!(credentials.expires_at.is_some());
    assert_eq!(fake.token_puts.load(Ordering::SeqCst), 1);
    assert_eq!(
        *fake.seen_ttls.lock().expect("lock"),
        vec![Some("21600".to_string())]
    );
    assert_eq!(
        *fake.seen_tokens.lock().expect("lock"),
        vec![Some("session-token".to_string())]
    );
    assert_eq!(provider.generation(), 1);
}

#[tokio::test]
async fn metadata_without_token_support() {
    let fake = Arc::new(Fake::new(None));
    fake.serve_key("ak-1", Utc::now() + TimeDelta::hours(1));
    let provider = metadata_provider(&fake).await;
    let credentials = provider.get().await.expect("metadata keys");
    assert_eq!(credentials.access_key.expose(), "ak-1");
    assert_eq!(fake.token_puts.load(Ordering::SeqCst), 1);
    assert_eq!(*fake.seen_tokens.lock().expect("lock"), vec![None]);
}

#[tokio::test]
async fn metadata_refreshes_only_inside_the_margin() {
    let fake = Arc::new(Fake::new(None));
    fake.serve_key("ak-1", Utc::now() + TimeDelta::hours(1));
    let provider = metadata_provider(&fake).await;
    provider.get().await.expect("first get");
    provider.get().await.expect("second get");
    assert_eq!(
        fake.gets(),
        1,
        "a key with an hour left is not fetched again"
    );

    let fake = Arc::new(Fake::new(None));
    fake.serve_key("ak-1", Utc::now() + TimeDelta::minutes(5));
    let provider = metadata_provider(&fake).await;
    provider.get().await.expect("first get");
    provider.get().await.expect("second get");
    assert_eq!(fake.gets(), 2, "a key with 5 minutes left is fetched again");
}

#[tokio::test]
async fn metadata_unrotated_key_is_not_fetched_on_every_call() {
    let fake = Arc::new(Fake::new(None));
    fake.serve_key("ak-1", Utc::now() + TimeDelta::minutes(5));
    let provider = metadata_provider(&fake).await;
    for _ in 0..5 {
        let credentials = provider.get().await.expect("get");
        assert_eq!(credentials.access_key.expose(), "ak-1");
    }
    // The first fetch, then one that brought back the same key; the
    // rest wait for the retry interval.
    assert_eq!(fake.gets(), 2);
    assert_eq!(provider.generation(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_concurrent_callers_share_one_fetch() {
    let mut fake = Fake::new(Some("t"));
    fake.gate = Some((tokio::sync::Notify::new(), tokio::sync::Semaphore::new(0)));
    let fake = Arc::new(fake);
    fake.serve_key("ak-1", Utc::now() + TimeDelta::hours(1));
    let provider = metadata_provider(&fake).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.get().await })
        })
        .collect();
    let Some((entered, release)) = &fake.gate else {
        unreachable!();
    };
    // The first fetch is in flight; the other callers pile up behind it.
    entered.notified().await;
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
    release.add_permits(1000);
    for task in tasks {
        let credentials = task.await.expect("task").expect("get");
        assert_eq!(credentials.access_key.expose(), "ak-1");
    }
    assert_eq!(fake.gets(), 1);
    assert_eq!(fake.token_puts.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_valid_key_is_served_while_a_refresh_is_in_flight() {
    let mut fake = Fake::new(None);
    fake.gate = Some((tokio::sync::Notify::new(), tokio::sync::Semaphore::new(0)));
    let fake = Arc::new(fake);
    fake.serve_key("ak-1", Utc::now() + TimeDelta::minutes(5));
    let provider = metadata_provider(&fake).await;
    let Some((entered, release)) = &fake.gate else {
        unreachable!();
    };
    let first = tokio::spawn({
        let provider = provider.clone();
        async move { provider.get().await }
    });
    entered.notified().await;
    release.add_permits(1);
    let first = first.await.expect("task").expect("first get");
    assert_eq!(first.access_key.expose(), "ak-1");

    fake.serve_key("ak-2", Utc::now() + TimeDelta::hours(1));
    let refreshing = tokio::spawn({
        let provider = provider.clone();
        async move { provider.get().await }
    });
    entered.notified().await;
    // The refresh holds the lock inside the fake; this caller does not wait.
    let meanwhile = provider.get().await.expect("cached key");
    assert_eq!(meanwhile.access_key.expose(), "ak-1");
    release.add_permits(1);
    let refreshed = refreshing.await.expect("task").expect("refreshed");
    assert_eq!(refreshed.access_key.expose(), "ak-2");
    assert_eq!(fake.gets(), 2);
    assert_eq!(provider.generation(), 2);
}

#[tokio::test]
async fn metadata_without_agency_is_no_agency() {
    let fake = Arc::new(Fake::new(None));
    fake.answer_with(
        401,
        r#"{"error":"Please configure Cloud Service Agency first"}"#,
    );
    let provider = metadata_provider(&fake).await;
    assert!(matches!(
        provider.get().await,
        Err(CredentialError::NoAgency)
    ));

    fake.answer_with(401, "unauthorized");
    match provider.get().await {
        Err(error @ CredentialError::Metadata { .. }) => {
            assert!(error.to_string().contains("401"), "{error}");
        }
        other => panic!("expected Metadata, got {other:?}"),
    }
}

#[tokio::test]
async fn metadata_refresh_failure_keeps_the_valid_cached_key() {
    let fake = Arc::new(Fake::new(None));
    fake.serve_key("ak-1", Utc::now() + TimeDelta::minutes(5));
    let provider = metadata_provider(&fake).await;
    provider.get().await.expect("first get");
    fake.answer_with(500, "internal error");
    let credentials = provider.get().await.expect("cached key while still valid");
    assert_eq!(credentials.access_key.expose(), "ak-1");
    assert_eq!(fake.gets(), 2, "the refresh was attempted");
    assert_eq!(provider.generation(), 1);
}

#[tokio::test]
async fn metadata_never_hands_out_an_expired_key() {
    let fake = Arc::new(Fake::new(None));
    fake.serve_key("ak-old", Utc::now() - TimeDelta::minutes(1));
    let provider = metadata_provider(&fake).await;
    assert!(matches!(
        provider.get().await,
        Err(CredentialError::Expired { .. })
    ));
    fake.answer_with(500, "");
    assert!(matches!(
        provider.get().await,
        Err(CredentialError::Metadata { .. })
    ));
    assert_eq!(provider.generation(), 0);
}

#[tokio::test]
async fn metadata_rotation_bumps_generation() {
    let fake = Arc::new(Fake::new(Some("t")));
    fake.serve_key("ak-1", Utc::now() + TimeDelta::minutes(5));
    let provider = metadata_provider(&fake).await;
    assert_eq!(provider.generation(), 0);
    provider.get().await.expect("first get");
    assert_eq!(provider.generation(), 1);
    fake.serve_key("ak-2", Utc::now() + TimeDelta::hours(1));
    let credentials = provider.get().await.expect("rotated");
    assert_eq!(credentials.access_key.expose(), "ak-2");
    assert_eq!(provider.generation(), 2);
    provider.get().await.expect("cached");
    assert_eq!(provider.generation(), 2);
    assert!(
        !provider
            .reload(&env(&[]), &mut Vec::new())
            .expect("metadata reload is a no-op")
    );
}

#[tokio::test]
async fn metadata_bad_answers_name_the_url_not_the_body() {
    let fake = Arc::new(Fake::new(None));
    let provider = metadata_provider(&fake).await;
    let secret_body =
        format!(r#"{{"credential":{{"access":"{AK}","secret":"{SK}","expires_at":"soon"}}"#);
    for body in [
        format!("{secret_body}}}"),
        secret_body.clone(),
        format!("{{\"x\":\"{SK}\"}}"),
    ] {
        fake.answer_with(200, &body);
        match provider.get().await {
            Err(error @ CredentialError::Metadata { .. }) => {
                let shown = error.to_string();
                assert!(shown.contains("/openstack/latest/securitykey"), "{shown}");
                assert!(!shown.contains(AK) && !shown.contains(SK), "{shown}");
            }
            other => panic!("expected Metadata, got {other:?}"),
        }
    }
    fake.answer_with(200, &"x".repeat(MAX_BODY_BYTES + 1));
    match provider.get().await {
        Err(error) => assert!(error.to_string().contains("64 KiB"), "{error}"),
        Ok(_) => panic!("an oversized answer must fail"),
    }
}

#[tokio::test]
async fn auto_chain_without_metadata_service_is_not_found() {
    // Port 9 (discard) on 127.0.0.1 refuses connections.
    let (provider, _) =
        CredentialProvider::new(&config(Source::Auto), &env(&[])).expect("auto resolves");
    match provider.get().await {
        Err(error @ CredentialError::NotFound { .. }) => {
            let shown = error.to_string();
            assert!(shown.contains("HUAWEICLOUD_SDK_AK"), "{shown}");
            assert!(shown.contains("CREDENTIALS_DIRECTORY"), "{shown}");
            assert!(shown.contains("127.0.0.1:9"), "{shown}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn project_id_from_the_metadata_service() {
    let fake = Arc::new(Fake::new(Some("t")));
    let config = start(fake.clone()).await;
    assert_eq!(
        project_id_from_metadata(&config).await.expect("project id"),
        "c0ffee"
    );
    assert_eq!(fake.token_puts.load(Ordering::SeqCst), 1);
}
