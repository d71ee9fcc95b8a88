//! Standard Webhooks (v1, symmetric): HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, keyed
//! with the base64-decoded secret (an optional `whsec_` prefix is ignored), sent base64-encoded as
//! `v1,<signature>` entries in a space-separated `webhook-signature` header, with a 5-minute tolerance on
//! the timestamp in both directions.
//!
//! Requests to connector-api use an optisync extension (M1, R-K1): the signed content also names what the
//! request does, `{webhook-id}.{webhook-timestamp}.{METHOD} {path}[?{query}]\n{body}` ([`sign_request`],
//! [`verify_request`]), so a captured result, page or feed read cannot be sent to another command, page,
//! snapshot, cursor or limit. The change events to `/connector/{tenant}/events` stay plain Standard
//! Webhooks ([`sign`], [`verify`]): one route whose body names everything it changes. A signature of one
//! form never passes as the other for a JSON body: after the timestamp the extended content goes on with a
//! method, a JSON body with `{` or `[`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

/// The allowed distance between the request's timestamp and now, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// A signing secret. `Debug` never prints it.
#[derive(Clone)]
pub struct SigningSecret {
    key: Vec<u8>,
}

/// Why a text is not a signing secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signing secret is base64 (optionally prefixed whsec_) of at least 16 bytes")]
pub struct SecretError;

impl SigningSecret {
    /// Parses `whsec_<base64>` or plain base64.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let raw = text.trim();
        let raw = raw.strip_prefix("whsec_").unwrap_or(raw);
        let key = STANDARD.decode(raw).map_err(|_| SecretError)?;
        if key.len() < 16 {
            return Err(SecretError);
        }
        Ok(Self { key })
    }

    /// The HMAC of `{id}.{timestamp}.` + `{request line}\n` (extension only) + body.
    fn mac(&self, id: &str, timestamp: &str, request: Option<&SignedRequest<'_>>, body: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        if let Some(request) = request {
            mac.update(request.line().as_bytes());
            mac.update(b"\n");
        }
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// The three headers of a signed request.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedHeaders<'a> {
    /// `webhook-id`: unique per message; the idempotency key.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`: seconds since the epoch.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`: space-separated `v1,<base64>` entries.
    pub signature: Option<&'a str>,
}

/// Why a request is not accepted. Each is answered 401 except where noted; none says which secret
/// was tried or shows the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is missing (400: the request is malformed).
    #[error("missing webhook-id, webhook-timestamp or webhook-signature header")]
    MissingHeader,
    /// The `webhook-id` is longer than 128 characters or holds a character outside `A-Z a-z 0-9 . _ -`
    /// (400: the inbox keeps it in a key, R-K2).
    #[error("webhook-id: {0}")]
    InvalidMessageId(optisync_domain::IdProblem),
    /// The timestamp is not an integer.
    #[error("webhook-timestamp is not a number of seconds")]
    InvalidTimestamp,
    /// Older than the tolerance: a replay or a delayed request.
    #[error("webhook-timestamp is too old")]
    TimestampTooOld,
    /// Newer than the tolerance.
    #[error("webhook-timestamp is too far in the future")]
    TimestampTooNew,
    /// No `v1` signature matches any active secret.
    #[error("no valid signature")]
    InvalidSignature,
}

/// What a connector-api request does, signed with its body (M1): the method and the request target
/// exactly as sent, the path from `/connector/` on and the query byte for byte (not decoded, not sorted:
/// the service reads the first value of a repeated parameter, so a reordering must not keep a signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedRequest<'a> {
    /// The HTTP method as sent, e.g. `GET`.
    pub method: &'a str,
    /// The path, e.g. `/connector/t1/commands/C1/result`.
    pub path: &'a str,
    /// The query without `?`, if any; an empty query counts as none.
    pub query: Option<&'a str>,
}

impl SignedRequest<'_> {
    /// The request line inside the signed content: `{METHOD} {path}`, then `?{query}` when there is one.
    pub fn line(&self) -> String {
        match self.query.filter(|q| !q.is_empty()) {
            Some(query) => format!("{} {}?{query}", self.method, self.path),
            None => format!("{} {}", self.method, self.path),
        }
    }
}

/// Signs a message: the value of the `webhook-signature` header for one secret.
pub fn sign(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(secret.mac(id, &timestamp.to_string(), None, body)))
}

/// Signs a connector-api request (the optisync extension, M1): the value of the `webhook-signature`
/// header for one secret, over the request line as well as the body.
pub fn sign_request(
    secret: &SigningSecret,
    id: &str,
    timestamp: i64,
    request: &SignedRequest<'_>,
    body: &[u8],
) -> String {
    format!("v1,{}", STANDARD.encode(secret.mac(id, &timestamp.to_string(), Some(request), body)))
}

/// Verifies a request against every active secret (rotation: old and new valid together), at `now`
/// (seconds since the epoch). Returns the message id on success.
pub fn verify<'a>(
    secrets: &[SigningSecret],
    headers: SignedHeaders<'a>,
    body: &[u8],
    now: i64,
) -> Result<&'a str, VerifyError> {
    check(secrets, headers, None, body, now)
}

/// Verifies a connector-api request signed with [`sign_request`] (M1): as [`verify`], with the method,
/// path and query the service received inside the signed content.
pub fn verify_request<'a>(
    secrets: &[SigningSecret],
    headers: SignedHeaders<'a>,
    request: &SignedRequest<'_>,
    body: &[u8],
    now: i64,
) -> Result<&'a str, VerifyError> {
    check(secrets, headers, Some(request), body, now)
}

fn check<'a>(
    secrets: &[SigningSecret],
    headers: SignedHeaders<'a>,
    request: Option<&SignedRequest<'_>>,
    body: &[u8],
    now: i64,
) -> Result<&'a str, VerifyError> {
    let (Some(id), Some(timestamp), Some(signatures)) = (headers.id, headers.timestamp, headers.signature) else {
        return Err(VerifyError::MissingHeader);
    };
    optisync_domain::parse_message_id(id).map_err(|e| VerifyError::InvalidMessageId(e.problem))?;
    let sent: i64 = timestamp.trim().parse().map_err(|_| VerifyError::InvalidTimestamp)?;
    // Saturating: a timestamp near the ends of i64 must be rejected, not overflow.
    if now.saturating_sub(sent) > TOLERANCE_SECS {
        return Err(VerifyError::TimestampTooOld);
    }
    if sent.saturating_sub(now) > TOLERANCE_SECS {
        return Err(VerifyError::TimestampTooNew);
    }
    let expected: Vec<[u8; 32]> = secrets.iter().map(|s| s.mac(id, timestamp, request, body)).collect();
    let valid = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, encoded)| STANDARD.decode(encoded).ok())
        .any(|given| expected.iter().any(|mac| bool::from(mac.as_slice().ct_eq(&given))));
    if valid { Ok(id) } else { Err(VerifyError::InvalidSignature) }
}
