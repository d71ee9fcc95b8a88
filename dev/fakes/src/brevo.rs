//! A stateful fake of the Brevo v3 HTTP API for tests and the local sandbox.
//!
//! [`FakeBrevo::start`] binds `127.0.0.1:0` and serves the endpoints the client uses, behaving like
//! the real API as far as it is documented (status codes, `{code, message}` error bodies, 204 on
//! upsert/update, 201 `{id}` on create, 400 `duplicate_parameter`, 150 items per list add/remove,
//! page size maxima, `api-key` header, 429 with `x-sib-ratelimit-*` headers). Listings page by
//! `limit`/`offset` in creation order (`sort`, default `desc`), filter by `modifiedSince` and report the
//! filtered `count`; contacts carry `listUnsubscribed` once per-list unsubscription is switched on
//! ([`FakeBrevo::enable_per_list_unsubscription`]).
//! Every request is recorded with the instant it arrived ([`FakeBrevo::request_log`]).

// Handlers short-circuit with a ready HTTP response as the error value; its size does not matter in a fake.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The API key the fake accepts unless [`FakeBrevo::set_api_key`] changes it.
pub const FAKE_API_KEY: &str = "xkeysib-fake-0000000000000000";

const MAX_LIST_BATCH: usize = 150;
const MAX_LIST_MEMBERS_PAGE: usize = 500;
const MAX_CONTACTS_PAGE: usize = 1000;
const MAX_LISTS_PAGE: usize = 50;
const MAX_WEBHOOKS: usize = 40;

/// A contact as the fake stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeContact {
    pub id: i64,
    pub email: String,
    pub attributes: Map<String, Value>,
    pub email_blacklisted: bool,
    pub list_ids: BTreeSet<i64>,
    /// Lists the contact unsubscribed from while staying on them (per-list unsubscription only).
    pub list_unsubscribed: BTreeSet<i64>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
}

/// A contact list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeList {
    pub id: i64,
    pub name: String,
    pub folder_id: i64,
}

/// An attribute definition served by `GET /contacts/attributes`.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeAttribute {
    pub name: String,
    pub category: String,
    pub attribute_type: Option<String>,
    /// `(value, label)` pairs for `category` attributes.
    pub enumeration: Vec<(i64, String)>,
}

/// A registered webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeWebhook {
    pub id: i64,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub webhook_type: String,
    pub batched: bool,
    pub bearer_token: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    /// Decoded path, e.g. `/v3/contacts/a@b.de`.
    pub path: String,
    /// Raw (still encoded) query string.
    pub query: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
    pub at: Instant,
}

impl RequestRecord {
    /// Whether the request was a write (anything but GET).
    pub fn is_mutating(&self) -> bool {
        self.method != "GET"
    }
}

/// Rate limits of the fake. `None` switches a bucket off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeRateLimit {
    /// Budget of `/v3/contacts…` requests in any sliding second (Brevo: 10).
    pub contacts_per_second: Option<u32>,
    /// Budget of all other requests in any sliding hour (Brevo: 100).
    pub others_per_hour: Option<u32>,
}

impl Default for FakeRateLimit {
    fn default() -> Self {
        Self { contacts_per_second: Some(10), others_per_hour: Some(100) }
    }
}

