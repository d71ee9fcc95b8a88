//! connector-api: what the OPTIGEM connector pulls and reports back.
//!
//! * `GET /connector/{tenant}/commands?after=N&limit=M` — the command feed after sequence N, oldest first;
//! * `POST /connector/{tenant}/commands/{id}/result` — the result of executing a command (204);
//! * `PUT /connector/{tenant}/snapshots/{id}/pages/{n}` — a snapshot page answering `export_newsletter`,
//!   stored in the inbox for the scheduled run that asked for it (202); the export's result wakes that run.
//!
//! Every request is signed over its method, path and query as well as its body (the optisync extension of
//! Standard Webhooks, M1; the body of a GET is empty). A result or a page sent again under its
//! `webhook-id` executes nothing; another request under a used id is 409.

use lambda_http::{Body, Request, Response};
use optisync_app::connector_requests::{FirstUse, Use, authenticate_request, first_use};
use optisync_app::intake::{Accepted, IntakeError};
use optisync_app::optigem::{accept_result, accept_snapshot_page, runs_waiting_for};
use optisync_connector::signature::{SignedHeaders, SignedRequest};
use optisync_domain::{CommandId, TenantId};
use optisync_lambda::intake::{Sender, refusal};
use optisync_lambda::{json_response, query, retry_later};
use optisync_ports::{BusEvent, Clock, EventPublisher, Inbox, SecretStore, StateStore, StoreError};
use serde_json::json;
use std::sync::Arc;

/// Most commands one page returns.
pub const MAX_PAGE: usize = 500;
/// Seconds the connector waits after a 429.
pub const RETRY_AFTER_SECS: u64 = 5;
/// Commands per page when the connector does not say.
pub const DEFAULT_PAGE: usize = 100;
/// The largest body accepted (T21): a snapshot page of 500 assignments fits, as a batch of events does at
/// hook-optigem; anything larger is 413 before the signature is checked.
// M8: the body is kept in one DynamoDB item (400 KB at most) with the inbox entry's own fields, so
// it is capped well below that.
pub const MAX_BODY_BYTES: usize = 350_000;

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    /// The tenants' signing secrets.
    pub secrets: Arc<dyn SecretStore>,
    /// The command feed.
    pub store: Arc<dyn StateStore>,
    /// Where snapshot pages wait for the scheduled run.
    pub inbox: Arc<dyn Inbox>,
    /// Wakes the scheduled runs waiting for an export.
    pub publisher: Arc<dyn EventPublisher>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl Deps {
    /// The handler over its ports: signing secrets, the command feed, the inbox, the bus and the clock.
    pub fn new(
        secrets: Arc<dyn SecretStore>,
        store: Arc<dyn StateStore>,
        inbox: Arc<dyn Inbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { secrets, store, inbox, publisher, clock }
    }
}

fn refused(e: &IntakeError) -> Response<Body> {
    refusal(e, Sender::Connector, RETRY_AFTER_SECS)
}

/// A command or snapshot id no command can have (R-K2): not found, as an unknown one is.
fn unknown(what: &str) -> Response<Body> {
    json_response(404, json!({"error": {"problem": format!("no such {what}")}}))
}

fn bad(path: &str, problem: &str) -> Response<Body> {
    json_response(400, json!({"error": {"path": path, "problem": problem}}))
}

/// Publishes `link.reconcile` for the runs waiting for this command, if it is an export.
async fn wake_waiting_runs(deps: &Deps, tenant: &TenantId, command: &CommandId) -> Result<(), StoreError> {
    let waiting = runs_waiting_for(deps.store.as_ref(), tenant, command).await?;
    if waiting.is_empty() {
        return Ok(());
    }
    let events: Vec<BusEvent> =
        waiting.into_iter().map(|(tenant, link)| BusEvent::ReconcileLink { tenant, link }).collect();
    deps.publisher.publish(&events).await
}

fn no_content() -> Response<Body> {
    Response::builder().status(204).body(Body::Empty).expect("static response")
}

fn duplicate_page() -> Response<Body> {
    json_response(202, json!({"accepted": 0, "duplicate": true}))
}

