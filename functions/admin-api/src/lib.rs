//! admin-api: the admin HTTP API over [`optisync_app::admin::Admin`], described by
//! `docs/admin-openapi.yaml` (tested against it). Every `/admin/…` route is IAM-authorised in AWS (API
//! Gateway checks the signature; the handler checks it did) and needs the configured admin token in the
//! local runner. The CleverReach OAuth routes are reached by the admin's browser, without the admin's
//! credentials (M4): `GET /oauth/cleverreach/start` by the single-use ticket of the link
//! `POST …/authorize` handed out (it sets a cookie and redirects to CleverReach), and `GET
//! /oauth/cleverreach/callback` by the signed single-use `state` together with that cookie.
//!
//! Refusals are JSON: `{"error": {"problem": "…", "fields": [{"field": "…", "problem": "…"}]}}`: 400 for a
//! body that is not the JSON asked for (naming the field), 422 for one that does not fit (naming the
//! field), 401/403 without authorisation, 404 for unknown ids, 409 for conflicts, 429 (with
//! `retry-after`) when the store or an ESP is busy. Nothing is written on any refusal.

// A refusal is the response itself, built once per request: its size does not matter.
#![allow(clippy::result_large_err)]

pub mod console;

use lambda_http::{Body, Request, RequestExt, Response};
use optisync_app::admin::{
    Admin, AdminConfig, AdminError, ApprovalPage, DecisionRequest, FieldProblem, LinkRequest, MAX_APPROVAL_PAGE,
    SubjectRequest,
};
use optisync_app::approvals::ApprovalView;
use optisync_app::reconcile::Reconciler;
use optisync_domain::{AccountId, EspAccount, LinkId, Provider, TenantId, TenantSettings};
use optisync_lambda::{error_response, json_response, query};
use optisync_ports::{
    Clock, EspDirectory, EspGateway, EspLister, EventPublisher, Inbox, SecretStore, StateStore, StoreError,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

/// Seconds a client waits after a 429.
pub const RETRY_AFTER_SECS: u64 = 5;
/// The largest body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Approval entries per page when the client does not say.
pub const DEFAULT_APPROVAL_PAGE: usize = 20;
/// Deletion reports per page when the client does not say.
pub const DEFAULT_REPORT_PAGE: usize = 20;
/// Dry-run lines when the client does not say.
pub const DEFAULT_PREVIEW_LINES: usize = 200;

/// How `/admin/…` requests are authorised.
#[derive(Clone)]
pub enum Auth {
    /// In AWS: API Gateway's IAM authoriser; the handler refuses a request it did not authorise.
    Iam,
    /// Locally: `Authorization: Bearer <token>`.
    Token(String),
}

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    /// The use cases.
    pub admin: Admin,
    /// How requests are authorised.
    pub auth: Auth,
    /// The secret store (the console's session key).
    pub secrets: Arc<dyn SecretStore>,
    /// The admin console (`None`: its routes answer 404).
    pub console: Option<Arc<console::Console>>,
}

impl Deps {
    /// The handler over its ports: state (also the scheduled runs' inbox), secrets, the ESPs, the bus and
    /// the clock, with the admin's settings and how requests are authenticated.
    #[allow(clippy::too_many_arguments)]
    pub fn new<E: EspDirectory + EspGateway + EspLister + 'static>(
        store: Arc<dyn StateStore>,
        inbox: Arc<dyn Inbox>,
        secrets: Arc<dyn SecretStore>,
        esp: Arc<E>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
        config: AdminConfig,
        auth: Auth,
    ) -> Self {
        let reconciler = Reconciler::new(store.clone(), esp.clone(), esp.clone(), inbox, clock.clone());
        let admin = Admin::new(store, secrets.clone(), esp, publisher, reconciler, clock, config);
        Self { admin, auth, secrets, console: None }
    }

    /// With the admin console at `/` and `/console/…`.
    pub fn with_console(mut self, console: console::Console) -> Self {
        self.console = Some(Arc::new(console));
        self
    }
}