impl FakeRateLimit {
    /// No rate limiting at all.
    pub fn off() -> Self {
        Self { contacts_per_second: None, others_per_hour: None }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bucket {
    Contacts,
    Others,
}

struct State_ {
    api_key: String,
    contacts: BTreeMap<i64, FakeContact>,
    next_contact_id: i64,
    lists: BTreeMap<i64, FakeList>,
    next_list_id: i64,
    attributes: Vec<FakeAttribute>,
    webhooks: Vec<FakeWebhook>,
    next_webhook_id: i64,
    log: Vec<RequestRecord>,
    rate: FakeRateLimit,
    contact_hits: VecDeque<Instant>,
    other_hits: VecDeque<Instant>,
    forced_429: VecDeque<u64>,
    injected_failures: VecDeque<u16>,
    /// The account feature "unsubscription per list" (off unless Brevo enabled it on request).
    per_list_unsubscription: bool,
}

impl State_ {
    fn new() -> Self {
        let text = |name: &str| FakeAttribute {
            name: name.to_owned(),
            category: "normal".to_owned(),
            attribute_type: Some("text".to_owned()),
            enumeration: vec![],
        };
        Self {
            api_key: FAKE_API_KEY.to_owned(),
            contacts: BTreeMap::new(),
            next_contact_id: 1,
            lists: BTreeMap::new(),
            next_list_id: 1,
            attributes: vec![text("FIRSTNAME"), text("LASTNAME"), text("SMS")],
            webhooks: vec![],
            next_webhook_id: 1,
            log: vec![],
            rate: FakeRateLimit::default(),
            contact_hits: VecDeque::new(),
            other_hits: VecDeque::new(),
            forced_429: VecDeque::new(),
            injected_failures: VecDeque::new(),
            per_list_unsubscription: false,
        }
    }

    fn find_by_email(&self, email: &str) -> Option<i64> {
        let wanted = email.trim().to_lowercase();
        self.contacts.values().find(|c| c.email.to_lowercase() == wanted).map(|c| c.id)
    }

    /// Blacklists the contact; its lists, or `None` if unknown.
    fn blacklist(&mut self, email: &str) -> Option<Vec<i64>> {
        let id = self.find_by_email(email)?;
        let c = self.contacts.get_mut(&id).expect("found id");
        c.email_blacklisted = true;
        c.modified_at = Utc::now();
        Some(c.list_ids.iter().copied().collect())
    }

    fn insert_contact(
        &mut self,
        email: &str,
        attributes: Map<String, Value>,
        list_ids: &[i64],
        blacklisted: bool,
    ) -> i64 {
        let id = self.next_contact_id;
        self.next_contact_id += 1;
        let now = Utc::now();
        self.contacts.insert(
            id,
            FakeContact {
                id,
                email: email.trim().to_lowercase(),
                attributes,
                email_blacklisted: blacklisted,
                list_ids: list_ids.iter().copied().collect(),
                list_unsubscribed: BTreeSet::new(),
                created_at: now,
                modified_at: now,
            },
        );
        id
    }

    /// Sliding-window check; records the hit when allowed, else returns the seconds until a slot frees.
    fn admit(&mut self, bucket: Bucket, now: Instant) -> Result<(), (u32, u64)> {
        let (limit, window, hits) = match bucket {
            Bucket::Contacts => (self.rate.contacts_per_second, Duration::from_secs(1), &mut self.contact_hits),
            Bucket::Others => (self.rate.others_per_hour, Duration::from_secs(3600), &mut self.other_hits),
        };
        let Some(limit) = limit else { return Ok(()) };
        while hits.front().is_some_and(|t| now.duration_since(*t) >= window) {
            hits.pop_front();
        }
        if hits.len() >= limit as usize {
            let oldest = *hits.front().expect("non-empty when over limit");
            let free_in = window.saturating_sub(now.duration_since(oldest));
            let secs = free_in.as_secs() + u64::from(free_in.subsec_nanos() > 0);
            return Err((limit, secs.max(1)));
        }
        hits.push_back(now);
        Ok(())
    }
}

struct Shared {
    state: Mutex<State_>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

type AppState = Arc<Shared>;

/// A running fake Brevo server. Dropping it stops the server.
pub struct FakeBrevo {
    base_url: String,
    shared: AppState,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBrevo {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeBrevo {
    /// Starts the fake on `127.0.0.1` with an OS-assigned port.
    pub async fn start() -> FakeBrevo {
        Self::start_on(0).await
    }

    /// Starts the fake on `127.0.0.1:port` (the contract check puts a validating proxy in front of it).
    pub async fn start_on(port: u16) -> FakeBrevo {
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind a loopback port for fake Brevo");
        let addr = listener.local_addr().expect("local address of fake Brevo");
        let shared = Arc::new(Shared { state: Mutex::new(State_::new()), http: reqwest::Client::new() });
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeBrevo { base_url: format!("http://{addr}/v3"), shared, server }
    }

    /// Base URL including `/v3`, the counterpart of `https://api.brevo.com/v3`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The API key the fake currently accepts.
    pub fn api_key(&self) -> String {
        self.shared.lock().api_key.clone()
    }

    pub fn set_api_key(&self, key: &str) {
        self.shared.lock().api_key = key.to_owned();
    }

    // ---- state helpers -------------------------------------------------------------------------

    /// Creates a list directly (no request) and returns its id.
    pub fn add_list(&self, name: &str) -> i64 {
        let mut s = self.shared.lock();
        let id = s.next_list_id;
        s.next_list_id += 1;
        s.lists.insert(id, FakeList { id, name: name.to_owned(), folder_id: 1 });
        id
    }

    pub fn lists(&self) -> Vec<FakeList> {
        self.shared.lock().lists.values().cloned().collect()
    }

    /// Creates a contact directly (no request) and returns its id.
    pub fn add_contact(&self, email: &str, attributes: Map<String, Value>, list_ids: &[i64]) -> i64 {
        self.shared.lock().insert_contact(email, attributes, list_ids, false)
    }

    /// All contacts in creation order.
    pub fn contacts(&self) -> Vec<FakeContact> {
        self.shared.lock().contacts.values().cloned().collect()
    }

    pub fn contact(&self, email: &str) -> Option<FakeContact> {
        let s = self.shared.lock();
        s.find_by_email(email).and_then(|id| s.contacts.get(&id).cloned())
    }

    /// Blacklists a contact as an unsubscribe link click would. Returns false if unknown.
    pub fn blacklist(&self, email: &str) -> bool {
        self.shared.lock().blacklist(email).is_some()
    }

    /// Unblocks a contact as an admin can in Brevo's contact page (no webhook). Returns false if unknown.
    pub fn unblacklist(&self, email: &str) -> bool {
        let mut s = self.shared.lock();
        let Some(id) = s.find_by_email(email) else { return false };
        let c = s.contacts.get_mut(&id).expect("found id");
        c.email_blacklisted = false;
        c.modified_at = Utc::now();
        true
    }

    /// Takes a contact off a list as a user does in Brevo's interface: no webhook (Brevo has no event for
    /// it). Returns false if the contact is unknown or not on the list.
    pub fn remove_from_list(&self, email: &str, list_id: i64) -> bool {
        let mut s = self.shared.lock();
        let Some(id) = s.find_by_email(email) else { return false };
        let c = s.contacts.get_mut(&id).expect("found id");
        let removed = c.list_ids.remove(&list_id);
        if removed {
            c.modified_at = Utc::now();
        }
        removed
    }

    /// Switches on the account feature "unsubscription per list" (Brevo enables it on request): contact
    /// objects then carry `listUnsubscribed`, and an unsubscribe link only leaves the campaign's list.
    pub fn enable_per_list_unsubscription(&self) {
        self.shared.lock().per_list_unsubscription = true;
    }

    /// The recipient uses the unsubscribe link of a campaign sent to `list_id`. With per-list
    /// unsubscription the contact stays on the list with the list in `listUnsubscribed`; without it the
    /// link blacklists the contact for the whole account, as it does in Brevo. Returns false if the
    /// contact is unknown or not on the list.
    pub fn unsubscribe_from_list(&self, email: &str, list_id: i64) -> bool {
        let mut s = self.shared.lock();
        let per_list = s.per_list_unsubscription;
        let Some(id) = s.find_by_email(email) else { return false };
        let c = s.contacts.get_mut(&id).expect("found id");
        if !c.list_ids.contains(&list_id) {
            return false;
        }
        if per_list {
            c.list_unsubscribed.insert(list_id);
        } else {
            c.email_blacklisted = true;
        }
        c.modified_at = Utc::now();
        true
    }

    /// Overrides `modifiedAt` of a contact (for `modifiedSince` tests). Returns false if unknown.
    pub fn set_modified_at(&self, email: &str, at: DateTime<Utc>) -> bool {
        let mut s = self.shared.lock();
        let Some(id) = s.find_by_email(email) else { return false };
        s.contacts.get_mut(&id).expect("found id").modified_at = at;
        true
    }

    pub fn add_attribute(&self, attribute: FakeAttribute) {
        self.shared.lock().attributes.push(attribute);
    }

    pub fn webhooks(&self) -> Vec<FakeWebhook> {
        self.shared.lock().webhooks.clone()
    }

    // ---- request inspection ---------------------------------------------------------------------

    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.clone()
    }

    pub fn clear_request_log(&self) {
        self.shared.lock().log.clear();
    }

    /// Number of mutating requests (non-GET) that were accepted (2xx).
    pub fn mutating_calls(&self) -> usize {
        self.shared.lock().log.iter().filter(|r| r.is_mutating() && (200..300).contains(&r.status)).count()
    }

    /// Number of requests with this method whose path ends with `path_suffix`, whatever their status.
    pub fn calls(&self, method: &str, path_suffix: &str) -> usize {
        self.shared.lock().log.iter().filter(|r| r.method == method && r.path.ends_with(path_suffix)).count()
    }

    // ---- failure injection ----------------------------------------------------------------------

    pub fn set_rate_limit(&self, rate: FakeRateLimit) {
        let mut s = self.shared.lock();
        s.rate = rate;
        s.contact_hits.clear();
        s.other_hits.clear();
    }

    /// The next `count` requests (any endpoint) answer 429 with `x-sib-ratelimit-reset: reset_secs`.
    pub fn force_rate_limited(&self, count: usize, reset_secs: u64) {
        let mut s = self.shared.lock();
        s.forced_429.extend(std::iter::repeat_n(reset_secs, count));
    }

    /// The next requests answer with these statuses (e.g. 503), one status per request.
    pub fn inject_failures(&self, statuses: &[u16]) {
        self.shared.lock().injected_failures.extend(statuses.iter().copied());
    }

    // ---- webhook emission -----------------------------------------------------------------------

    /// Blacklists the contact (as a campaign unsubscribe link does) and posts an `unsubscribed`
    /// marketing event to every marketing webhook subscribed to `unsubscribed`.
    /// Returns the HTTP status of each delivery (0 for a transport error).
    pub async fn emit_unsubscribe(&self, email: &str, campaign_id: i64) -> Vec<u16> {
        self.shared.emit_unsubscribe(email, campaign_id).await
    }

    /// Adds the contact to the lists (creating it if needed) and posts a `list_addition` event.
    pub async fn emit_list_addition(&self, email: &str, list_ids: &[i64]) -> Vec<u16> {
        self.shared.emit_list_addition(email, list_ids, Map::new()).await
    }

    /// Deletes the contact (as a deletion in the UI would) and posts a `contact_deleted` event.
    pub async fn emit_contact_deleted(&self, email: &str) -> Vec<u16> {
        self.shared.emit_contact_deleted(email).await
    }
}

/// What happens in Brevo without an API call (a subscriber clicks, a form is filled in), with the
/// webhooks it sends.
impl Shared {
    /// Blacklists the contact (as a campaign unsubscribe link does) and posts an `unsubscribed`
    /// marketing event to every marketing webhook subscribed to `unsubscribed`.
    /// Returns the HTTP status of each delivery (0 for a transport error).
    async fn emit_unsubscribe(&self, email: &str, campaign_id: i64) -> Vec<u16> {
        let lists = self.lock().blacklist(email).unwrap_or_default();
        let now = Utc::now();
        let ts = now.timestamp();
        let date = now.format("%Y-%m-%d %H:%M:%S").to_string();
        let payload = |hook_id: i64| {
            json!({
                "id": hook_id, "camp_id": campaign_id, "email": email, "campaign name": "Fake campaign",
                "date_sent": date, "date_event": date, "event": "unsubscribed", "tag": "",
                "sending_ip": "127.0.0.1", "list_id": lists, "ts_sent": ts - 60, "ts_event": ts, "ts": ts,
            })
        };
        self.deliver("unsubscribed", payload).await
    }

    /// Adds the contact to the lists (creating it if needed, with `attributes` added to its own) and
    /// posts a `list_addition` event.
    async fn emit_list_addition(&self, email: &str, list_ids: &[i64], attributes: Map<String, Value>) -> Vec<u16> {
        {
            let mut s = self.lock();
            match s.find_by_email(email) {
                Some(id) => {
                    let c = s.contacts.get_mut(&id).expect("found id");
                    c.list_ids.extend(list_ids.iter().copied());
                    c.attributes.extend(attributes);
                    c.modified_at = Utc::now();
                }
                None => {
                    s.insert_contact(email, attributes, list_ids, false);
                }
            }
        }
        let now = Utc::now();
        let payload = |hook_id: i64| {
            json!({
                "id": hook_id, "email": email, "event": "list_addition", "key": "fakekey",
                "list_id": list_ids, "date": now.format("%Y-%m-%d %H:%M:%S").to_string(), "ts": now.timestamp(),
            })
        };
        self.deliver("listAddition", payload).await
    }

    /// Deletes the contact (as a deletion in the UI would) and posts a `contact_deleted` event.
    async fn emit_contact_deleted(&self, email: &str) -> Vec<u16> {
        let lists: Vec<i64> = {
            let mut s = self.lock();
            match s.find_by_email(email) {
                Some(id) => s.contacts.remove(&id).map(|c| c.list_ids.into_iter().collect()).unwrap_or_default(),
                None => vec![],
            }
        };
        let now = Utc::now();
        let payload = |hook_id: i64| {
            json!({
                "id": hook_id, "email": email, "event": "contact_deleted", "key": "fakekey",
                "list_id": lists, "date": now.format("%Y-%m-%d %H:%M:%S").to_string(), "ts": now.timestamp(),
            })
        };
        self.deliver("contactDeleted", payload).await
    }

    async fn deliver(&self, subscription: &str, payload: impl Fn(i64) -> Value) -> Vec<u16> {
        let hooks: Vec<FakeWebhook> = self
            .lock()
            .webhooks
            .iter()
            .filter(|w| w.webhook_type == "marketing" && w.events.iter().any(|e| e == subscription))
            .cloned()
            .collect();
        let mut statuses = Vec::with_capacity(hooks.len());
        for hook in hooks {
            let mut req = self.http.post(&hook.url).json(&payload(hook.id));
            if let Some(token) = &hook.bearer_token {
                req = req.bearer_auth(token);
            }
            for (k, v) in &hook.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            statuses.push(match req.send().await {
                Ok(resp) => resp.status().as_u16(),
                Err(_) => 0,
            });
        }
        statuses
    }
}

// ---- HTTP layer -------------------------------------------------------------------------------------

fn router(shared: AppState) -> Router {
    Router::new()
        .route("/v3/contacts", get(list_all_contacts).post(create_contact))
        .route("/v3/contacts/lists", get(get_lists).post(create_list))
        .route("/v3/contacts/attributes", get(get_attributes))
        .route("/v3/contacts/lists/{list_id}/contacts", get(list_members))
        .route("/v3/contacts/lists/{list_id}/contacts/add", post(list_add))
        .route("/v3/contacts/lists/{list_id}/contacts/remove", post(list_remove))
        .route("/v3/contacts/{identifier}", get(get_contact).put(update_contact).delete(delete_contact))
        .route("/v3/webhooks", get(get_webhooks).post(create_webhook))
        .route("/v3/webhooks/{webhook_id}", axum::routing::delete(delete_webhook).put(update_webhook))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "document_not_found", "Invalid route") })
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        // Not Brevo's API: what a subscriber does in Brevo, for the local runner's walkthrough.
        .route("/simulate/unsubscribe", post(simulate_unsubscribe))
        .route("/simulate/signup", post(simulate_signup))
        .with_state(shared)
}

#[derive(Deserialize)]
struct SimulatedUnsubscribe {
    email: String,
    #[serde(default)]
    campaign_id: Option<i64>,
}

/// `POST /simulate/unsubscribe {"email"}`: the subscriber clicks a campaign's unsubscribe link (Brevo
/// blacklists the address and sends `unsubscribed`).
async fn simulate_unsubscribe(State(shared): State<AppState>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<SimulatedUnsubscribe>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_parameter", "expected {\"email\": ...}");
    };
    if shared.lock().find_by_email(&req.email).is_none() {
        return error(StatusCode::NOT_FOUND, "document_not_found", "Contact does not exist");
    }
    let webhooks = shared.emit_unsubscribe(&req.email, req.campaign_id.unwrap_or(1)).await;
    json_response(StatusCode::OK, json!({ "webhooks": webhooks }))
}

