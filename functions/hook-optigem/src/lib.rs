//! hook-optigem: `POST /connector/{tenant}/events`. Translates HTTP to the ingest use case and back;
//! decides nothing itself. Answers 202 only after the durable inbox write; bad input gets a clear 4xx and
//! changes nothing; a transient fault gets 429 with `Retry-After`, so the connector retries.

use lambda_http::{Body, Request, RequestExt, Response};
use optisync_app::optigem::{Accepted, OptigemIngest};
use optisync_connector::signature::SignedHeaders;
use optisync_domain::TenantId;
use optisync_lambda::{error_response, json_response};
use optisync_ports::{BusEvent, Clock, EventPublisher};
use serde_json::json;
use std::sync::Arc;

/// The largest body accepted (200 events of about 1 KB fit well).
pub const MAX_BODY_BYTES: usize = 512 * 1024;
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

/// The tenant from the route's path parameter, or from the path `/connector/{tenant}/events`.
fn tenant_of(req: &Request) -> Option<TenantId> {
    if let Some(t) = req.path_parameters().first("tenant") {
        return Some(TenantId::new(t));
    }
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["connector", tenant, "events"] if !tenant.is_empty() => Some(TenantId::new(*tenant)),
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
    let headers = SignedHeaders {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    match deps.ingest.accept(&tenant, headers, body, deps.clock.now()).await {
        Ok(Accepted::Stored { events, key }) => {
            // The entry is durable; if the nudge fails, the scheduler's sweep re-drives it.
            if let Err(e) = deps.publisher.publish(&[BusEvent::InboxReady { tenant: tenant.clone(), key }]).await {
                tracing::warn!(error = %e, "inbox entry stored, but the worker was not notified; the sweep will re-drive it");
            }
            tracing::info!(events, "change events accepted");
            json_response(202, json!({"accepted": events}))
        }
        Ok(Accepted::Duplicate) => json_response(202, json!({"accepted": 0, "duplicate": true})),
        Err(e) => {
            let status = e.status();
            tracing::info!(status, reason = %e, "change events refused");
            error_response(status, RETRY_AFTER_SECS, e.detail())
        }
    }
}
