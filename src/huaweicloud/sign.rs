//! SDK-HMAC-SHA256, the request signature of the Huawei Cloud API gateway.
//!
//! Pure functions only: the caller hands in the request as it will be sent
//! (method, path, query, headers including `Host` and `X-Sdk-Date`, body)
//! and gets the `Authorization` value back. The simulator uses the same
//! functions to verify what it receives, so the two sides cannot drift.
//!
//! The algorithm, as the official SDKs implement it:
//!
//! ```text
//! CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQuery \n
//!                    CanonicalHeaders \n SignedHeaders \n hex(sha256(body))
//! StringToSign     = SDK-HMAC-SHA256 \n X-Sdk-Date \n hex(sha256(CanonicalRequest))
//! Signature        = hex(hmac_sha256(SK, StringToSign))
//! ```

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name that opens the `Authorization` header.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// The name of the date header, lowercase.
pub const SDK_DATE_HEADER: &str = "x-sdk-date";

/// `hex(sha256(""))`, the body hash of every GET.
pub const EMPTY_BODY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const SDK_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// A request as it goes on the wire, borrowed for signing.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ... (used as given; the SDKs send uppercase).
    pub method: &'a str,
    /// The path as sent, for example `/v1/{project}/jobs/{job}`. Percent
    /// escapes in it are decoded before each segment is re-encoded.
    pub path: &'a str,
    /// Query pairs, not encoded, in any order.
    pub query: &'a [(String, String)],
    /// Every header that will be sent, `Host` and `X-Sdk-Date` included.
    pub headers: &'a [(String, String)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The request has no `X-Sdk-Date` header.
    #[error("the request has no X-Sdk-Date header")]
    MissingDate,
    /// The request has no `Host` header.
    #[error("the request has no Host header")]
    MissingHost,
}

/// The parts of an `Authorization: SDK-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationParts {
    /// The access key id (`Access=`).
    pub access_key: String,
    /// The lowercase signed header names, in the order given.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
}

/// Formats a UTC time as `X-Sdk-Date` wants it: `YYYYMMDDTHHMMSSZ`.
pub fn format_sdk_date(time: DateTime<Utc>) -> String {
    time.format(SDK_DATE_FORMAT).to_string()
}

/// Parses an `X-Sdk-Date` value.
pub fn parse_sdk_date(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value, SDK_DATE_FORMAT)
        .ok()
        .map(|naive| naive.and_utc())
}

/// The headers the official SDKs sign: every header sent, lowercased,
/// sorted, without duplicates, except names containing `_`.
pub fn signed_header_names(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .filter(|name| !name.contains('_'))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Signs `request` and returns the full `Authorization` header value.
///
/// Every header of the request is signed except names containing `_`, as
/// the official SDKs do; send exactly the headers you pass here.
pub fn authorization(
    request: &Request<'_>,
    access_key: &str,
    secret_key: &str,
) -> Result<String, SignError> {
    let signed = signed_header_names(request.headers);
    let signature = signature_for(request, &signed, secret_key)?;
    Ok(format_authorization(access_key, &signed, &signature))
}

/// The hex signature of `request` over the headers named in `signed`
/// (lowercase names). Used by the signer and by the simulator's verifier.
pub fn signature_for(
    request: &Request<'_>,
    signed: &[String],
    secret_key: &str,
) -> Result<String, SignError> {
    let date = header_value(request.headers, SDK_DATE_HEADER).ok_or(SignError::MissingDate)?;
    if header_value(request.headers, "host").is_none() {
        return Err(SignError::MissingHost);
    }
    let canonical = canonical_request(request, signed);
    let to_sign = string_to_sign(date.trim(), &canonical);
    Ok(hmac_hex(secret_key.as_bytes(), to_sign.as_bytes()))
}

/// `SDK-HMAC-SHA256 Access={ak}, SignedHeaders={h1;h2}, Signature={sig}`.
pub fn format_authorization(access_key: &str, signed: &[String], signature: &str) -> String {
    format!(
        "{ALGORITHM} Access={access_key}, SignedHeaders={}, Signature={signature}",
        signed.join(";")
    )
}

/// The request the API client sends, borrowed for [`authorization_sorted`].
#[derive(Debug, Clone, Copy)]
pub struct Sorted<'a> {
    /// `GET`, `POST`, ... (used as given).
    pub method: &'a str,
    /// The path as sent (see [`Request::path`]).
    pub path: &'a str,
    /// Query pairs, not encoded, in any order.
    pub query: &'a [(&'static str, String)],
    /// Every header that will be sent, `host` and `x-sdk-date` included:
    /// names lowercase, sorted, without repeats and without `_`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// What [`authorization`] returns for the same request, computed without