#[derive(Deserialize)]
struct SimulatedSignup {
    email: String,
    list_id: i64,
    #[serde(default)]
    attributes: Map<String, Value>,
}

/// `POST /simulate/signup {"email", "list_id", "attributes"}`: someone fills in a subscription form
/// (the contact is created or updated, added to the list, and `listAddition` sent).
async fn simulate_signup(State(shared): State<AppState>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<SimulatedSignup>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_parameter", "expected {\"email\": ..., \"list_id\": ...}");
    };
    if !shared.lock().lists.contains_key(&req.list_id) {
        return error(StatusCode::NOT_FOUND, "document_not_found", "List ID does not exist");
    }
    let webhooks = shared.emit_list_addition(&req.email, &[req.list_id], req.attributes).await;
    json_response(StatusCode::OK, json!({ "webhooks": webhooks }))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({ "code": code, "message": message }))).into_response()
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Authentication, failure injection, rate limiting and request recording for every request.
async fn gate(State(shared): State<AppState>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap_or_default();
    let body_json = if bytes.is_empty() { None } else { serde_json::from_slice::<Value>(&bytes).ok() };
    let path =
        urlencoding::decode(parts.uri.path()).map(|p| p.into_owned()).unwrap_or_else(|_| parts.uri.path().to_owned());
    let record = |status: u16| RequestRecord {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        body: body_json.clone(),
        status,
        at,
    };
    let bucket = if path.starts_with("/v3/contacts") { Bucket::Contacts } else { Bucket::Others };

    let early: Option<Response> = {
        let mut s = shared.lock();
        let key_ok = parts.headers.get("api-key").and_then(|v| v.to_str().ok()) == Some(s.api_key.as_str());
        if !key_ok {
            Some(error(StatusCode::UNAUTHORIZED, "unauthorized", "Key not found"))
        } else if let Some(status) = s.injected_failures.pop_front() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(error(status, "internal_error", "Injected failure"))
        } else if let Some(reset) = s.forced_429.pop_front() {
            Some(too_many(s.rate.contacts_per_second.unwrap_or(10), reset))
        } else {
            match s.admit(bucket, at) {
                Ok(()) => None,
                Err((limit, reset)) => Some(too_many(limit, reset)),
            }
        }
    };
    if let Some(resp) = early {
        shared.lock().log.push(record(resp.status().as_u16()));
        return resp;
    }

    let req = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
    let resp = next.run(req).await;
    shared.lock().log.push(record(resp.status().as_u16()));
    resp
}

