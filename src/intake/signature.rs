//! Webhook signatures: lowercase hex HMAC-SHA256 of the raw body (Plane's
//! `X-Plane-Signature`, Gitea's `X-Gitea-Signature`), compared in constant time.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is absent (or empty).
    #[error("missing {0} header: deliveries must be signed with the configured secret")]
    Missing(&'static str),
    /// The header does not match the body.
    #[error("{0} does not match the body (HMAC-SHA256 with the configured secret)")]
    Mismatch(&'static str),
}

/// Checks `header_value` (of header `header`) against HMAC-SHA256(`secret`, `body`); the
/// signature, as lowercase hex, when it matches. Being a digest of the body, it doubles as the
/// key of replay detection: the body is not hashed twice.
pub fn verify(
    secret: &str,
    header: &'static str,
    header_value: Option<&str>,
    body: &[u8],
) -> Result<String, SignatureError> {
    let value = header_value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::Missing(header))?;
    // Some senders prefix the algorithm (GitHub-style `sha256=`); the hex is what counts.
    let hex_sig = value.strip_prefix("sha256=").unwrap_or(value);
    let expected = hex::decode(hex_sig).map_err(|_| SignatureError::Mismatch(header))?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(body);
    mac.clone()
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch(header))?;
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The signature a sender with `secret` puts on `body` (lowercase hex).
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Hex SHA-256 of `body`, the key of replay detection when deliveries are not signed.
pub fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "X-Test-Signature";

    #[test]
    fn a_signature_over_the_raw_body_verifies() {
        let body = br#"{"event": "issue", "action": "updated"}"#;
        let sig = sign("plane_wh_s3cret", body);
        assert_eq!(sig.len(), 64);
        assert!(
            sig.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_eq!(
            verify("plane_wh_s3cret", H, Some(&sig), body),
            Ok(sig.clone())
        );
        assert_eq!(
            verify("plane_wh_s3cret", H, Some(&sig.to_uppercase()), body),
            Ok(sig.clone()),
            "hex case does not matter"
        );
    }

    #[test]
    fn a_changed_byte_a_wrong_secret_or_no_header_is_refused() {
        let body = br#"{"a": 1}"#;
        let sig = sign("k", body);
        // Re-serialised JSON (other separators) is another body: sign the raw bytes only.
        assert_eq!(
            verify("k", H, Some(&sig), br#"{"a":1}"#),
            Err(SignatureError::Mismatch(H))
        );
        assert_eq!(
            verify("other", H, Some(&sig), body),
            Err(SignatureError::Mismatch(H))
        );
        assert_eq!(
            verify("k", H, Some("not hex"), body),
            Err(SignatureError::Mismatch(H))
        );
        assert_eq!(verify("k", H, None, body), Err(SignatureError::Missing(H)));
        // Gitea sends an empty header when its hook has no secret.
        assert_eq!(
            verify("k", H, Some(""), body),
            Err(SignatureError::Missing(H))
        );
    }
}
