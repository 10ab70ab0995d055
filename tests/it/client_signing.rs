//! The exact request `Client` sends, signature included, against requests
//! signed by the official Huawei Cloud Python SDK (`huaweicloudsdkcore`
//! 3.1.219): `tests/data/sdk-client-requests.json`, made by
//! `tests/sdk/client_vector.py` (see `tests/data/sdk-client-requests.md`).
//!
//! The client's signing clock is fixed to the vectors' `X-Sdk-Date`, and a
//! listener on the vectors' host (`127.83.114.1:38207`, a loopback address
//! nothing else uses, because the port is signed in `Host`) records the
//! request line and every header as they arrive. The project's own signer
//! takes no part in the expected values, and the Python SDK is not needed
//! to run this test: it always runs.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use ecs_jobwatch::huaweicloud::client::{Client, Endpoint, HttpSettings, Request, USER_AGENT};
use ecs_jobwatch::huaweicloud::credentials::{
    CredentialProvider, CredentialsConfig, Environment, Source,
};
use reqwest::Url;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Where the vectors were signed for.
const HOST: &str = "127.83.114.1:38207";

/// The vectors' `X-Sdk-Date`, 20240501T123456Z.
fn fixed_clock() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 34, 56)
        .single()
        .expect("a valid date")
}

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sdk-client-requests.json"
    );
    let text = std::fs::read_to_string(path).expect("the vector file is part of the repository");
    serde_json::from_str(&text).expect("the vector file is JSON")
}

fn text<'a>(case: &'a Value, field: &str) -> &'a str {
    case[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} of {case}"))
}

fn credentials(case: &Value) -> CredentialProvider {
    let mut pairs = vec![
        ("HUAWEICLOUD_SDK_AK", text(case, "access_key").to_string()),
        ("HUAWEICLOUD_SDK_SK", text(case, "secret_key").to_string()),
    ];
    if let Some(token) = case["security_token"].as_str() {
        pairs.push(("HUAWEICLOUD_SDK_SECURITY_TOKEN", token.to_string()));
    }
    let config = CredentialsConfig {
        source: Source::Env,
        ..Default::default()
    };
    let (credentials, _warnings) =
        CredentialProvider::new(&config, &Environment::from_pairs(pairs))
            .expect("environment credentials resolve");
    credentials
}

/// Accepts one connection, reads one request head, answers 200 and returns
/// the request line and the headers (names lowercased, in a map; a header
/// sent twice fails the test).
async fn capture_one(listener: &TcpListener) -> (String, BTreeMap<String, String>) {
    let (mut stream, _) = listener.accept().await.expect("the client connects");
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.expect("the request arrives");
        assert!(read > 0, "the client closed before the end of the head");
        head.extend_from_slice(&buffer[..read]);
    }
    let body = br#"{"job_id":"j","status":"RUNNING"}"#;
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(&[answer.as_bytes(), body].concat())
        .await
        .expect("the answer is written");
    let head = String::from_utf8(head).expect("the request head is UTF-8");
    let mut lines = head.trim_end().split("\r\n");
    let request_line = lines.next().expect("a request line").to_string();
    let mut headers = BTreeMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("a header line");
        let previous = headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
        assert!(previous.is_none(), "{name} sent twice");
    }
    (request_line, headers)
}

#[tokio::test]
async fn client_requests_match_the_official_sdk_exactly() {
    let vectors = vectors();
    assert_eq!(vectors["huaweicloudsdkcore"], "3.1.219");
    let cases = vectors["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 3);
    let listener = TcpListener::bind(HOST).await.unwrap_or_else(|error| {
        panic!("binding {HOST}, the host the vectors were signed for: {error}")
    });
    for case in cases {
        let name = text(case, "name");
        assert_eq!(text(case, "host"), HOST, "{name}");
        assert_eq!(text(case, "sdk_date"), "20240501T123456Z", "{name}");
        let settings = HttpSettings {
            request_timeout: Duration::from_secs(30),
            clock: Some(fixed_clock),
            ..HttpSettings::default()
        };
        let client = Client::build(&settings, credentials(case)).expect("the client builds");
        let url = Url::parse(&format!("http://{HOST}{}", text(case, "endpoint_path")))
            .expect("a valid endpoint");
        let endpoint = Endpoint::new(&url).expect("an endpoint");
        // Query keys are `&'static str` in a request; the vectors use `id`.
        let query: Vec<(&'static str, String)> = case["query"]
            .as_array()
            .expect("query pairs")
            .iter()
            .map(|pair| {
                assert_eq!(pair[0], "id", "{name}: a query key this test knows");
                ("id", pair[1].as_str().expect("a value").to_string())
            })
            .collect();
        let request = Request {
            query: &query,
            ..Request::get(
                &endpoint,
                text(case, "path"),
                Some(text(case, "project_id")),
                1 << 20,
            )
        };
        let (sent, (request_line, headers)) =
            tokio::join!(client.send(&request), capture_one(&listener));
        let answer = sent.unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(answer.status, 200, "{name}");

        assert_eq!(
            request_line,
            format!("GET {} HTTP/1.1", text(case, "uri")),
            "{name}"
        );
        // Every header the SDK signed, with its value and the SDK's
        // Authorization, and nothing else but the two unsigned ones every
        // request carries.
        let mut expected: BTreeMap<String, String> = case["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(name, value)| {
                (
                    name.to_ascii_lowercase(),
                    value.as_str().expect("a header value").to_string(),
                )
            })
            .collect();
        expected.insert("user-agent".into(), USER_AGENT.into());
        expected.insert("accept".into(), "*/*".into());
        assert_eq!(headers, expected, "{name}");
    }
}
