//! hook-cleverreach: `/hooks/cleverreach/{tenant}/{account}` — CleverReach webhooks (R-E1…E5).
//!
//! * `GET ?secret=…` — the verification handshake: answered `"{verify_token} {secret}"` as plain text, only
//!   while optisync registers the account's hooks (404 otherwise, L4).
//! * `POST` with `X-CR-Calltoken` — a receiver event. Payloads carry ids only, so the event is stored as a
//!   re-read for the worker, which reads the receiver and applies what it shows then.
//!
//! Translates HTTP to the intake use case ([`optisync_cleverreach::CleverReachSource`]: tokens, call
//! token, parse, re-read, key) and back. Every store fault answers 429 (CleverReach's retries are not
//! documented; a 5xx could lose the event).

use lambda_http::{Body, Request, Response};
use optisync_app::intake::{Accepted, Hook, Intake, announce, owned_by};
use optisync_cleverreach::CleverReachSource;
use optisync_domain::{AccountId, EspAccount, Provider, TenantId};
use optisync_lambda::intake::{Sender, answer, refusal};
use optisync_lambda::json_response;
use optisync_ports::{Clock, EventPublisher, Inbox, SecretStore, Tenants};
use serde_json::json;
use std::sync::Arc;

/// The largest body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Seconds CleverReach is asked to wait after a 429.
pub const RETRY_AFTER_SECS: u64 = 10;

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    /// The intake of CleverReach webhooks (and the handshake).
    pub intake: Intake<CleverReachSource>,
    /// Who owns which account: the URL's tenant must (M2).
    pub tenants: Arc<dyn Tenants>,
    /// Tells the worker.
    pub publisher: Arc<dyn EventPublisher>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    /// The handler over its ports: webhook tokens, the account records, the inbox, the bus and the clock.
    pub fn new(
        secrets: Arc<dyn SecretStore>,
        tenants: Arc<dyn Tenants>,
        inbox: Arc<dyn Inbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { intake: Intake::new(CleverReachSource::new(secrets), inbox), tenants, publisher, clock }
    }
}

/// Tenant and account of the request.
fn route(req: &Request) -> Option<(TenantId, AccountId)> {
    optisync_lambda::hook_route(req, "cleverreach").map(|(t, a)| (TenantId::new(t), AccountId::new(a)))
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
    // The cheap refusals first (method, route, size): they need no store read (T20, T33).
    let method = req.method().as_str().to_owned();
    if method != "GET" && method != "POST" {
        return json_response(405, json!({"error": {"problem": "use GET (handshake) or POST"}}));
    }
    let Some((tenant, account)) = route(&req) else {
        return json_response(404, json!({"error": {"problem": "expected /hooks/cleverreach/{tenant}/{account}"}}));
    };
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return json_response(413, json!({"error": {"problem": format!("larger than {MAX_BODY_BYTES} bytes")}}));
    }
    let esp = EspAccount { provider: Provider::CleverReach, account: account.clone() };
    if let Err(e) = owned_by(deps.tenants.as_ref(), &tenant, &esp).await {
        return refusal(&e, Sender::Esp, RETRY_AFTER_SECS);
    }
    if method == "GET" {
        return match deps.intake.source().handshake(&account, req.uri().query(), deps.clock.now()).await {
            Ok(answer) => Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(Body::Text(answer))
                .expect("static response"),
            Err(e) => refusal(&e, Sender::Esp, RETRY_AFTER_SECS),
        };
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let hook = Hook { tenant: &tenant, account: Some(&account), header: &header, body, now: deps.clock.now() };
    let result = deps.intake.accept(&hook).await;
    if let Ok(Accepted::Stored { key, .. }) = &result {
        announce(deps.publisher.as_ref(), &tenant, key).await;
    }
    answer(&result, 200, Sender::Esp, RETRY_AFTER_SECS)
}
