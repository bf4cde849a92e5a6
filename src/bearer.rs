//! Bearer tokens of the HTTP servers the gateway runs (the operations endpoints, the FHIR push
//! endpoint), compared in constant time.

use axum::http::{HeaderMap, header};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// SHA-256 of the expected token; `None` when it is empty (nobody is let in).
pub(crate) fn digest(token: &SecretString) -> Option<[u8; 32]> {
    let token = token.expose_secret().as_bytes();
    (!token.is_empty()).then(|| Sha256::digest(token).into())
}

/// What the request's `Authorization` header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The expected bearer token.
    Allowed,
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not the expected bearer token.
    Wrong,
}

/// Checks the `Authorization: Bearer <token>` header against `expected`. Both sides are
/// hashed with SHA-256 and the digests compared without an early exit, so the time taken does
/// not depend on how much of the token is right.
pub(crate) fn check(headers: &HeaderMap, expected: Option<&[u8; 32]>) -> Verdict {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Verdict::Missing;
    };
    let Some(expected) = expected else {
        return Verdict::Wrong;
    };
    let value = value.as_bytes();
    let Some((scheme, token)) = value
        .iter()
        .position(|b| *b == b' ')
        .map(|i| (&value[..i], value[i + 1..].trim_ascii()))
    else {
        return Verdict::Wrong;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") || token.is_empty() {
        return Verdict::Wrong;
    }
    let given: [u8; 32] = Sha256::digest(token).into();
    let diff = given
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if std::hint::black_box(diff) == 0 {
        Verdict::Allowed
    } else {
        Verdict::Wrong
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(v) = value {
            map.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens() {
        let expected = digest(&SecretString::from("ops-token-1")).unwrap();
        let check = |v| check(&headers(v), Some(&expected));
        assert_eq!(check(Some("Bearer ops-token-1")), Verdict::Allowed);
        assert_eq!(check(Some("bearer   ops-token-1 ")), Verdict::Allowed);
        assert_eq!(check(Some("Bearer ops-token-12")), Verdict::Wrong);
        assert_eq!(check(Some("Bearer ops-token-")), Verdict::Wrong);
        assert_eq!(check(Some("Basic ops-token-1")), Verdict::Wrong);
        assert_eq!(check(Some("Bearer ")), Verdict::Wrong);
        assert_eq!(check(Some("Bearerops-token-1")), Verdict::Wrong);
        assert_eq!(check(None), Verdict::Missing);
    }

    #[test]
    fn an_empty_token_lets_nobody_in() {
        assert_eq!(digest(&SecretString::from("")), None);
        assert_eq!(check(&headers(Some("Bearer ")), None), Verdict::Wrong);
        assert_eq!(check(&headers(Some("Bearer x")), None), Verdict::Wrong);
    }
}