fn refusal(status: u16, problem: &str, fields: &[FieldProblem]) -> Response<Body> {
    let mut error = json!({ "problem": problem });
    if !fields.is_empty() {
        error["fields"] = json!(fields);
    }
    error_response(status, RETRY_AFTER_SECS, error)
}

fn not_found(what: &str) -> Response<Body> {
    refusal(404, &format!("no such {what}"), &[])
}

/// The response for a refused use case.
fn refused(e: &AdminError) -> Response<Body> {
    match e {
        AdminError::Invalid(fields) => refusal(422, "the request cannot be applied", fields),
        AdminError::NotFound(what) => not_found(what),
        AdminError::Conflict(why) => refusal(409, why, &[]),
        AdminError::EspBusy { retry_after_secs } => {
            let body = json!({"error": {"problem": "the ESP is busy or unreachable; try again shortly"}});
            optisync_lambda::retry_later(retry_after_secs.unwrap_or(RETRY_AFTER_SECS).max(1), body)
        }
        AdminError::EspRefused(_) => refusal(502, "the ESP refused the request", &[]),
        AdminError::Store(StoreError::Transient(_)) => refusal(429, "try again shortly", &[]),
        AdminError::Store(StoreError::Conflict) => refusal(409, "changed meanwhile: read it again and retry", &[]),
        AdminError::Store(StoreError::Permanent(e)) => {
            tracing::error!(error = %e, "store failure");
            refusal(500, "internal error", &[])
        }
    }
}

fn result<T>(status: u16, outcome: Result<T, AdminError>, body: impl FnOnce(T) -> Value) -> Response<Body> {
    match outcome {
        Ok(value) => json_response(status, body(value)),
        Err(e) => refused(&e),
    }
}

/// A JSON body of type `T`, or a 400 naming the field that does not fit.
fn parse<T: DeserializeOwned>(req: &Request) -> Result<T, Response<Body>> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(refusal(413, "the body is too large", &[]));
    }
    let json = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !json.starts_with("application/json") {
        return Err(refusal(415, "send the body as application/json", &[]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { optisync_domain::decode_path(&path) };
        // serde's message quotes the value sent: only its kind is told (R-J5, M10).
        let problem = optisync_domain::decode_problem(&e.inner().to_string());
        // A missing field is reported at its parent: name the field itself.
        let missing = problem.strip_prefix("missing field `").and_then(|rest| rest.split('`').next());
        let field = match missing {
            Some(name) if path.is_empty() => name.to_owned(),
            Some(name) => format!("{path}.{name}"),
            None => path,
        };
        refusal(400, "the body is not what this route takes", &[FieldProblem::new(field, problem)])
    })?;
    // Nothing may follow the JSON value (L8).
    de.end().map_err(|_| refusal(400, "the body is not what this route takes", &[]))?;
    Ok(value)
}

/// A page size from the query: absent → `default`; else a whole number from 1 to `max`.
fn limit(req: &Request, default: usize, max: usize) -> Result<usize, Response<Body>> {
    match query(req, "limit") {
        None => Ok(default),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => {
                Err(refusal(400, "bad query", &[FieldProblem::new("limit", format!("a whole number from 1 to {max}"))]))
            }
        },
    }
}

/// Whether the request may use the `/admin` routes; the refusal otherwise.
fn authorised(deps: &Deps, req: &Request) -> Result<(), Response<Body>> {
    match &deps.auth {
        Auth::Iam => {
            let signed = match req.request_context() {
                lambda_http::request::RequestContext::ApiGatewayV2(ctx) => {
                    ctx.authorizer.as_ref().is_some_and(|a| a.iam.is_some())
                }
                _ => false,
            };
            if signed { Ok(()) } else { Err(refusal(403, "the admin API needs IAM-signed requests", &[])) }
        }
        Auth::Token(token) => {
            let given = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !given.is_empty() && bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.as_bytes())) {
                Ok(())
            } else {
                let mut response = refusal(401, "missing or wrong admin token", &[]);
                response
                    .headers_mut()
                    .insert("www-authenticate", lambda_http::http::HeaderValue::from_static("Bearer"));
                Err(response)
            }
        }
    }
}

fn provider(name: &str) -> Option<Provider> {
    match name {
        "brevo" => Some(Provider::Brevo),
        "cleverreach" => Some(Provider::CleverReach),
        _ => None,
    }
}

