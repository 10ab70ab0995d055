//! The signer against the 24 known-answer vectors produced by the official
//! Huawei Cloud Python SDK (`huaweicloudsdkcore` 3.1.219).

use ecs_jobwatch::huaweicloud::sign::{self, Request};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sdk-hmac-sha256-vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("vector file is part of the repository");
    serde_json::from_str(&text).expect("vector file is JSON")
}

/// The SDK turns query values into strings: booleans lowercase, lists into
/// one pair per element.
fn query_pairs(query: &Value) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for item in query.as_array().unwrap() {
        let key = item[0].as_str().unwrap().to_string();
        let values = match &item[1] {
            Value::Array(values) => values.clone(),
            other => vec![other.clone()],
        };
        for value in values {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            pairs.push((key.clone(), text));
        }
    }
    pairs
}

#[test]
fn every_sdk_vector_is_reproduced() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 24);
    for (index, vector) in vectors.iter().enumerate() {
        // Headers exactly as the SDK sent them, minus Authorization.
        let headers: Vec<(String, String)> = vector["expected_headers"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| name.as_str() != "Authorization")
            .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_string()))
            .collect();
        let query = query_pairs(&vector["query"]);
        let request = Request {
            method: vector["method"].as_str().unwrap(),
            path: vector["path"].as_str().unwrap(),
            query: &query,
            headers: &headers,
            body: b"",
        };
        let authorization = sign::authorization(
            &request,
            vector["access_key"].as_str().unwrap(),
            vector["secret_key"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(
            authorization,
            vector["expected_authorization"].as_str().unwrap(),
            "vector {index}"
        );
        // The canonical query matches the SDK's final URI.
        let expected_uri = vector["expected_uri"].as_str().unwrap();
        let expected_query = expected_uri.split_once('?').map(|(_, q)| q).unwrap_or("");
        assert_eq!(
            sign::canonical_query(&query),
            expected_query,
            "vector {index}"
        );
        // Security tokens are signed when present.
        let signed = sign::parse_authorization(&authorization)
            .unwrap()
            .signed_headers;
        assert_eq!(
            signed.contains(&"x-security-token".to_string()),
            !vector["security_token"].is_null(),
            "vector {index}"
        );
        assert!(signed.contains(&"x-project-id".to_string()));
    }
}