fn too_many(limit: u32, reset_secs: u64) -> Response {
    let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "Too many requests");
    let h = resp.headers_mut();
    h.insert("x-sib-ratelimit-limit", HeaderValue::from(limit));
    h.insert("x-sib-ratelimit-remaining", HeaderValue::from(0u32));
    h.insert("x-sib-ratelimit-reset", HeaderValue::from(reset_secs));
    resp
}

fn ts(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// A contact object; `listUnsubscribed` only when per-list unsubscription is on for the account.
fn contact_json(c: &FakeContact, per_list_unsubscription: bool) -> Value {
    let mut v = json!({
        "id": c.id,
        "email": c.email,
        "emailBlacklisted": c.email_blacklisted,
        "smsBlacklisted": false,
        "createdAt": ts(&c.created_at),
        "modifiedAt": ts(&c.modified_at),
        "listIds": c.list_ids.iter().collect::<Vec<_>>(),
        "attributes": c.attributes,
        "statistics": {},
    });
    if per_list_unsubscription {
        v["listUnsubscribed"] = json!(c.list_unsubscribed.iter().collect::<Vec<_>>());
    }
    v
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(error(StatusCode::BAD_REQUEST, "bad_request", "Input must be a valid JSON object")),
    }
}

fn int_list(value: Option<&Value>, field: &str) -> Result<Vec<i64>, Response> {
    match value {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_i64().ok_or_else(|| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "invalid_parameter",
                        &format!("{field} should be an array of integers"),
                    )
                })
            })
            .collect(),
        Some(_) => Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", &format!("{field} should be an array"))),
    }
}

