//! The signature of a notification, in the style of Stripe and Standard Webhooks:
//! `Cellar-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//!
//! The timestamp is inside the signed text, so a receiver that refuses old timestamps
//! also refuses a captured request replayed later. Each attempt is signed afresh.

use std::time::Duration;

use ring::hmac;

use crate::domain::Secret;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Cellar-Signature";
/// The header carrying the delivery id (the same on every attempt of one notification).
pub const DELIVERY_HEADER: &str = "Cellar-Delivery";
/// The header carrying the event type.
pub const EVENT_HEADER: &str = "Cellar-Event";

/// Why a signature does not hold. Messages never hold the secret or the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The header is not `t=<digits>,v1=<64 hex digits>`.
    #[error("the signature header is malformed")]
    Malformed,
    /// The timestamp is further from now than the tolerance.
    #[error("the signature's timestamp is {0} s away from now")]
    Stale(i64),
    /// The HMAC does not match the body.
    #[error("the signature does not match the body")]
    Mismatch,
}

/// The `Cellar-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let tag = hmac::sign(&key(secret), &signed_text(timestamp, body));
    format!("t={timestamp},v1={}", hex::encode(tag.as_ref()))
}

/// Checks a `Cellar-Signature` value against `body`, in constant time, refusing a
/// timestamp more than `tolerance` away from `now` (Unix seconds). What a receiver
/// written in Rust would do; the README shows the same in Python.
pub fn verify(
    secret: &Secret,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), Error> {
    let (timestamp, tag) = parse(header).ok_or(Error::Malformed)?;
    let skew = now.saturating_sub(timestamp);
    if skew.unsigned_abs() > tolerance.as_secs() {
        return Err(Error::Stale(skew));
    }
    hmac::verify(&key(secret), &signed_text(timestamp, body), &tag).map_err(|_| Error::Mismatch)
}

fn key(secret: &Secret) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes())
}

// `<t>.<body>`: the decimal timestamp, a dot, the raw body.
fn signed_text(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut text = format!("{timestamp}.").into_bytes();
    text.extend_from_slice(body);
    text
}

// `t=<digits>,v1=<hex>` in that order; unknown extra pairs (a later `v2`) are ignored.
fn parse(header: &str) -> Option<(i64, Vec<u8>)> {
    let mut timestamp = None;
    let mut tag = None;
    for pair in header.split(',') {
        match pair.trim().split_once('=')? {
            ("t", digits) if digits.bytes().all(|b| b.is_ascii_digit()) => timestamp = digits.parse().ok(),
            ("v1", hex) if hex.len() == 64 => tag = hex::decode(hex).ok(),
            _ => {}
        }
    }
    Some((timestamp?, tag?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"d1"}"#;
    const NOW: i64 = 1_767_225_600;
    const TOLERANCE: Duration = Duration::from_secs(300);

    fn secret() -> Secret {
        Secret::new("whsec-test-secret-0123")
    }

    #[test]
    fn matches_an_independent_hmac() {
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec-test-secret-0123",
        //   b"1767225600.{\"id\":\"d1\"}", hashlib.sha256).hexdigest())'
        let expected = "t=1767225600,v1=a332621a1882645e893f220e8a605d05d92db15888a629c50d51d7877a0d2e0f";
        assert_eq!(sign(&secret(), NOW, BODY), expected);
    }

    #[test]
    fn verification_round_trips_and_refuses_tampering() {
        let header = sign(&secret(), NOW, BODY);
        assert_eq!(verify(&secret(), &header, BODY, NOW + 10, TOLERANCE), Ok(()));
        let check = |header: &str, body: &[u8], now: i64| verify(&secret(), header, body, now, TOLERANCE);
        assert_eq!(check(&header, br#"{"id":"d2"}"#, NOW), Err(Error::Mismatch));
        assert_eq!(check(&header, BODY, NOW + 301), Err(Error::Stale(301)));
        assert_eq!(check(&header, BODY, NOW - 301), Err(Error::Stale(-301)));
        let other = Secret::new("another-secret-456789");
        assert_eq!(verify(&other, &header, BODY, NOW, TOLERANCE), Err(Error::Mismatch));
        // The timestamp is signed: moving it breaks the signature.
        let moved = header.replace("t=1767225600", "t=1767225601");
        assert_eq!(check(&moved, BODY, NOW), Err(Error::Mismatch));
    }

    #[test]
    fn malformed_headers() {
        let tag = "0".repeat(64);
        for bad in ["", "t=1", &format!("v1={tag}"), &format!("t=x,v1={tag}"), "t=1,v1=abc", "garbage"] {
            let outcome = verify(&secret(), bad, BODY, 1, TOLERANCE);
            assert_eq!(outcome, Err(Error::Malformed), "{bad}");
        }
        // Extra pairs are ignored, so a later scheme can be added beside v1.
        let header = format!("{},v2=zzz", sign(&secret(), NOW, BODY));
        assert_eq!(verify(&secret(), &header, BODY, NOW, TOLERANCE), Ok(()));
    }
}
