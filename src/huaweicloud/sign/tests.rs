//! Tests of `sign`.

use super::*;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn signing_guide_vector() {
    let query = pairs(&[
        ("limit", "2"),
        ("marker", "13551d6b-755d-4757-b956-536f674975c0"),
    ]);
    let headers = pairs(&[
        ("Content-Type", "application/json"),
        ("Host", "service.region.example.com"),
        ("X-Sdk-Date", "20191115T033655Z"),
    ]);
    let request = Request {
        method: "GET",
        path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
        query: &query,
        headers: &headers,
        body: b"",
    };
    let auth = authorization(
        &request,
        "QTWAOYTTINDUT2QVKYUC",
        "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",
    )
    .unwrap();
    assert_eq!(
        auth,
        "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, SignedHeaders=content-type;host;x-sdk-date, \
         Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    );
}

#[test]
fn go_sdk_vector() {
    let query = pairs(&[("limit", "1")]);
    let headers = pairs(&[
        ("Host", "example.huaweicloud.com"),
        ("X-Sdk-Date", "20060102T150405Z"),
    ]);
    let request = Request {
        method: "GET",
        path: "/path",
        query: &query,
        headers: &headers,
        body: b"",
    };
    let signed = vec!["x-sdk-date".to_string()];
    let signature = signature_for(&request, &signed, "SecretKey").unwrap();
    assert_eq!(
        signature,
        "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
    );
}

#[test]
fn canonical_forms() {
    let check = |path: &str, expected: &str| assert_eq!(canonical_uri(path), expected);
    check("/v1/p/jobs/j", "/v1/p/jobs/j/");
    check("/", "/");
    check("", "/");
    check("/a b/c%2Fd", "/a%20b/c/d/");
    check("/%zz", "/%25zz/");
    let query = pairs(&[("b", "2"), ("a", "z"), ("a", "a b"), ("t", "a/c~d*e+f")]);
    assert_eq!(canonical_query(&query), "a=a%20b&a=z&b=2&t=a%2Fc~d%2Ae%2Bf");
    assert_eq!(canonical_query(&[]), "");
    assert_eq!(sha256_hex(b""), EMPTY_BODY_SHA256);
}

#[test]
fn authorization_round_trip() {
    let value = format_authorization("AK", &["host".into(), "x-sdk-date".into()], "abc");
    let parts = parse_authorization(&value).unwrap();
    assert_eq!(parts.access_key, "AK");
    assert_eq!(parts.signed_headers, vec!["host", "x-sdk-date"]);
    assert_eq!(parts.signature, "abc");
    for bad in [
        "",
        "Bearer x",
        "SDK-HMAC-SHA256",
        "SDK-HMAC-SHA256 Access=a",
        "SDK-HMAC-SHA256X Access=a, SignedHeaders=h, Signature=s",
    ] {
        assert_eq!(parse_authorization(bad), None, "{bad}");
    }
}

#[test]
fn dates() {
    let date = parse_sdk_date("20191115T033655Z").unwrap();
    assert_eq!(format_sdk_date(date), "20191115T033655Z");
    assert_eq!(parse_sdk_date("2019-11-15"), None);
}

#[test]
fn sdk_dates_by_arithmetic_match_chrono() {
    let mut seconds: i64 = -86_400 * 400;
    while seconds < 4_102_444_800 {
        let time = DateTime::from_timestamp(seconds, 0).unwrap();
        let fast = sdk_date(seconds);
        assert_eq!(std::str::from_utf8(&fast).unwrap(), format_sdk_date(time));
        seconds += 86_399 * 7 + 3_607;
    }
    for (seconds, text) in [
        (0, "19700101T000000Z"),
        (951_782_400, "20000229T000000Z"),
        (1_573_789_015, "20191115T033655Z"),
        (4_102_444_799, "20991231T235959Z"),
    ] {
        assert_eq!(std::str::from_utf8(&sdk_date(seconds)).unwrap(), text);
    }
}

/// The streamed signer against the reference one, over paths that take
/// both of its ways, queries, tokens and bodies.
#[test]
fn sorted_signing_matches_the_reference() {
    let paths = [
        "/v1/0123456789abcdef/jobs/ff80808288d41e1b",
        "/v1/p/jobs/j/",
        "",
        "/",
        "/base/v1/cloudimages/job/a-b_c.d~e",
        "/a b/c%2Fd",
        "/%zz/x",
    ];
    let queries: [Vec<(&'static str, String)>; 3] = [
        vec![],
        vec![("id", "a b/c".to_string())],
        vec![("z", "2".to_string()), ("id", "x".to_string())],
    ];
    for path in paths {
        for query in &queries {
            for token in [None, Some("  token value ")] {
                for body in [&b""[..], &b"{\"message\":1}"[..]] {
                    let mut headers = vec![
                        ("content-type", "application/json"),
                        ("host", "ecs.example.com:8443"),
                        ("x-project-id", "0123456789abcdef"),
                        ("x-sdk-date", "20191115T033655Z"),
                    ];
                    if let Some(token) = token {
                        headers.push(("x-security-token", token));
                    }
                    let owned: Vec<(String, String)> = headers
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect();
                    let query_owned: Vec<(String, String)> = query
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone()))
                        .collect();
                    let reference = authorization(
                        &Request {
                            method: "POST",
                            path,
                            query: &query_owned,
                            headers: &owned,
                            body,
                        },
                        "AK",
                        "SK",
                    )
                    .unwrap();
                    let fast = authorization_sorted(
                        &Sorted {
                            method: "POST",
                            path,
                            query,
                            headers: &headers,
                            body,
                        },
                        "20191115T033655Z",
                        "AK",
                        "SK",
                    );
                    assert_eq!(fast, reference, "{path:?} {query:?} {token:?}");
                }
            }
        }
    }
}

#[test]
fn missing_headers_are_errors() {
    let headers = pairs(&[("Host", "h")]);
    let request = Request {
        method: "GET",
        path: "/",
        query: &[],
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        authorization(&request, "a", "s"),
        Err(SignError::MissingDate)
    );
    let headers = pairs(&[("X-Sdk-Date", "20191115T033655Z")]);
    let request = Request {
        method: "GET",
        path: "/",
        query: &[],
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        authorization(&request, "a", "s"),
        Err(SignError::MissingHost)
    );
}