fn check_lists_exist(s: &State_, ids: &[i64]) -> Result<(), Response> {
    if ids.iter().all(|id| s.lists.contains_key(id)) {
        Ok(())
    } else {
        Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", "Invalid list id"))
    }
}

fn attributes_of(body: &Map<String, Value>) -> Result<Map<String, Value>, Response> {
    match body.get("attributes") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.iter().map(|(k, v)| (k.to_uppercase(), v.clone())).collect()),
        Some(_) => Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", "attributes should be an object")),
    }
}

fn bool_field(body: &Map<String, Value>, field: &str) -> Result<Option<bool>, Response> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", &format!("{field} should be a boolean"))),
    }
}

fn valid_email(email: &str) -> bool {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.contains('@') && !email.contains(' ')
        }
        None => false,
    }
}

#[derive(Deserialize)]
struct IdentifierQuery {
    #[serde(rename = "identifierType")]
    identifier_type: Option<String>,
}

fn resolve(s: &State_, identifier: &str, identifier_type: Option<&str>) -> Result<i64, Response> {
    let not_found = || error(StatusCode::NOT_FOUND, "document_not_found", "Contact does not exist");
    let by_id = match identifier_type {
        Some("contact_id") => true,
        Some("email_id") => false,
        Some(_) => return Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", "Unsupported identifierType")),
        None => identifier.chars().all(|c| c.is_ascii_digit()),
    };
    if by_id {
        let id: i64 = identifier
            .parse()
            .map_err(|_| error(StatusCode::BAD_REQUEST, "invalid_parameter", "Invalid contact id"))?;
        return if s.contacts.contains_key(&id) { Ok(id) } else { Err(not_found()) };
    }
    if !valid_email(identifier) {
        return Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", "Invalid email address"));
    }
    s.find_by_email(identifier).ok_or_else(not_found)
}

async fn get_contact(
    State(shared): State<AppState>,
    Path(identifier): Path<String>,
    Query(q): Query<IdentifierQuery>,
) -> Response {
    let s = shared.lock();
    match resolve(&s, &identifier, q.identifier_type.as_deref()) {
        Ok(id) => json_response(StatusCode::OK, contact_json(&s.contacts[&id], s.per_list_unsubscription)),
        Err(resp) => resp,
    }
}