/// An approval entry as the API shows it: the ESP's data, consent evidence, ranked suggestions.
pub fn approval_json(view: &ApprovalView) -> Value {
    let e = &view.entry;
    json!({
        "email": e.email.as_str(),
        "first_name": e.signup.first_name.as_ref().map(|n| n.expose()),
        "last_name": e.signup.last_name.as_ref().map(|n| n.expose()),
        "consent": {
            "signup_at": e.signup.evidence.signup_at,
            "confirmed_at": e.signup.evidence.confirmed_at,
            "source": e.signup.evidence.source,
            "ip": e.signup.evidence.ip.as_ref().map(|ip| ip.expose()),
        },
        "first_seen": e.first_seen,
        "last_seen": e.last_seen,
        "signups": e.signups,
        "status": e.status,
        "decision": e.decision,
        "matched": view.matched,
        "suggestions": view.suggestions,
    })
}

fn page_json(page: ApprovalPage) -> Value {
    json!({
        "entries": page.entries.iter().map(approval_json).collect::<Vec<_>>(),
        "next": page.next,
    })
}

/// Handles one request, in a span of its own.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let span = optisync_lambda::telemetry::request_span("admin-api", &req);
    tracing::Instrument::instrument(respond(deps, req), span).await
}

async fn respond(deps: &Deps, req: Request) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().as_str().to_owned();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["oauth", "cleverreach", "start"]) => return oauth_start(deps, &req).await,
        (_, [""] | ["console", ..]) => {
            return match &deps.console {
                Some(console) => console::handle(deps, console, req).await,
                None => not_found("route"),
            };
        }
        ("GET", ["oauth", "cleverreach", "callback"]) => return oauth_callback(deps, &req).await,
        _ => {}
    }
    let ["admin", "tenants", tenant, rest @ ..] = segments.as_slice() else {
        return not_found("route");
    };
    if let Err(response) = authorised(deps, &req) {
        return response;
    }
    let Ok(tenant) = TenantId::parse(tenant) else {
        return not_found("tenant");
    };
    let called_at;
    let admin = if deps.admin.public_base_url().is_empty() {
        // No configured URL: the webhooks point at the host the API is called at (API Gateway's).
        let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        called_at = deps.admin.clone().with_public_base_url(format!("https://{host}"));
        &called_at
    } else {
        &deps.admin
    };
    match (method.as_str(), rest) {
        ("GET", []) => result(200, admin.tenant(&tenant).await, |t| json!(t)),
        ("PUT", ["settings"]) => match parse::<StrictSettings>(&req) {
            Ok(settings) => result(200, admin.put_settings(&tenant, &settings.into()).await, |t| json!(t)),
            Err(response) => response,
        },
        ("POST", ["signing-secrets"]) => result(201, admin.rotate_signing_secret(&tenant).await, |s| json!(s)),
        ("DELETE", ["signing-secrets", id]) => {
            result(200, admin.retire_signing_secret(&tenant, id).await, |t| json!(t))
        }
        ("GET", ["accounts"]) => result(200, admin.accounts(&tenant).await, |a| json!({"accounts": a})),
        ("PUT", ["accounts", "brevo", account]) => match parse::<BrevoKey>(&req) {
            Ok(body) => {
                result(200, admin.connect_brevo(&tenant, account, &body.api_key).await, |a| json!({"account": a}))
            }
            Err(response) => response,
        },
        // M3: rotate the Brevo webhook token (the old one stays valid 24 h), or end that overlap now.
        ("POST", ["accounts", "brevo", account, "webhook-token"]) => {
            result(200, admin.rotate_brevo_webhook_token(&tenant, account).await, |t| json!(t))
        }
        ("DELETE", ["accounts", "brevo", account, "webhook-token", "previous"]) => {
            result(200, admin.retire_previous_brevo_webhook_token(&tenant, account).await, |t| json!(t))
        }
        ("POST", ["accounts", "cleverreach", account, "authorize"]) => {
            result(200, admin.start_cleverreach(&tenant, account).await, |url| json!({"authorize_url": url}))
        }
        ("GET", ["accounts", p, account]) => {
            let Some(provider) = provider(p) else { return not_found("provider") };
            let esp = EspAccount { provider, account: AccountId::new(*account) };
            result(200, admin.catalog(&tenant, &esp).await, |c| json!({"lists": c.lists, "attributes": c.attributes}))
        }
        ("GET", ["links"]) => result(200, admin.links(&tenant).await, |l| json!({"links": l})),
        ("PUT", ["links", link]) => match parse::<LinkRequest>(&req) {
            Ok(request) => match admin.put_link(&tenant, &LinkId::new(*link), request).await {
                Ok(saved) => json_response(
                    if saved.created { 201 } else { 200 },
                    json!({"link": saved.link, "warnings": saved.warnings, "replan": saved.replan}),
                ),
                Err(e) => refused(&e),
            },
            Err(response) => response,
        },
        ("GET", ["links", link]) => result(200, admin.status(&tenant, &LinkId::new(*link)).await, |s| json!(s)),
        ("POST", ["links", link, "preview"]) => {
            result(202, admin.start_preview(&tenant, &LinkId::new(*link)).await, |()| json!({"preview": "started"}))
        }
        ("GET", ["links", link, "preview"]) => {
            let limit = match limit(&req, DEFAULT_PREVIEW_LINES, optisync_app::admin::MAX_PREVIEW_LINES) {
                Ok(l) => l,
                Err(response) => return response,
            };
            result(
                200,
                admin.preview(&tenant, &LinkId::new(*link), limit).await,
                |p| json!({"finished": p.state.last.is_some(), "run": p.state, "lines": p.lines}),
            )
        }
        ("POST", ["links", link, "sync"]) => {
            result(202, admin.start_sync(&tenant, &LinkId::new(*link)).await, |l| json!({"link": l}))
        }
        ("POST", ["links", link, "confirm"]) => match admin.confirm(&tenant, &LinkId::new(*link)).await {
            Ok(true) => json_response(202, json!({"confirmed": true})),
            Ok(false) => refusal(409, "no run of this link waits for a confirmation", &[]),
            Err(e) => refused(&e),
        },
        ("POST", ["links", link, "reconcile"]) => match admin.reconcile_now(&tenant, &LinkId::new(*link)).await {
            Ok(true) => json_response(202, json!({"started": true})),
            Ok(false) => refusal(409, "the link does not sync: start its first sync", &[]),
            Err(e) => refused(&e),
        },
        ("GET", ["links", link, "counts"]) => {
            result(200, admin.count_report(&tenant, &LinkId::new(*link)).await, |c| json!(c))
        }
        ("POST", ["links", link, "unlink"]) => result(
            200,
            admin.unlink(&tenant, &LinkId::new(*link)).await,
            |(l, r)| json!({"link": l, "webhooks_removed": r}),
        ),
        ("GET", ["links", link, "approvals"]) => {
            let limit = match limit(&req, DEFAULT_APPROVAL_PAGE, MAX_APPROVAL_PAGE) {
                Ok(l) => l,
                Err(response) => return response,
            };
            let after = query(&req, "after");
            result(200, admin.approvals(&tenant, &LinkId::new(*link), after.as_deref(), limit).await, page_json)
        }
        ("POST", ["links", link, "approvals", "decisions"]) => match parse::<DecisionRequest>(&req) {
            Ok(decision) => {
                result(200, admin.decide(&tenant, &LinkId::new(*link), decision).await, |v| approval_json(&v))
            }
            Err(response) => response,
        },
        // R-J7: data-subject requests. The address is in the body, never in the URL (R-J5).
        ("POST", ["subjects", "lookup"]) => match parse::<SubjectRequest>(&req) {
            Ok(body) => result(200, admin.subject_lookup(&tenant, &body).await, |e| json!(e)),
            Err(response) => response,
        },
        ("POST", ["subjects", "erase"]) => match parse::<SubjectRequest>(&req) {
            Ok(body) => result(200, admin.subject_erase(&tenant, &body).await, |e| json!(e)),
            Err(response) => response,
        },
        // R-J2: the tenant's deletion reports, newest first.
        ("GET", ["erasure-reports"]) => {
            let limit = match limit(&req, DEFAULT_REPORT_PAGE, optisync_app::admin::MAX_REPORT_PAGE) {
                Ok(l) => l,
                Err(response) => return response,
            };
            let after = query(&req, "after");
            result(
                200,
                admin.erasure_reports(&tenant, after.as_deref(), limit).await,
                |p| json!({"reports": p.reports, "next": p.next}),
            )
        }
        _ => not_found("route"),
    }
}

