//! hook-optigem: `POST /connector/{tenant}/events`. Translates HTTP to the ingest use case and back;
//! decides nothing itself. Answers 202 only after the durable inbox write; bad input gets a clear 4xx and
//! changes nothing; a transient fault gets 429 with `Retry-After`, so the connector retries.

use lambda_http::{Body, Request, RequestExt, Response};
use optisync_app::intake::{Accepted, Hook, Intake, announce};
use optisync_app::optigem::OptigemIngest;
use optisync_domain::TenantId;
use optisync_lambda::intake::{Sender, answer};
use optisync_lambda::json_response;
use optisync_ports::{Clock, EventPublisher, Inbox, SecretStore};
use serde_json::json;
use std::sync::Arc;

/// The largest body accepted (200 events of about 1 KB fit well).
// M8: the body is kept in one DynamoDB item (400 KB at most) with the inbox entry's own fields, so
// it is capped well below that.
pub const MAX_BODY_BYTES: usize = 350_000;
/// Seconds the connector waits after a 429.
pub const RETRY_AFTER_SECS: u64 = 5;

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    /// The ingest use case.
    pub ingest: OptigemIngest,
    /// Where to tell the worker that an inbox entry is ready.
    pub publisher: Arc<dyn EventPublisher>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    /// The handler over its ports: signing secrets, the inbox, the bus and the clock.
    pub fn new(
        secrets: Arc<dyn SecretStore>,
        inbox: Arc<dyn Inbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { ingest: Intake::optigem(secrets, inbox), publisher, clock }
    }
}

/// The tenant from the route's path parameter, or from the path `/connector/{tenant}/events`, by the id
/// grammar (R-K2): a tenant no key can hold (`a#b`, `a/b`, 300 characters, a dry run's `…~preview`) is
/// not found, before any secret is looked up (T27).
fn tenant_of(req: &Request) -> Option<TenantId> {
    if let Some(t) = req.path_parameters().first("tenant") {
        return TenantId::parse(t).ok();
    }
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["connector", tenant, "events"] => TenantId::parse(tenant).ok(),
        _ => None,
    }
}

/// Handles one request, in a span of its own (and counted, for a webhook).
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let span = optisync_lambda::telemetry::request_span("hook-optigem", &req);
    let response = tracing::Instrument::instrument(respond(deps, req), span).await;
    optisync_lambda::telemetry::count_webhook("optigem", response.status().as_u16());
    response
}

async fn respond(deps: &Deps, req: Request) -> Response<Body> {
    if req.method() != "POST" {
        return json_response(405, json!({"error": {"problem": "use POST"}}));
    }
    let Some(tenant) = tenant_of(&req) else {
        return json_response(404, json!({"error": {"problem": "expected /connector/{tenant}/events"}}));
    };
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return json_response(
            413,
            json!({"error": {"path": "body", "problem": format!("larger than {MAX_BODY_BYTES} bytes")}}),
        );
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let hook = Hook { tenant: &tenant, account: None, header: &header, body, now: deps.clock.now() };
    let result = deps.ingest.accept(&hook).await;
    if let Ok(Accepted::Stored { key, .. }) = &result {
        announce(deps.publisher.as_ref(), &tenant, key).await;
    }
    answer(&result, 202, Sender::Connector, RETRY_AFTER_SECS)
}
