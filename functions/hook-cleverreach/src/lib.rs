//! hook-cleverreach: `/hooks/cleverreach/{tenant}/{account}` — CleverReach webhooks (R-E1…E5).
//!
//! * `GET ?secret=…` — the verification handshake: answered `"{verify_token} {secret}"` as plain text.
//! * `POST` with `X-CR-Calltoken` — a receiver event. Payloads carry ids only, so the event is stored as a
//!   re-read for the worker, which reads the receiver and applies what it shows then.
//!
//! The tokens are the secret `cleverreach/{account}/webhook` =
//! `{"verify_token": "…", "call_tokens": ["…", …]}` — one call token per registration (CleverReach answers
//! each event registration with its own); a single `"call_token"` is accepted too.
//! Every store fault answers 429 (CleverReach's retries are not documented; a 5xx could lose the event).

use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use optisync_cleverreach::Secret;
use optisync_cleverreach::webhook::{WebhookEvent, authenticate, parse_event, verification_answer_for_query};
use optisync_domain::{AccountId, EspAccount, ListId, Provider, TenantId};
use optisync_lambda::{error_response, json_response};
use optisync_ports::{BusEvent, Clock, EventPublisher, Inbox, InboxEntry, InboxItem, InboxPut, Reread, SecretStore};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The largest body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Seconds CleverReach is asked to wait after a 429.
pub const RETRY_AFTER_SECS: u64 = 10;
/// Deliveries of the same body within this window are one event (see [`accept`]).
pub const DEDUP_WINDOW_SECS: i64 = 600;

pub use optisync_cleverreach::webhook_secret;

#[derive(serde::Deserialize)]
struct Tokens {
    verify_token: String,
    /// The call token of one registration.
    #[serde(default)]
    call_token: Option<String>,
    /// Every registration (one per event) gets a call token of its own.
    #[serde(default)]
    call_tokens: Vec<String>,
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

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now under this key.
    Stored(String),
    /// Stored before.
    Duplicate,
    /// Nothing in it for the sync (group, form, filter events; a receiver event without an id): not stored.
    Ignored,
}

/// Why a request was refused (nothing stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 400, 401 or 429.
    pub status: u16,
    /// Why, without any value of the body.
    pub problem: String,
}

fn busy<E>(_: E) -> Refused {
    Refused { status: 429, problem: "try again shortly".into() }
}

async fn tokens(deps: &Deps, account: &AccountId) -> Result<Tokens, Refused> {
    let raw = deps.secrets.get(&webhook_secret(account)).await.map_err(busy)?;
    let raw = raw.ok_or(Refused { status: 401, problem: "unknown account".into() })?;
    serde_json::from_str(&raw).map_err(|_| {
        tracing::error!("the CleverReach webhook secret is not the expected JSON");
        busy(())
    })
}

/// The answer to the verification GET.
pub async fn handshake(deps: &Deps, account: &AccountId, query: Option<&str>) -> Result<String, Refused> {
    let tokens = tokens(deps, account).await?;
    verification_answer_for_query(&Secret::new(tokens.verify_token), query)
        .map_err(|e| Refused { status: 400, problem: e.to_string() })
}

