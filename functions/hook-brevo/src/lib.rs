//! hook-brevo: `POST /hooks/brevo/{tenant}/{account}` — Brevo marketing webhooks (R-E1…E5).
//!
//! Brevo signs nothing: the webhook is registered with a bearer token, kept in the secret
//! `brevo/{account}/webhook-token`. The optional secret `brevo/{account}/api-key-name` names our own API
//! key, so that `list_addition` echoes of our own writes are dropped. An accepted event is stored in the
//! inbox, then the worker is told. Brevo discards a webhook on any 5xx, so every store fault answers 429
//! and nothing accepted is lost.

use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use optisync_domain::{AccountId, Input, TenantId};
use optisync_lambda::{error_response, json_response};
use optisync_ports::{BusEvent, Clock, EventPublisher, Inbox, InboxEntry, InboxItem, InboxPut, SecretStore};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The largest body accepted.
pub const MAX_BODY_BYTES: usize = 512 * 1024;
/// Seconds Brevo is asked to wait after a 429.
pub const RETRY_AFTER_SECS: u64 = 10;

pub use optisync_brevo::webhook_token_secret as token_secret;

/// The secret with the name of our API key at that account (echo detection).
pub fn key_name_secret(account: &AccountId) -> String {
    format!("brevo/{account}/api-key-name")
}

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    /// Webhook tokens.
    pub secrets: Arc<dyn SecretStore>,
    /// The inbox.
    pub inbox: Arc<dyn Inbox>,
    /// Tells the worker.
    pub publisher: Arc<dyn EventPublisher>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// What became of a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now under this key, with this many observations.
    Stored(String, usize),
    /// Stored before.
    Duplicate,
    /// Nothing in it for the sync (opens, clicks, our own echoes): not stored.
    Ignored,
}

/// Why a webhook was refused (nothing stored): status and a message without any value of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 400, 401 or 429.
    pub status: u16,
    /// Why.
    pub problem: String,
}

/// Bearer token → parse (one event or an array) → observations → one inbox entry. Brevo has no event id
/// and may send an event again with another emission time, so key and fingerprint come from the events'
/// content (`dedupe_key`), not from the body.
pub async fn accept(
    deps: &Deps,
    tenant: &TenantId,
    account: &AccountId,
    authorization: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Outcome, Refused> {
    let busy = |_| Refused { status: 429, problem: "try again shortly".into() };
    let token = deps.secrets.get(&token_secret(account)).await.map_err(busy)?.unwrap_or_default();
    if !optisync_brevo::webhook::authenticate(authorization, &token) {
        return Err(Refused { status: 401, problem: "missing or wrong bearer token".into() });
    }
    let events =
        optisync_brevo::webhook::parse_events(body).map_err(|e| Refused { status: 400, problem: e.to_string() })?;
    let own_key = deps.secrets.get(&key_name_secret(account)).await.map_err(busy)?;
    let (mut items, mut keys) = (Vec::new(), Vec::new());
    for event in &events {
        let observed = optisync_brevo::webhook::observations(event, account, own_key.as_deref(), now);
        if observed.is_empty() {
            tracing::debug!(
                event = optisync_lambda::loggable_name(event.name()),
                "Brevo event without effect on the sync"
            );
            continue;
        }
        keys.push(optisync_brevo::webhook::dedupe_key(event));
        items.extend(observed.into_iter().map(|o| InboxItem::from(Input::Esp(o))));
    }
    if items.is_empty() {
        return Ok(Outcome::Ignored);
    }
    let hash = hex::encode(Sha256::digest(keys.join("\n").as_bytes()));
    let key = format!("brevo:{account}:{hash}");
    let count = items.len();
    let entry = InboxEntry { tenant: tenant.clone(), key: key.clone(), fingerprint: hash, items, received_at: now };
    match deps.inbox.put(&entry).await.map_err(busy)? {
        InboxPut::Stored => Ok(Outcome::Stored(key, count)),
        // The key is derived from the content, so another body under it is the same events again.
        InboxPut::Duplicate | InboxPut::Mismatch => Ok(Outcome::Duplicate),
    }
}

/// Tenant and account of the request.
fn route(req: &Request) -> Option<(TenantId, AccountId)> {
    optisync_lambda::hook_route(req, "brevo").map(|(t, a)| (TenantId::new(t), AccountId::new(a)))
}

/// Handles one request, in a span of its own (and counted, for a webhook).
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let span = optisync_lambda::telemetry::request_span("hook-brevo", &req);
    let response = tracing::Instrument::instrument(respond(deps, req), span).await;
    optisync_lambda::telemetry::count_webhook("brevo", response.status().as_u16());
    response
}

async fn respond(deps: &Deps, req: Request) -> Response<Body> {
    if req.method() != "POST" {
        return json_response(405, json!({"error": {"problem": "use POST"}}));
    }
    let Some((tenant, account)) = route(&req) else {
        return json_response(404, json!({"error": {"problem": "expected /hooks/brevo/{tenant}/{account}"}}));
    };
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return json_response(413, json!({"error": {"problem": format!("larger than {MAX_BODY_BYTES} bytes")}}));
    }
    let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    match accept(deps, &tenant, &account, authorization, body, deps.clock.now()).await {
        Ok(Outcome::Stored(key, observations)) => {
            if let Err(e) = deps.publisher.publish(&[BusEvent::InboxReady { tenant, key }]).await {
                tracing::warn!(error = %e, "webhook stored, but the worker was not notified; the sweep will re-drive it");
            }
            tracing::info!(observations, "Brevo webhook accepted");
            json_response(200, json!({"accepted": observations}))
        }
        Ok(Outcome::Duplicate) => json_response(200, json!({"accepted": 0, "duplicate": true})),
        Ok(Outcome::Ignored) => json_response(200, json!({"accepted": 0, "ignored": true})),
        Err(refused) => {
            tracing::info!(status = refused.status, reason = %refused.problem, "Brevo webhook refused");
            error_response(refused.status, RETRY_AFTER_SECS, json!({"problem": refused.problem}))
        }
    }
}
