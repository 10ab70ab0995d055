//! The simulated gateway's authentication: checks an SDK-HMAC-SHA256
//! request the way the Huawei Cloud API gateway does, by recomputing the
//! signature from the request's own `SignedHeaders` with `api::sign`.
//!
//! The checks, in order: an `Authorization` header that parses, a known
//! access key, an `X-Sdk-Date` within 15 minutes of the simulator's clock,
//! `host` and `x-sdk-date` among the signed headers, the security token of
//! a temporary credential (present, equal, signed), and the signature.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::huaweicloud::sign::{self, Request};

use super::scenario::Credential;

/// The largest accepted difference between `X-Sdk-Date` and the clock.
const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(15);

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// `APIGW.0301`: missing or malformed header, unknown key, bad
    /// signature, missing or wrong security token.
    Signature,
    /// `APIGW.0303`: `X-Sdk-Date` missing, unparseable or too far off.
    Date,
}

/// A received request, as the verifier needs it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The method as received.
    pub method: &'a str,
    /// The path as received, still percent-encoded.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// Every received header; names lowercase.
    pub headers: &'a [(String, String)],
    /// The body bytes.
    pub body: &'a [u8],
}

/// Splits a raw query string into percent-decoded pairs; a piece without
/// `=` is a key with an empty value.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            (sign::percent_decode(key), sign::percent_decode(value))
        })
        .collect()
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Authenticates `received` against `credentials` at wall time `now`, and
/// returns the credential that signed it.
pub fn verify<'c>(
    received: &Received<'_>,
    credentials: &'c HashMap<String, Credential>,
    now: DateTime<Utc>,
) -> Result<&'c Credential, Rejection> {
    let authorization = header(received.headers, "authorization")
        .and_then(sign::parse_authorization)
        .ok_or(Rejection::Signature)?;
    let credential = credentials
        .get(&authorization.access_key)
        .ok_or(Rejection::Signature)?;
    let date = header(received.headers, sign::SDK_DATE_HEADER)
        .and_then(|value| sign::parse_sdk_date(value.trim()))
        .ok_or(Rejection::Date)?;
    if (now - date).abs() > MAX_CLOCK_SKEW {
        return Err(Rejection::Date);
    }
    let signed = &authorization.signed_headers;
    let is_signed = |name: &str| signed.iter().any(|signed_name| signed_name == name);
    if !is_signed("host") || !is_signed(sign::SDK_DATE_HEADER) {
        return Err(Rejection::Signature);
    }
    if let Some(token) = &credential.security_token {
        let sent = header(received.headers, "x-security-token").ok_or(Rejection::Signature)?;
        if !sign::constant_time_eq(sent.trim(), token.expose()) || !is_signed("x-security-token") {
            return Err(Rejection::Signature);
        }
    }
    let query = query_pairs(received.query);
    let request = Request {
        method: received.method,
        path: received.path,
        query: &query,
        headers: received.headers,
        body: received.body,
    };
    let expected = sign::signature_for(&request, signed, credential.secret_key.expose())
        .map_err(|_| Rejection::Signature)?;
    if !sign::constant_time_eq(&expected, &authorization.signature) {
        return Err(Rejection::Signature);
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::huaweicloud::secret::Secret;

    fn credentials(token: Option<&str>) -> HashMap<String, Credential> {
        let credential = Credential {
            access_key: "AK".into(),
            secret_key: Secret::new("SK"),
            security_token: token.map(Secret::new),
            forbidden: false,
        };
        HashMap::from([("AK".to_string(), credential)])
    }

    fn now() -> DateTime<Utc> {
        sign::parse_sdk_date("20240102T030405Z").unwrap()
    }

    fn signed_headers(extra: &[(&str, &str)], sign_with: &str) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), "127.0.0.1:1".into()),
            ("x-sdk-date".into(), "20240102T030405Z".into()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let query = query_pairs(Some("a=1%202&b"));
        let request = Request {
            method: "GET",
            path: "/v1/p/jobs/j",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let value = sign::authorization(&request, "AK", sign_with).unwrap();
        headers.push(("authorization".into(), value));
        headers
    }

    fn check(headers: &[(String, String)], token: Option<&str>) -> Result<(), Rejection> {
        let received = Received {
            method: "GET",
            path: "/v1/p/jobs/j",
            query: Some("a=1%202&b"),
            headers,
            body: b"",
        };
        verify(&received, &credentials(token), now()).map(|_| ())
    }

    #[test]
    fn accepts_a_good_signature_and_rejects_the_rest() {
        assert_eq!(check(&signed_headers(&[], "SK"), None), Ok(()));
        assert_eq!(
            check(&signed_headers(&[], "other"), None),
            Err(Rejection::Signature)
        );
        let mut tampered = signed_headers(&[], "SK");
        tampered[0].1 = "127.0.0.1:2".into();
        assert_eq!(check(&tampered, None), Err(Rejection::Signature));
        assert_eq!(check(&[], None), Err(Rejection::Signature));
    }

    #[test]
    fn date_must_be_close() {
        let mut headers = signed_headers(&[], "SK");
        headers[1].1 = "20240102T032405Z".into();
        assert_eq!(check(&headers, None), Err(Rejection::Date));
        headers[1].1 = "garbage".into();
        assert_eq!(check(&headers, None), Err(Rejection::Date));
    }

    #[test]
    fn security_token_must_be_sent_and_signed() {
        assert_eq!(
            check(
                &signed_headers(&[("x-security-token", "T")], "SK"),
                Some("T")
            ),
            Ok(())
        );
        assert_eq!(
            check(&signed_headers(&[], "SK"), Some("T")),
            Err(Rejection::Signature)
        );
        assert_eq!(
            check(
                &signed_headers(&[("x-security-token", "U")], "SK"),
                Some("T")
            ),
            Err(Rejection::Signature)
        );
        let mut unsigned = signed_headers(&[], "SK");
        unsigned.push(("x-security-token".into(), "T".into()));
        assert_eq!(check(&unsigned, Some("T")), Err(Rejection::Signature));
    }

    #[test]
    fn query_pairs_are_decoded() {
        assert_eq!(
            query_pairs(Some("a=1%202&b&&c=")),
            vec![
                ("a".to_string(), "1 2".to_string()),
                ("b".to_string(), String::new()),
                ("c".to_string(), String::new()),
            ]
        );
        assert!(query_pairs(None).is_empty());
    }
}