async fn create_contact(State(shared): State<AppState>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let result = (|| -> Result<Response, Response> {
        let email = match body.get("email") {
            Some(Value::String(e)) => e.clone(),
            _ => return Err(error(StatusCode::BAD_REQUEST, "missing_parameter", "email is missing")),
        };
        if !valid_email(&email) {
            return Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", "Invalid email address"));
        }
        let attributes = attributes_of(&body)?;
        let list_ids = int_list(body.get("listIds"), "listIds")?;
        let blacklisted = bool_field(&body, "emailBlacklisted")?;
        let update_enabled = bool_field(&body, "updateEnabled")?.unwrap_or(false);
        let mut s = shared.lock();
        check_lists_exist(&s, &list_ids)?;
        match s.find_by_email(&email) {
            Some(id) if update_enabled => {
                let c = s.contacts.get_mut(&id).expect("found id");
                c.attributes.extend(attributes);
                c.list_ids.extend(list_ids);
                if let Some(b) = blacklisted {
                    c.email_blacklisted = b;
                }
                c.modified_at = Utc::now();
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            Some(_) => Ok(json_response(
                StatusCode::BAD_REQUEST,
                json!({
                    "code": "duplicate_parameter",
                    "message": "Unable to create contact, email is already associated with another Contact",
                    "metadata": { "duplicate_identifiers": ["email"] },
                }),
            )),
            None => {
                let id = s.insert_contact(&email, attributes, &list_ids, blacklisted.unwrap_or(false));
                Ok(json_response(StatusCode::CREATED, json!({ "id": id })))
            }
        }
    })();
    result.unwrap_or_else(|r| r)
}

async fn update_contact(
    State(shared): State<AppState>,
    Path(identifier): Path<String>,
    Query(q): Query<IdentifierQuery>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let result = (|| -> Result<Response, Response> {
        let attributes = attributes_of(&body)?;
        let list_ids = int_list(body.get("listIds"), "listIds")?;
        let unlink = int_list(body.get("unlinkListIds"), "unlinkListIds")?;
        let blacklisted = bool_field(&body, "emailBlacklisted")?;
        let mut s = shared.lock();
        let id = resolve(&s, &identifier, q.identifier_type.as_deref())?;
        check_lists_exist(&s, &list_ids)?;
        check_lists_exist(&s, &unlink)?;
        let c = s.contacts.get_mut(&id).expect("resolved id");
        c.attributes.extend(attributes);
        c.list_ids.extend(list_ids);
        for l in unlink {
            c.list_ids.remove(&l);
        }
        if let Some(b) = blacklisted {
            c.email_blacklisted = b;
        }
        c.modified_at = Utc::now();
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    result.unwrap_or_else(|r| r)
}

async fn delete_contact(
    State(shared): State<AppState>,
    Path(identifier): Path<String>,
    Query(q): Query<IdentifierQuery>,
) -> Response {
    let mut s = shared.lock();
    match resolve(&s, &identifier, q.identifier_type.as_deref()) {
        Ok(id) => {
            s.contacts.remove(&id);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(resp) => resp,
    }
}

fn list_batch(s: &State_, list_id: i64, body: &Map<String, Value>) -> Result<Vec<(String, Option<i64>)>, Response> {
    if !s.lists.contains_key(&list_id) {
        return Err(error(StatusCode::NOT_FOUND, "document_not_found", "List ID does not exist"));
    }
    let Some(Value::Array(emails)) = body.get("emails") else {
        return Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", "emails, ids or extIds is required"));
    };
    if emails.is_empty() || emails.len() > MAX_LIST_BATCH {
        return Err(error(StatusCode::BAD_REQUEST, "out_of_range", "Between 1 and 150 emails are allowed per request"));
    }
    emails
        .iter()
        .map(|e| match e.as_str() {
            Some(email) => Ok((email.to_owned(), s.find_by_email(email))),
            None => Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", "emails should be an array of strings")),
        })
        .collect()
}

async fn list_add(State(shared): State<AppState>, Path(list_id): Path<i64>, body: Bytes) -> Response {
    list_change(shared, list_id, body, true)
}

async fn list_remove(State(shared): State<AppState>, Path(list_id): Path<i64>, body: Bytes) -> Response {
    list_change(shared, list_id, body, false)
}

fn list_change(shared: AppState, list_id: i64, body: Bytes, add: bool) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut s = shared.lock();
    let batch = match list_batch(&s, list_id, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (mut success, mut failure) = (vec![], vec![]);
    let now = Utc::now();
    for (email, id) in batch {
        let changed = match id.and_then(|id| s.contacts.get_mut(&id)) {
            Some(c) => {
                let changed = if add { c.list_ids.insert(list_id) } else { c.list_ids.remove(&list_id) };
                if changed {
                    c.modified_at = now;
                }
                changed
            }
            None => false,
        };
        if changed { success.push(email) } else { failure.push(email) }
    }
    if success.is_empty() {
        let message = if add {
            "Contact already in list and/or does not exist"
        } else {
            "Contact already removed from list and/or does not exist"
        };
        return error(StatusCode::BAD_REQUEST, "invalid_parameter", message);
    }
    json_response(StatusCode::CREATED, json!({ "contacts": { "success": success, "failure": failure } }))
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<String>,
    offset: Option<String>,
    #[serde(rename = "modifiedSince")]
    modified_since: Option<String>,
    sort: Option<String>,
}

struct Page {
    limit: usize,
    offset: usize,
    modified_since: Option<DateTime<Utc>>,
    ascending: bool,
}

fn page(q: &PageQuery, max: usize) -> Result<Page, Response> {
    let num = |v: &Option<String>, default: usize, name: &str| -> Result<usize, Response> {
        match v {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                error(StatusCode::BAD_REQUEST, "invalid_parameter", &format!("{name} should be an integer"))
            }),
        }
    };
    let limit = num(&q.limit, 50.min(max), "limit")?;
    if limit > max {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "out_of_range",
            &format!("limit should be less than or equal to {max}"),
        ));
    }
    let offset = num(&q.offset, 0, "offset")?;
    let modified_since = match &q.modified_since {
        None => None,
        Some(v) => Some(DateTime::parse_from_rfc3339(v).map(|d| d.with_timezone(&Utc)).map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                "modifiedSince must be a date-time with timezone (RFC 3339)",
            )
        })?),
    };
    let ascending = match q.sort.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", "sort should be asc or desc")),
    };
    Ok(Page { limit, offset, modified_since, ascending })
}