/// Remembers an executed result's or page's `webhook-id` (M1); should that fail, a repeat executes again,
/// which results and pages allow.
async fn remember(deps: &Deps, first: FirstUse) {
    if let Err(e) = first.remember(deps.inbox.as_ref(), deps.clock.now()).await {
        tracing::warn!(error = %e, "request executed; its webhook-id is not remembered");
    }
}

/// Handles one request, in a span of its own.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let span = optisync_lambda::telemetry::request_span("connector-api", &req);
    tracing::Instrument::instrument(respond(deps, req), span).await
}

async fn respond(deps: &Deps, req: Request) -> Response<Body> {
    let segments: Vec<String> = req.uri().path().trim_matches('/').split('/').map(str::to_owned).collect();
    // The tenant by the id grammar (R-K2): one no key can hold is not found, before any secret lookup.
    let (tenant, route) = match segments.as_slice() {
        [c, tenant, rest @ ..] if c == "connector" => match TenantId::parse(tenant) {
            Ok(tenant) => (tenant, rest.to_vec()),
            Err(_) => return json_response(404, json!({"error": {"problem": "no such tenant"}})),
        },
        _ => return json_response(404, json!({"error": {"problem": "expected /connector/{tenant}/…"}})),
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
    let signed = SignedRequest { method: req.method().as_str(), path: req.uri().path(), query: req.uri().query() };
    let webhook_id =
        match authenticate_request(deps.secrets.as_ref(), &tenant, headers, &signed, body, deps.clock.now()).await {
            Ok(id) => id,
            Err(e) => return refused(&e),
        };
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
        ("POST", ["commands", id, "result"]) => {
            let Ok(command) = CommandId::parse(id) else { return unknown("command") };
            let first = match first_use(deps.inbox.as_ref(), &tenant, webhook_id, &signed, body).await {
                Ok(Use::First(first)) => first,
                Ok(Use::Repeat) => return no_content(),
                Err(e) => return refused(&e),
            };
            let now = deps.clock.now();
            match accept_result(deps.store.as_ref(), deps.inbox.as_ref(), &tenant, &command, body, now).await {
                Ok(confirmed) => {
                    remember(deps, first).await;
                    // An end OPTIGEM executed goes to the worker (R-J2: erasure mode acts on it).
                    if let Some(key) = confirmed {
                        optisync_app::intake::announce(deps.publisher.as_ref(), &tenant, &key).await;
                    }
                    // An export's result wakes the first syncs waiting for it (R-F1); the scheduler's tick
                    // wakes them too, should this fail.
                    if let Err(e) = wake_waiting_runs(deps, &tenant, &command).await {
                        tracing::warn!(error = %e, "result stored; a waiting run wakes on the next tick");
                    }
                    no_content()
                }
                Err(e) => refused(&e),
            }
        }
        ("PUT", ["snapshots", id, "pages", page]) => {
            let Ok(page) = page.parse::<u32>() else { return bad("page", "must be a whole number from 1") };
            if page == 0 {
                return bad("page", "must be a whole number from 1");
            }
            let Ok(snapshot) = CommandId::parse(id) else { return unknown("snapshot") };
            let first = match first_use(deps.inbox.as_ref(), &tenant, webhook_id, &signed, body).await {
                Ok(Use::First(first)) => first,
                Ok(Use::Repeat) => return duplicate_page(),
                Err(e) => return refused(&e),
            };
            let now = deps.clock.now();
            match accept_snapshot_page(deps.store.as_ref(), deps.inbox.as_ref(), &tenant, &snapshot, page, body, now)
                .await
            {
                Ok(Accepted::Stored { events, .. }) => {
                    remember(deps, first).await;
                    // The scheduled run that asked for the export applies the pages once it is reported done.
                    tracing::info!(events, page, "snapshot page accepted");
                    json_response(202, json!({"accepted": events}))
                }
                Ok(Accepted::Duplicate) => {
                    remember(deps, first).await;
                    duplicate_page()
                }
                Ok(Accepted::Ignored) => {
                    remember(deps, first).await;
                    json_response(202, json!({"accepted": 0, "ignored": true}))
                }
                Err(e) => refused(&e),
            }
        }
        _ => json_response(404, json!({"error": {"problem": "no such route"}})),
    }
}
