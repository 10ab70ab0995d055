//! The signatures of a webhook request: the project's own
//! `X-Jobwatch-Signature` over the body, and the Standard Webhooks
//! `webhook-signature` over `{id}.{timestamp}.{body}`
//! (<https://www.standardwebhooks.com>), which receivers can check with the
//! `standardwebhooks` libraries or Svix.
//!
//! A Standard Webhooks key is the base64-decoded rest of a secret that
//! starts with `whsec_`, else the secret's bytes. During a rotation every
//! configured secret signs, and the header carries one `v1,` signature per
//! secret, separated by spaces: a receiver that knows any one of them
//! accepts the request.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::zeroize::Zeroizing;
use sha2::Sha256;

use crate::huaweicloud::secret::Secret;

/// The prefix of a Standard Webhooks secret whose rest is base64.
pub const WHSEC_PREFIX: &str = "whsec_";

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length; the error cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `sha256={hex of HMAC-SHA256(secret, body)}`: `X-Jobwatch-Signature`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac(secret, &[body])))
}

/// The Standard Webhooks key of a secret: the base64-decoded rest of a
/// `whsec_` secret, else the secret's bytes. The key is zeroized on drop.
pub fn standard_key(secret: &Secret) -> Result<Zeroizing<Vec<u8>>, String> {
    let text = secret.expose();
    match text.strip_prefix(WHSEC_PREFIX) {
        Some(encoded) => STANDARD
            .decode(encoded)
            .map(Zeroizing::new)
            .map_err(|_| "starts with whsec_ but the rest is not base64".to_string()),
        None => Ok(Zeroizing::new(text.as_bytes().to_vec())),
    }
}

/// The `webhook-signature` header: `v1,{base64 of HMAC-SHA256(key,
/// "{id}.{timestamp}.{body}")}` for each key, separated by spaces.
pub fn standard_signature(
    keys: &[Zeroizing<Vec<u8>>],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let timestamp = timestamp.to_string();
    keys.iter()
        .map(|key| {
            let mac = hmac(
                key,
                &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
            );
            format!("v1,{}", STANDARD.encode(mac))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn standard_signature_matches_the_specification_example() {
        // The example of the Standard Webhooks specification and of the
        // reference libraries' tests.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = standard_key(&secret).unwrap();
        let header = standard_signature(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn keys_of_plain_and_whsec_secrets() {
        assert_eq!(
            *standard_key(&Secret::new("plain")).unwrap(),
            b"plain".to_vec()
        );
        assert_eq!(
            *standard_key(&Secret::new("whsec_AAEC")).unwrap(),
            vec![0, 1, 2]
        );
        assert!(standard_key(&Secret::new("whsec_not base64!")).is_err());
    }

    #[test]
    fn a_rotation_signs_with_every_key() {
        let keys = [
            standard_key(&Secret::new("old")).unwrap(),
            standard_key(&Secret::new("new")).unwrap(),
        ];
        let header = standard_signature(&keys, "id", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], standard_signature(&keys[..1], "id", 1, b"{}"));
        assert_eq!(parts[1], standard_signature(&keys[1..], "id", 1, b"{}"));
    }
}