fn contact_page<'a>(
    contacts: impl DoubleEndedIterator<Item = &'a FakeContact>,
    p: &Page,
    per_list_unsubscription: bool,
) -> Value {
    let matching: Vec<&FakeContact> = if p.ascending { contacts.collect() } else { contacts.rev().collect() };
    let matching: Vec<&FakeContact> =
        matching.into_iter().filter(|c| p.modified_since.is_none_or(|since| c.modified_at >= since)).collect();
    let count = matching.len();
    let items: Vec<Value> =
        matching.into_iter().skip(p.offset).take(p.limit).map(|c| contact_json(c, per_list_unsubscription)).collect();
    json!({ "contacts": items, "count": count })
}

async fn list_all_contacts(State(shared): State<AppState>, Query(q): Query<PageQuery>) -> Response {
    let p = match page(&q, MAX_CONTACTS_PAGE) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let s = shared.lock();
    json_response(StatusCode::OK, contact_page(s.contacts.values(), &p, s.per_list_unsubscription))
}

async fn list_members(
    State(shared): State<AppState>,
    Path(list_id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> Response {
    let p = match page(&q, MAX_LIST_MEMBERS_PAGE) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let s = shared.lock();
    if !s.lists.contains_key(&list_id) {
        return error(StatusCode::NOT_FOUND, "document_not_found", "List ID does not exist");
    }
    json_response(
        StatusCode::OK,
        contact_page(s.contacts.values().filter(|c| c.list_ids.contains(&list_id)), &p, s.per_list_unsubscription),
    )
}

/// `POST /contacts/lists` `{name, folderId}` (both required) → 201 `{id}`.
async fn create_list(State(shared): State<AppState>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let name = body.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
    let folder = body.get("folderId").and_then(Value::as_i64);
    let (Some(name), Some(folder_id)) = (name, folder) else {
        return error(StatusCode::BAD_REQUEST, "missing_parameter", "name and folderId are required");
    };
    let mut s = shared.lock();
    let id = s.next_list_id;
    s.next_list_id += 1;
    s.lists.insert(id, FakeList { id, name: name.to_owned(), folder_id });
    json_response(StatusCode::CREATED, json!({ "id": id }))
}

async fn get_lists(State(shared): State<AppState>, Query(q): Query<PageQuery>) -> Response {
    let p = match page(&q, MAX_LISTS_PAGE) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let s = shared.lock();
    let all: Vec<Value> = s
        .lists
        .values()
        .map(|l| {
            let members = s.contacts.values().filter(|c| c.list_ids.contains(&l.id));
            let blacklisted = members.clone().filter(|c| c.email_blacklisted).count();
            json!({
                "id": l.id, "name": l.name, "folderId": l.folder_id,
                "totalSubscribers": members.count(), "totalBlacklisted": blacklisted, "uniqueSubscribers": 0,
            })
        })
        .collect();
    let count = all.len();
    let mut items: Vec<Value> = all.into_iter().collect();
    if !p.ascending {
        items.reverse();
    }
    let items: Vec<Value> = items.into_iter().skip(p.offset).take(p.limit).collect();
    json_response(StatusCode::OK, json!({ "lists": items, "count": count }))
}

async fn get_attributes(State(shared): State<AppState>) -> Response {
    let s = shared.lock();
    let items: Vec<Value> = s
        .attributes
        .iter()
        .map(|a| {
            let mut v = json!({ "name": a.name, "category": a.category });
            if let Some(t) = &a.attribute_type {
                v["type"] = json!(t);
            }
            if !a.enumeration.is_empty() {
                v["enumeration"] =
                    a.enumeration.iter().map(|(value, label)| json!({ "value": value, "label": label })).collect();
            }
            v
        })
        .collect();
    json_response(StatusCode::OK, json!({ "attributes": items }))
}

const MARKETING_EVENTS: &[&str] = &[
    "spam",
    "opened",
    "click",
    "hardBounce",
    "softBounce",
    "unsubscribed",
    "listAddition",
    "delivered",
    "contactUpdated",
    "contactDeleted",
];

async fn create_webhook(State(shared): State<AppState>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, "invalid_parameter", m);
    let Some(url) = body.get("url").and_then(Value::as_str).filter(|u| url::Url::parse(u).is_ok()) else {
        return bad("url is missing or invalid");
    };
    let webhook_type = body.get("type").and_then(Value::as_str).unwrap_or("transactional").to_owned();
    let events: Vec<String> = match body.get("events") {
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        _ => return error(StatusCode::BAD_REQUEST, "missing_parameter", "events is missing"),
    };
    if webhook_type == "marketing" && events.iter().any(|e| !MARKETING_EVENTS.contains(&e.as_str())) {
        return bad("Invalid event for a marketing webhook");
    }
    let bearer_token = match body.get("auth") {
        None | Some(Value::Null) => None,
        Some(auth) => match (auth.get("type").and_then(Value::as_str), auth.get("token").and_then(Value::as_str)) {
            (Some("bearer"), Some(token)) if !token.is_empty() => Some(token.to_owned()),
            _ => return bad("auth must be {type: bearer, token}"),
        },
    };
    let headers = body
        .get("headers")
        .and_then(Value::as_array)
        .map(|hs| {
            hs.iter()
                .filter_map(|h| Some((h.get("key")?.as_str()?.to_owned(), h.get("value")?.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let mut s = shared.lock();
    if s.webhooks.len() >= MAX_WEBHOOKS {
        return bad("Maximum number of webhooks reached");
    }
    let id = s.next_webhook_id;
    s.next_webhook_id += 1;
    s.webhooks.push(FakeWebhook {
        id,
        url: url.to_owned(),
        description: body.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
        events,
        webhook_type,
        batched: body.get("batched").and_then(Value::as_bool).unwrap_or(false),
        bearer_token,
        headers,
    });
    json_response(StatusCode::CREATED, json!({ "id": id }))
}

/// `PUT /webhooks/{webhookId}` (`updateWebhook`): every field optional, the given ones replace the
/// stored ones, checked like on creation; 204, 404 for an unknown id.
async fn update_webhook(State(shared): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, "invalid_parameter", "webhookId must be a number");
    };
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, "invalid_parameter", m);
    let url = match body.get("url") {
        None => None,
        Some(u) => match u.as_str().filter(|u| url::Url::parse(u).is_ok()) {
            Some(u) => Some(u.to_owned()),
            None => return bad("url is invalid"),
        },
    };
    let events: Option<Vec<String>> = match body.get("events") {
        None => None,
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            Some(items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        }
        Some(_) => return bad("events must be a non-empty list of event names"),
    };
    let bearer_token = match body.get("auth") {
        None => None,
        Some(auth) => match (auth.get("type").and_then(Value::as_str), auth.get("token").and_then(Value::as_str)) {
            (Some("bearer"), Some(token)) if !token.is_empty() => Some(token.to_owned()),
            _ => return bad("auth must be {type: bearer, token}"),
        },
    };
    let mut s = shared.lock();
    let Some(hook) = s.webhooks.iter_mut().find(|w| w.id == id) else {
        return error(StatusCode::NOT_FOUND, "document_not_found", "Webhook not found");
    };
    if let Some(events) = &events
        && hook.webhook_type == "marketing"
        && events.iter().any(|e| !MARKETING_EVENTS.contains(&e.as_str()))
    {
        return bad("Invalid event for a marketing webhook");
    }
    if let Some(url) = url {
        hook.url = url;
    }
    if let Some(events) = events {
        hook.events = events;
    }
    if let Some(description) = body.get("description").and_then(Value::as_str) {
        hook.description = description.to_owned();
    }
    if let Some(batched) = body.get("batched").and_then(Value::as_bool) {
        hook.batched = batched;
    }
    if bearer_token.is_some() {
        hook.bearer_token = bearer_token;
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct WebhookQuery {
    #[serde(rename = "type")]
    webhook_type: Option<String>,
}

async fn delete_webhook(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(StatusCode::BAD_REQUEST, "invalid_parameter", "webhookId must be a number");
    };
    let mut s = shared.lock();
    let before = s.webhooks.len();
    s.webhooks.retain(|w| w.id != id);
    if s.webhooks.len() == before {
        return error(StatusCode::NOT_FOUND, "document_not_found", "Webhook not found");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn get_webhooks(State(shared): State<AppState>, Query(q): Query<WebhookQuery>) -> Response {
    let wanted = q.webhook_type.unwrap_or_else(|| "transactional".to_owned());
    let s = shared.lock();
    let items: Vec<Value> = s
        .webhooks
        .iter()
        .filter(|w| w.webhook_type == wanted)
        .map(|w| {
            // Brevo lists transactional webhooks with the spelling "transac".
            let shown = if w.webhook_type == "transactional" { "transac" } else { w.webhook_type.as_str() };
            json!({ "id": w.id, "url": w.url, "description": w.description, "events": w.events, "type": shown })
        })
        .collect();
    json_response(StatusCode::OK, json!({ "webhooks": items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_rejects_the_eleventh_request() {
        let mut s = State_::new();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(s.admit(Bucket::Contacts, t0).is_ok());
        }
        assert_eq!(s.admit(Bucket::Contacts, t0), Err((10, 1)));
        assert!(s.admit(Bucket::Contacts, t0 + Duration::from_secs(1)).is_ok());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn m3_updating_a_webhook_replaces_only_what_the_body_names() {
        let fake = FakeBrevo::start().await;
        let http = reqwest::Client::new();
        let call = |method: reqwest::Method, path: &str, body: Value| {
            http.request(method, format!("{}/{path}", fake.base_url()))
                .header("api-key", FAKE_API_KEY)
                .json(&body)
                .send()
        };
        let created = call(
            reqwest::Method::POST,
            "webhooks",
            json!({"url": "https://hooks.example.org/a", "type": "marketing", "events": ["unsubscribed"],
                   "auth": {"type": "bearer", "token": "old"}}),
        )
        .await
        .unwrap();
        assert_eq!(created.status(), 201);
        let id = fake.webhooks()[0].id;
        let new_token = json!({"auth": {"type": "bearer", "token": "new"}});
        let updated = call(reqwest::Method::PUT, &format!("webhooks/{id}"), new_token.clone()).await.unwrap();
        assert_eq!(updated.status(), 204);
        let hook = &fake.webhooks()[0];
        assert_eq!(hook.bearer_token.as_deref(), Some("new"));
        assert_eq!(
            (hook.url.as_str(), &hook.events[..]),
            ("https://hooks.example.org/a", &["unsubscribed".to_owned()][..])
        );
        let unknown = call(reqwest::Method::PUT, &format!("webhooks/{}", id + 1), new_token).await.unwrap();
        assert_eq!(unknown.status(), 404);
        for bad in [json!({"auth": {"type": "basic"}}), json!({"events": ["sent"]}), json!({"url": "not a url"})] {
            let refused = call(reqwest::Method::PUT, &format!("webhooks/{id}"), bad).await.unwrap();
            assert_eq!(refused.status(), 400);
        }
        assert_eq!(fake.webhooks()[0].bearer_token.as_deref(), Some("new"), "a refused update changes nothing");
    }
}
