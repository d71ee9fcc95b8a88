//! The intake's answers over HTTP: one mapping from [`Accepted`] and [`IntakeError`] to responses, for
//! every hook and the connector API.

use crate::{error_response, json_response};
use lambda_http::{Body, Response};
use optisync_ports::StoreError;
use optisync_ports::intake::{Accepted, IntakeError};
use serde_json::json;

/// Who sent the request, which decides how a store fault is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The OPTIGEM connector retries every failure: a transient fault is a 429, a permanent one a 500
    /// that says what failed.
    Connector,
    /// Brevo and CleverReach may discard a webhook on a 5xx: every store fault is a 429 "try again
    /// shortly", so nothing accepted is lost.
    Esp,
}

/// The HTTP status of a refusal.
pub fn status(e: &IntakeError, sender: Sender) -> u16 {
    match e {
        IntakeError::UnknownTenant | IntakeError::UnknownAccount | IntakeError::Unauthorized(_) => 401,
        IntakeError::Malformed { .. } => 400,
        IntakeError::Reused => 409,
        IntakeError::NotFound(_) => 404,
        IntakeError::Store(StoreError::Permanent(_)) if sender == Sender::Connector => 500,
        IntakeError::Store(_) => 429,
    }
}

/// The `error` object of a refusal: the field and the problem for a malformed body that names one,
/// else the problem.
pub fn detail(e: &IntakeError, sender: Sender) -> serde_json::Value {
    match e {
        IntakeError::Malformed { path: Some(path), problem } => json!({"path": path, "problem": problem}),
        IntakeError::Malformed { path: None, problem } => json!({"problem": problem}),
        IntakeError::Store(_) if sender == Sender::Esp => json!({"problem": "try again shortly"}),
        other => json!({"problem": other.to_string()}),
    }
}

/// A refusal: its status and `{"error": …}`; a 429 also tells the sender when to retry.
pub fn refusal(e: &IntakeError, sender: Sender, retry_after_secs: u64) -> Response<Body> {
    let status = status(e, sender);
    tracing::info!(status, reason = %e, "request refused");
    error_response(status, retry_after_secs, detail(e, sender))
}

/// The answer to a hook's request: `status` with what was accepted, or the refusal.
pub fn answer(
    result: &Result<Accepted, IntakeError>,
    status: u16,
    sender: Sender,
    retry_after_secs: u64,
) -> Response<Body> {
    match result {
        Ok(Accepted::Stored { events, .. }) => {
            tracing::info!(events, "request accepted");
            json_response(status, json!({"accepted": events}))
        }
        Ok(Accepted::Duplicate) => json_response(status, json!({"accepted": 0, "duplicate": true})),
        Ok(Accepted::Ignored) => json_response(status, json!({"accepted": 0, "ignored": true})),
        Err(e) => refusal(e, sender, retry_after_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_fault_is_never_a_5xx_for_an_esp() {
        let permanent = IntakeError::Store(StoreError::Permanent("broken".into()));
        assert_eq!((status(&permanent, Sender::Connector), status(&permanent, Sender::Esp)), (500, 429));
        assert_eq!(detail(&permanent, Sender::Esp), json!({"problem": "try again shortly"}));
        assert_eq!(detail(&permanent, Sender::Connector), json!({"problem": "store failure: broken"}));
        let malformed = IntakeError::Malformed { path: Some("events[0]".into()), problem: "missing".into() };
        assert_eq!(detail(&malformed, Sender::Connector), json!({"path": "events[0]", "problem": "missing"}));
    }
}
