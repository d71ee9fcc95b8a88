//! hook-brevo: `POST /hooks/brevo/{tenant}/{account}` — Brevo marketing webhooks (R-E1…E5).
//!
//! Translates HTTP to the intake use case ([`optisync_brevo::BrevoSource`]: bearer token, parse,
//! observations, a content-derived key) and back; decides nothing itself. An accepted event is stored in
//! the inbox, then the worker is told. Brevo discards a webhook on any 5xx, so every store fault answers
//! 429 and nothing accepted is lost.
//!
//! M3: optionally only Brevo's source ranges may call ([`sources`], 403 otherwise); a request holds at
//! most 500 events and a `list_addition` at most 100 lists (400 otherwise, see `optisync_brevo::webhook`);
//! during a token rotation the previous bearer token is accepted too.

pub mod sources;

use lambda_http::{Body, Request, RequestExt, Response};
use optisync_app::intake::{Accepted, Hook, Intake, announce, owned_by};
use optisync_brevo::BrevoSource;
use optisync_domain::{AccountId, EspAccount, Provider, TenantId};
use optisync_lambda::intake::{Sender, answer, refusal};
use optisync_lambda::json_response;
use optisync_ports::{Clock, EventPublisher, Inbox, SecretStore, Tenants};
use serde_json::json;
pub use sources::SourceRanges;
use std::sync::Arc;

/// The largest body accepted.
// M8: the body is kept in one DynamoDB item (400 KB at most) with the inbox entry's own fields, so
// it is capped well below that.
pub const MAX_BODY_BYTES: usize = 350_000;
/// Seconds Brevo is asked to wait after a 429.
pub const RETRY_AFTER_SECS: u64 = 10;

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    /// The intake of Brevo webhooks.
    pub intake: Intake<BrevoSource>,
    /// Who owns which account: the URL's tenant must (M2).
    pub tenants: Arc<dyn Tenants>,
    /// Tells the worker.
    pub publisher: Arc<dyn EventPublisher>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Where Brevo's calls may come from (M3); off unless configured.
    pub sources: SourceRanges,
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
        let intake = Intake::new(BrevoSource::new(secrets), inbox);
        Self { intake, tenants, publisher, clock, sources: SourceRanges::default() }
    }

    /// The same handler, admitting calls from these ranges only (M3).
    pub fn with_sources(mut self, sources: SourceRanges) -> Self {
        self.sources = sources;
        self
    }
}

/// The caller's address as API Gateway saw it (`requestContext.http.sourceIp`).
fn source_ip(req: &Request) -> Option<&str> {
    match req.request_context_ref()? {
        lambda_http::request::RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref(),
        _ => None,
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
    if !deps.sources.admits(source_ip(&req)) {
        // M3: never the address in the answer or the log line.
        tracing::info!(status = 403, "request refused: source outside the configured Brevo ranges");
        return json_response(403, json!({"error": {"problem": "this hook takes calls from Brevo's addresses only"}}));
    }
    let Some((tenant, account)) = route(&req) else {
        return json_response(404, json!({"error": {"problem": "expected /hooks/brevo/{tenant}/{account}"}}));
    };
    // The size before the owner: an oversized body costs no store read (T20).
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return json_response(413, json!({"error": {"problem": format!("larger than {MAX_BODY_BYTES} bytes")}}));
    }
    let esp = EspAccount { provider: Provider::Brevo, account: account.clone() };
    if let Err(e) = owned_by(deps.tenants.as_ref(), &tenant, &esp).await {
        return refusal(&e, Sender::Esp, RETRY_AFTER_SECS);
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let hook = Hook { tenant: &tenant, account: Some(&account), header: &header, body, now: deps.clock.now() };
    let result = deps.intake.accept(&hook).await;
    if let Ok(Accepted::Stored { key, .. }) = &result {
        announce(deps.publisher.as_ref(), &tenant, key).await;
    }
    answer(&result, 200, Sender::Esp, RETRY_AFTER_SECS)
}
