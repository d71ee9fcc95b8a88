//! connector-api: what the OPTIGEM connector pulls. `GET /connector/{tenant}/commands?after=N&limit=M`
//! returns the tenant's command feed after sequence N, oldest first. Every request is signed (Standard
//! Webhooks, the body of a GET is empty). The result and snapshot-page routes of the contract answer 501
//! until they are built.

use lambda_http::{Body, Request, Response};
use optisync_app::optigem::authenticate;
use optisync_connector::signature::SignedHeaders;
use optisync_domain::TenantId;
use optisync_lambda::{json_response, retry_later};
use optisync_ports::{Clock, SecretStore, StateStore};
use serde_json::json;
use std::sync::Arc;

/// Most commands one page returns.
pub const MAX_PAGE: usize = 500;
/// Seconds the connector waits after a 429.
pub const RETRY_AFTER_SECS: u64 = 5;
/// Commands per page when the connector does not say.
pub const DEFAULT_PAGE: usize = 100;

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    /// The tenants' signing secrets.
    pub secrets: Arc<dyn SecretStore>,
    /// The command feed.
    pub store: Arc<dyn StateStore>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

fn bad(path: &str, problem: &str) -> Response<Body> {
    json_response(400, json!({"error": {"path": path, "problem": problem}}))
}

fn query(req: &Request, name: &str) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Handles one request.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let segments: Vec<String> = req.uri().path().trim_matches('/').split('/').map(str::to_owned).collect();
    let (tenant, route) = match segments.as_slice() {
        [c, tenant, rest @ ..] if c == "connector" && !tenant.is_empty() => {
            (TenantId::new(tenant.as_str()), rest.to_vec())
        }
        _ => return json_response(404, json!({"error": {"problem": "expected /connector/{tenant}/…"}})),
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let headers = SignedHeaders {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    let body: &[u8] = req.body().as_ref();
    if let Err(e) = authenticate(deps.secrets.as_ref(), &tenant, headers, body, deps.clock.now()).await {
        let status = e.status();
        let body = json!({"error": {"problem": e.to_string()}});
        return if status == 429 { retry_later(RETRY_AFTER_SECS, body) } else { json_response(status, body) };
    }
    match (req.method().as_str(), route.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
        ("GET", ["commands"]) => {
            let Some(after) = query(&req, "after") else {
                return bad("after", "required: the last sequence executed, 0 at the start");
            };
            let Ok(after) = after.parse::<u64>() else { return bad("after", "must be a whole number") };
            let limit = match query(&req, "limit").map(|l| l.parse::<usize>()) {
                None => DEFAULT_PAGE,
                Some(Ok(l)) if (1..=MAX_PAGE).contains(&l) => l,
                Some(_) => return bad("limit", "must be between 1 and 500"),
            };
            match deps.store.commands(&tenant, after, limit).await {
                Ok(page) => {
                    let commands: Vec<_> =
                        page.into_iter().map(|(seq, command)| json!({"seq": seq, "command": command})).collect();
                    json_response(200, json!({"commands": commands}))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "command feed not readable");
                    retry_later(RETRY_AFTER_SECS, json!({"error": {"problem": "try again shortly"}}))
                }
            }
        }
        ("POST", ["commands", _, "result"]) | ("PUT", ["snapshots", _, "pages", _]) => {
            json_response(501, json!({"error": {"problem": "specified in the contract, not yet served"}}))
        }
        _ => json_response(404, json!({"error": {"problem": "no such route"}})),
    }
}