/// building the canonical request or the string to sign: both are hashed
/// as they are produced, and nothing is allocated but the result (and,
/// only for a path with bytes outside `A-Za-z0-9-_.~/` or a query, their
/// canonical forms). `sdk_date` is the value of the `x-sdk-date` header.
pub fn authorization_sorted(
    request: &Sorted<'_>,
    sdk_date: &str,
    access_key: &str,
    secret_key: &str,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(request.method.as_bytes());
    hasher.update(b"\n");
    let path = request.path.as_bytes();
    if path.iter().all(|&byte| byte == b'/' || is_unreserved(byte)) {
        hasher.update(path);
        if path.last() != Some(&b'/') {
            hasher.update(b"/");
        }
    } else {
        hasher.update(canonical_uri(request.path).as_bytes());
    }
    hasher.update(b"\n");
    if !request.query.is_empty() {
        let pairs: Vec<(String, String)> = request
            .query
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect();
        hasher.update(canonical_query(&pairs).as_bytes());
    }
    hasher.update(b"\n");
    for (name, value) in request.headers {
        hasher.update(name.as_bytes());
        hasher.update(b":");
        hasher.update(value.trim().as_bytes());
        hasher.update(b"\n");
    }
    hasher.update(b"\n");
    let mut signed_length = 0;
    for (index, (name, _)) in request.headers.iter().enumerate() {
        if index > 0 {
            hasher.update(b";");
        }
        hasher.update(name.as_bytes());
        signed_length += name.len() + 1;
    }
    hasher.update(b"\n");
    if request.body.is_empty() {
        hasher.update(EMPTY_BODY_SHA256.as_bytes());
    } else {
        hasher.update(sha256_hex(request.body).as_bytes());
    }
    let mut canonical_hex = [0u8; 64];
    hex_into(&hasher.finalize(), &mut canonical_hex);

    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(ALGORITHM.as_bytes());
    mac.update(b"\n");
    mac.update(sdk_date.trim().as_bytes());
    mac.update(b"\n");
    mac.update(&canonical_hex);
    let mut signature = [0u8; 64];
    hex_into(&mac.finalize().into_bytes(), &mut signature);

    let mut out = String::with_capacity(
        ALGORITHM.len() + access_key.len() + signed_length + signature.len() + 40,
    );
    out.push_str(ALGORITHM);
    out.push_str(" Access=");
    out.push_str(access_key);
    out.push_str(", SignedHeaders=");
    for (index, (name, _)) in request.headers.iter().enumerate() {
        if index > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push_str(", Signature=");
    // Hex digits are ASCII.
    out.push_str(std::str::from_utf8(&signature).unwrap_or_default());
    out
}

/// Lowercase hex of `bytes` into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}

/// `A-Za-z0-9-_.~`: the bytes percent-encoding leaves as they are.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~')
}

/// Unix seconds as `X-Sdk-Date` wants them (`YYYYMMDDTHHMMSSZ`, UTC), by
/// arithmetic (the civil-from-days algorithm of Howard Hinnant), without
/// a formatter. Years are kept within 0000 to 9999.
pub fn sdk_date(unix_seconds: i64) -> [u8; 16] {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400);
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = (year_of_era + era * 400 + i64::from(month <= 2)).clamp(0, 9_999);
    let mut out = *b"00000000T000000Z";
    let mut put = |at: usize, width: usize, mut value: i64| {
        for index in (at..at + width).rev() {
            out[index] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(4, 2, month);
    put(6, 2, day);
    put(9, 2, second_of_day / 3_600);
    put(11, 2, second_of_day / 60 % 60);
    put(13, 2, second_of_day % 60);
    out
}

/// Splits an `Authorization` header value into its parts; `None` when it is
/// not an SDK-HMAC-SHA256 authorization.
pub fn parse_authorization(value: &str) -> Option<AuthorizationParts> {
    let rest = value.trim().strip_prefix(ALGORITHM)?;
    if !rest.starts_with(' ') {
        return None;
    }
    let mut access_key = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (key, val) = part.trim().split_once('=')?;
        match key {
            "Access" => access_key = Some(val.to_string()),
            "SignedHeaders" => {
                signed_headers = Some(
                    val.split(';')
                        .filter(|name| !name.is_empty())
                        .map(str::to_ascii_lowercase)
                        .collect(),
                )
            }
            "Signature" => signature = Some(val.to_string()),
            _ => return None,
        }
    }
    Some(AuthorizationParts {
        access_key: access_key?,
        signed_headers: signed_headers?,
        signature: signature?,
    })
}

/// The canonical request over the headers named in `signed`.
pub fn canonical_request(request: &Request<'_>, signed: &[String]) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(request.method);
    out.push('\n');
    out.push_str(&canonical_uri(request.path));
    out.push('\n');
    out.push_str(&canonical_query(request.query));
    out.push('\n');
    for name in signed {
        out.push_str(name);
        out.push(':');
        if let Some(value) = header_value(request.headers, name) {
            out.push_str(value.trim());
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed.join(";"));
    out.push('\n');
    out.push_str(&sha256_hex(request.body));
    out
}

/// `SDK-HMAC-SHA256 \n {date} \n hex(sha256(canonical))`.
pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Each path segment percent-encoded, joined by `/`, always ending in `/`.
pub fn canonical_uri(path: &str) -> String {
    let decoded = percent_decode(path);
    let mut out = String::with_capacity(decoded.len() + 1);
    for (index, segment) in decoded.split('/').enumerate() {
        if index > 0 {
            out.push('/');
        }
        percent_encode_into(segment, &mut out);
    }
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// Keys sorted, each key's values sorted, `k=v` percent-encoded, joined by `&`.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(key, value)| (percent_encode(key), percent_encode(value)))
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Percent-encodes everything but `A-Za-z0-9-_.~`, with uppercase hex.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    percent_encode_into(value, &mut out);
    out
}

fn percent_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in value.as_bytes() {
        if is_unreserved(byte) {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0x0f)] as char);
        }
    }
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are. Invalid
/// UTF-8 after decoding is replaced, which can only make a signature fail,
/// never panic.
pub fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    if !bytes.contains(&b'%') {
        return value.to_string();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            let high = hex_digit(bytes[index + 1]);
            let low = hex_digit(bytes[index + 2]);
            if let (Some(high), Some(low)) = (high, low) {
                out.push(high << 4 | low);
                index += 3;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The first value of a header, matched case-insensitively.
fn header_value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Lowercase hex of SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Lowercase hex of HMAC-SHA256.
pub fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// Compares two strings in time independent of where they first differ.
pub fn constant_time_eq(left: &str, right: &str) -> bool {
    let (left, right) = (left.as_bytes(), right.as_bytes());
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests;
