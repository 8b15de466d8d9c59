//! Webhook signatures: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, checked in
//! constant time against every configured secret (several at once during rotation).

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The header GitHub puts the signature in.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
const PREFIX: &str = "sha256=";

/// Why a signature was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("malformed X-Hub-Signature-256 header (expected sha256=<64 hex digits>)")]
    Malformed,
    #[error("signature does not match any configured webhook secret")]
    Mismatch,
}

/// Checks `header` (the raw header value, if present) against `body` for any of `secrets`.
pub fn verify(
    secrets: &[SecretString],
    header: Option<&[u8]>,
    body: &[u8],
) -> Result<(), SignatureError> {
    verify_digest(secrets, &digest(header)?, body)
}

/// The digest a signature header claims, checked for form only: what can be refused before
/// the body is read.
pub fn digest(header: Option<&[u8]>) -> Result<[u8; 32], SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header
        .strip_prefix(PREFIX.as_bytes())
        .ok_or(SignatureError::Malformed)?;
    let mut expected = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| SignatureError::Malformed)?;
    Ok(expected)
}

/// Whether `body` signed with one of `secrets` gives `expected` (see [`digest`]).
pub fn verify_digest(
    secrets: &[SecretString],
    expected: &[u8; 32],
    body: &[u8],
) -> Result<(), SignatureError> {
    // Every secret is tried (no early exit) so timing says nothing about which one matched.
    let matched = secrets.iter().fold(false, |matched, secret| {
        let mut mac = mac(secret);
        mac.update(body);
        mac.verify_slice(expected).is_ok() | matched
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Whether two byte strings are equal, in time that depends only on their lengths (for
/// comparing secrets a caller presents).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The header value GitHub would send for `body` signed with `secret`.
pub fn sign(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

fn mac(secret: &SecretString) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC accepts any key")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// GitHub's documented test vector.
    const DOCS_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_test_vector() {
        let s = secret("It's a Secret to Everybody");
        assert_eq!(sign(&s, b"Hello, World!"), DOCS_SIGNATURE);
        assert_eq!(
            verify(&[s], Some(DOCS_SIGNATURE.as_bytes()), b"Hello, World!"),
            Ok(())
        );
    }

    #[test]
    fn any_of_several_secrets_verifies() {
        let secrets = [secret("old"), secret("It's a Secret to Everybody")];
        assert_eq!(
            verify(&secrets, Some(DOCS_SIGNATURE.as_bytes()), b"Hello, World!"),
            Ok(())
        );
    }

    #[test]
    fn forged_missing_and_malformed_signatures_are_rejected() {
        let secrets = [secret("It's a Secret to Everybody")];
        let body = b"Hello, World!";
        assert_eq!(verify(&secrets, None, body), Err(SignatureError::Missing));
        let forged = sign(&secret("guess"), body);
        assert_eq!(
            verify(&secrets, Some(forged.as_bytes()), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secrets, Some(DOCS_SIGNATURE.as_bytes()), b"Hello, World"),
            Err(SignatureError::Mismatch)
        );
        for bad in [
            "757107ea",
            "sha1=757107ea",
            "sha256=zz",
            "sha256=",
            "sha256=757107ea",
        ] {
            assert_eq!(
                verify(&secrets, Some(bad.as_bytes()), body),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify(&[], Some(DOCS_SIGNATURE.as_bytes()), body),
            Err(SignatureError::Mismatch)
        );
    }
}