/// `GET /oauth/cleverreach/start?ticket=…` (M4): the admin's browser opens the link the admin API handed
/// out; the single-use ticket is taken, the browser gets the cookie and goes on to CleverReach (302).
async fn oauth_start(deps: &Deps, req: &Request) -> Response<Body> {
    let Some(ticket) = query(req, "ticket") else {
        return refusal(400, "the start needs its ticket", &[FieldProblem::new("ticket", "required")]);
    };
    match deps.admin.open_cleverreach_ticket(&ticket).await {
        Ok(start) => Response::builder()
            .status(302)
            .header("location", start.authorize_url)
            .header("set-cookie", oauth_cookie(&start.cookie, OAUTH_COOKIE_SECS))
            .header("cache-control", "no-store")
            .body(Body::Empty)
            .expect("a status and headers always make a valid response"),
        Err(e) => refused(&e),
    }
}

/// `GET /oauth/cleverreach/callback?code&state`: CleverReach sends the admin's browser back; the state
/// must be one this service issued, unused, and come with the cookie the start set (M4).
async fn oauth_callback(deps: &Deps, req: &Request) -> Response<Body> {
    let (Some(code), Some(state)) = (query(req, "code"), query(req, "state")) else {
        let fields = [FieldProblem::new("code", "required"), FieldProblem::new("state", "required")];
        return refusal(400, "the callback needs code and state", &fields);
    };
    let cookie = browser_cookie(req);
    match deps.admin.finish_cleverreach(&code, &state, cookie.as_deref()).await {
        Ok(account) => {
            let mut response = json_response(200, json!({"account": account}));
            // Done with it: the browser may forget the cookie.
            if let Ok(clear) = oauth_cookie("", 0).parse() {
                response.headers_mut().insert("set-cookie", clear);
            }
            response
        }
        Err(e) => refused(&e),
    }
}