/// Call token → parse → a re-read of the receiver in the inbox.
///
/// CleverReach sends no event id. A re-read applies the receiver's state at the time it runs, so applying
/// an event twice is harmless and deduplication only saves work: the key is the body's hash within a
/// ten-minute window, which collapses retries without merging two real changes made apart in time.
pub async fn accept(
    deps: &Deps,
    tenant: &TenantId,
    account: &AccountId,
    call_token: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Outcome, Refused> {
    let tokens = tokens(deps, account).await?;
    let known = tokens.call_token.into_iter().chain(tokens.call_tokens);
    let mut valid = false;
    for expected in known {
        // Every token is compared (each in constant time), so timing tells nothing about which matched.
        valid |= authenticate(&Secret::new(expected), call_token).is_ok();
    }
    if !valid {
        return Err(Refused { status: 401, problem: "missing or wrong X-CR-Calltoken".into() });
    }
    let changed = match parse_event(body).map_err(|e| Refused { status: 400, problem: e.to_string() })? {
        WebhookEvent::Receiver(changed) => changed,
        WebhookEvent::Other { event } => {
            tracing::debug!(
                event = optisync_lambda::loggable_name(&event),
                "CleverReach event without effect on the sync"
            );
            return Ok(Outcome::Ignored);
        }
    };
    let Some(receiver) = changed.pool_id.clone() else {
        tracing::info!(event = changed.kind.as_str(), "receiver event without an id; left to the reconciliation");
        return Ok(Outcome::Ignored);
    };
    let reread = Reread {
        esp: EspAccount { provider: Provider::CleverReach, account: account.clone() },
        list: ListId::new(changed.group_id.clone()),
        receiver,
        event: changed.kind.as_str().to_owned(),
        received_at: now,
    };
    let fingerprint = hex::encode(Sha256::digest(body));
    let key = format!("cleverreach:{account}:{fingerprint}:{}", now.timestamp().div_euclid(DEDUP_WINDOW_SECS));
    let entry = InboxEntry {
        tenant: tenant.clone(),
        key: key.clone(),
        fingerprint,
        items: vec![InboxItem::Reread { reread }],
        received_at: now,
    };
    match deps.inbox.put(&entry).await.map_err(busy)? {
        InboxPut::Stored => Ok(Outcome::Stored(key)),
        InboxPut::Duplicate | InboxPut::Mismatch => Ok(Outcome::Duplicate),
    }
}

/// Tenant and account of the request.
fn route(req: &Request) -> Option<(TenantId, AccountId)> {
    optisync_lambda::hook_route(req, "cleverreach").map(|(t, a)| (TenantId::new(t), AccountId::new(a)))
}

fn refused(r: Refused) -> Response<Body> {
    tracing::info!(status = r.status, reason = %r.problem, "CleverReach webhook refused");
    error_response(r.status, RETRY_AFTER_SECS, json!({"problem": r.problem}))
}

/// Handles one request, in a span of its own (and counted, for a webhook).
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let span = optisync_lambda::telemetry::request_span("hook-cleverreach", &req);
    let post = req.method() == "POST";
    let response = tracing::Instrument::instrument(respond(deps, req), span).await;
    if post {
        optisync_lambda::telemetry::count_webhook("cleverreach", response.status().as_u16());
    }
    response
}

async fn respond(deps: &Deps, req: Request) -> Response<Body> {
    let Some((tenant, account)) = route(&req) else {
        return json_response(404, json!({"error": {"problem": "expected /hooks/cleverreach/{tenant}/{account}"}}));
    };
    match req.method().as_str() {
        "GET" => match handshake(deps, &account, req.uri().query()).await {
            Ok(answer) => Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(Body::Text(answer))
                .expect("static response"),
            Err(r) => refused(r),
        },
        "POST" => {
            let body: &[u8] = req.body().as_ref();
            if body.len() > MAX_BODY_BYTES {
                return json_response(413, json!({"error": {"problem": "body too large"}}));
            }
            let token = req.headers().get("x-cr-calltoken").and_then(|v| v.to_str().ok());
            match accept(deps, &tenant, &account, token, body, deps.clock.now()).await {
                Ok(Outcome::Stored(key)) => {
                    if let Err(e) = deps.publisher.publish(&[BusEvent::InboxReady { tenant, key }]).await {
                        tracing::warn!(error = %e, "event stored, but the worker was not notified; the sweep will re-drive it");
                    }
                    json_response(200, json!({"accepted": 1}))
                }
                Ok(Outcome::Duplicate) => json_response(200, json!({"accepted": 0, "duplicate": true})),
                Ok(Outcome::Ignored) => json_response(200, json!({"accepted": 0, "ignored": true})),
                Err(r) => refused(r),
            }
        }
        _ => json_response(405, json!({"error": {"problem": "use GET (handshake) or POST"}})),
    }
}