/// The cookie that binds a CleverReach authorisation to the browser that started it (M4). `__Host-`:
/// only ever sent back to this host, over HTTPS (browsers and curl also accept it from `http://localhost`
/// and `http://127.0.0.1`, so the local runner uses the same name).
pub const OAUTH_COOKIE: &str = "__Host-optisync-oauth";
/// How long the browser keeps it: as long as the state it belongs to is valid.
pub const OAUTH_COOKIE_SECS: i64 = optisync_app::admin::OAUTH_STATE_MINUTES * 60;

fn oauth_cookie(value: &str, max_age: i64) -> String {
    format!("{OAUTH_COOKIE}={value}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={max_age}")
}

/// The value of [`OAUTH_COOKIE`] among the request's cookies (any `cookie` header; API Gateway joins them).
fn browser_cookie(req: &Request) -> Option<String> {
    console::session::cookie(req.headers(), OAUTH_COOKIE)
}

/// `PUT …/accounts/brevo/{account}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BrevoKey {
    api_key: String,
}

/// Tenant settings as the API takes them: every field required but the retention periods (R-J6: each
/// period left out keeps its default), nothing else.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictSettings {
    no_statement_blocks: bool,
    approved_email_target: optisync_domain::EmailTarget,
    /// Optional: where erasure mode's deletion reports go (R-J2).
    #[serde(default)]
    deletion_report_email: Option<optisync_domain::Email>,
    #[serde(default)]
    retention: optisync_domain::Retention,
}

impl From<StrictSettings> for TenantSettings {
    fn from(s: StrictSettings) -> Self {
        TenantSettings {
            no_statement_blocks: s.no_statement_blocks,
            approved_email_target: s.approved_email_target,
            deletion_report_email: s.deletion_report_email,
            retention: s.retention,
        }
    }
}
