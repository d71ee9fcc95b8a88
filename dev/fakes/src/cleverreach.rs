//! A stateful fake CleverReach server (REST v3 subset, OAuth, webhooks) for tests and the
//! local sandbox. Start it with [`FakeCleverReach::start`]; it listens on `127.0.0.1:<random>`.
//!
//! Reproduced behaviour (see `shared/reference/cleverreach-api.md`): ids as strings, list
//! timestamps as strings, `attributes: []` when empty, bare error strings in upsert answers,
//! literal `true` bodies, upsert state semantics (§5.1), 413 above a configurable batch size,
//! `page`/`pagesize` (≤ 5000) with `type=all|active|inactive|bounce`, filters with simple rules,
//! webhook registration with the GET handshake and event POSTs with `X-CR-Calltoken`; the account-wide
//! blacklist (`/v3/blacklist`, one unpaged list; the account setting that blacklists every
//! link-unsubscriber and removes them from all groups) and the account's bounces (`/v3/bounces`, paged;
//! a hard bounce blocks the address until it expires without deactivating the receiver), R-E9.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::Rng as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use optisync_cleverreach::client::ClientConfig;
use optisync_cleverreach::model::lenient::{value_to_i64, value_to_string};
use optisync_cleverreach::model::{FilterRule, Receiver};
use optisync_cleverreach::oauth::TokenSet;
use optisync_cleverreach::secret::Secret;

pub const FAKE_CLIENT_ID: &str = "fake-client-id";
pub const FAKE_CLIENT_SECRET: &str = "fake-client-secret";
pub const FAKE_REDIRECT_URI: &str = "http://127.0.0.1/oauth/callback";

/// Settings of the fake.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Seconds an access token is valid.
    pub access_token_lifetime: i64,
    /// Upserts with more items answer 413.
    pub max_batch_size: usize,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            client_id: FAKE_CLIENT_ID.into(),
            client_secret: FAKE_CLIENT_SECRET.into(),
            access_token_lifetime: 3600,
            max_batch_size: 1000,
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// Number of items in a JSON array body (upserts), else 0.
    pub items: usize,
}

/// A webhook registration held by the fake.
#[derive(Debug, Clone)]
pub struct HookRegistration {
    pub url: String,
    pub event: String,
    pub condition: String,
    pub call_token: Secret,
    pub secret: Secret,
}

/// One webhook POST the fake made.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub url: String,
    pub body: Value,
    /// HTTP status of the receiver, 0 on transport error.
    pub status: u16,
}

#[derive(Debug, Clone, Default)]
struct Member {
    activated: i64,
    deactivated: i64,
    registered: i64,
    bounced: i64,
    source: String,
    /// The last IP CleverReach saw the receiver use (its DOI click, an open): `last_ip`.
    last_ip: String,
    attributes: BTreeMap<String, String>,
    tags: Vec<String>,
    events: Vec<Value>,
    last_changed: i64,
}

impl Member {
    fn active(&self) -> bool {
        self.activated > 0 && self.deactivated == 0
    }
}

#[derive(Debug, Clone)]
struct Pool {
    email: String,
    global_attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct GroupRec {
    name: String,
    stamp: i64,
    last_changed: i64,
}

#[derive(Debug, Clone)]
struct AttrRec {
    id: u64,
    name: String,
    kind: String,
    description: String,
}

#[derive(Debug, Clone)]
struct FilterRec {
    group_id: u64,
    name: String,
    operator: String,
    rules: Vec<FilterRule>,
}

#[derive(Debug, Clone)]
struct BlacklistRec {
    email: String,
    comment: String,
    stamp: i64,
}

#[derive(Debug, Clone)]
struct BounceRec {
    email: String,
    category: String,
    occurences: i64,
    last_update: i64,
    expires_by: i64,
    message: String,
}

#[derive(Debug, Clone, Copy)]
struct Injection {
    status: u16,
    retry_after: Option<u64>,
}

struct Job {
    url: String,
    call_token: String,
    body: Value,
}

#[derive(Default)]
struct FakeState {
    cfg: FakeConfig,
    next_id: u64,
    groups: BTreeMap<u64, GroupRec>,
    pool: BTreeMap<u64, Pool>,
    members: BTreeMap<u64, BTreeMap<u64, Member>>,
    attributes: Vec<AttrRec>,
    filters: BTreeMap<u64, FilterRec>,
    /// The account-wide blacklist, by lower-cased address.
    blacklist: BTreeMap<String, BlacklistRec>,
    /// The account setting "blacklist link-unsubscribers and remove them from all groups".
    blacklist_unsubscribers: bool,
    bounces: Vec<BounceRec>,
    codes: HashMap<String, String>,
    access_tokens: HashMap<String, i64>,
    refresh_token: Option<String>,
    refresh_grants: usize,
    hooks: Vec<HookRegistration>,
    deliveries: Vec<Delivery>,
    pending_deliveries: usize,
    log: Vec<LoggedRequest>,
    mutating: usize,
    injected: VecDeque<Injection>,
    jobs: Vec<Job>,
}

impl FakeState {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn pool_by_key(&self, key: &str) -> Option<u64> {
        if let Ok(id) = key.parse::<u64>()
            && self.pool.contains_key(&id)
        {
            return Some(id);
        }
        self.pool.iter().find(|(_, p)| p.email.eq_ignore_ascii_case(key)).map(|(id, _)| *id)
    }

    fn issue_tokens(&mut self, with_refresh: bool) -> (String, Option<String>, i64) {
        let access = random_token(40);
        let lifetime = self.cfg.access_token_lifetime;
        self.access_tokens.insert(access.clone(), now() + lifetime);
        let refresh = with_refresh.then(|| random_token(40));
        if refresh.is_some() {
            self.refresh_token = refresh.clone();
        }
        (access, refresh, lifetime)
    }

    fn emit(&mut self, gid: u64, event: &str, pool_id: u64) {
        let matching: Vec<(String, String)> = self
            .hooks
            .iter()
            .filter(|h| {
                (h.event == event || event.starts_with(&format!("{}.", h.event))) && h.condition == gid.to_string()
            })
            .map(|h| (h.url.clone(), h.call_token.expose().to_owned()))
            .collect();
        for (url, call_token) in matching {
            self.pending_deliveries += 1;
            self.jobs.push(Job {
                url,
                call_token,
                body: json!({"event": event, "condition": gid.to_string(), "payload": {"pool_id": pool_id.to_string()}}),
            });
        }
    }

    fn render(&self, gid: u64, pid: u64, detail: u32, strings: bool) -> Value {
        let pool = &self.pool[&pid];
        let m = &self.members[&gid][&pid];
        let num = |n: i64| if strings { Value::String(n.to_string()) } else { Value::from(n) };
        let mut globals: serde_json::Map<String, Value> =
            self.attributes.iter().map(|a| (a.name.clone(), Value::String(String::new()))).collect();
        for (k, v) in &pool.global_attributes {
            globals.insert(k.clone(), Value::String(v.clone()));
        }
        let attributes = if m.attributes.is_empty() { json!([]) } else { json!(m.attributes) };
        let mut v = json!({
            "id": pid.to_string(),
            "email": pool.email,
            "imported": 0,
            "bounced": num(m.bounced),
            "group_id": gid.to_string(),
            "activated": num(m.activated),
            "registered": num(m.registered),
            "deactivated": num(m.deactivated),
            "last_ip": m.last_ip, "last_location": "", "last_client": "",
            "points": "0", "stars": 0,
            "source": m.source,
            "attributes": attributes,
            "global_attributes": Value::Object(globals),
            "active": m.active(),
            "last_changed": num(m.last_changed),
        });
        if detail & 1 != 0 {
            v["events"] = Value::Array(m.events.iter().rev().take(250).cloned().collect());
        }
        if detail & 4 != 0 {
            v["tags"] = json!(m.tags);
        }
        v
    }

    fn matches_filter(&self, f: &FilterRec, pid: u64) -> bool {
        let pool = &self.pool[&pid];
        let m = &self.members[&f.group_id][&pid];
        let eval = |r: &FilterRule| {
            let field = r.field.to_ascii_lowercase();
            let cond = r.condition.to_lowercase();
            let values: Vec<String> = match field.as_str() {
                "email" => vec![pool.email.to_lowercase()],
                "tags" => m.tags.iter().map(|t| t.to_lowercase()).collect(),
                "activated" => vec![m.activated.to_string()],
                "deactivated" => vec![m.deactivated.to_string()],
                "registered" => vec![m.registered.to_string()],
                other => vec![
                    pool.global_attributes
                        .get(other)
                        .or_else(|| m.attributes.get(other))
                        .cloned()
                        .unwrap_or_default()
                        .to_lowercase(),
                ],
            };
            let num = |s: &str| s.parse::<f64>().ok();
            values.iter().any(|v| match r.logic.to_ascii_lowercase().as_str() {
                "eq" => *v == cond,
                "neq" | "noteq" => *v != cond,
                "contains" => v.contains(&cond),
                "nocontains" | "notcontains" => !v.contains(&cond),
                "bg" => matches!((num(v), num(&cond)), (Some(a), Some(b)) if a > b),
                "sm" => matches!((num(v), num(&cond)), (Some(a), Some(b)) if a < b),
                _ => false,
            })
        };
        if f.operator.eq_ignore_ascii_case("OR") { f.rules.iter().any(eval) } else { f.rules.iter().all(eval) }
    }
}

struct Shared {
    state: Mutex<FakeState>,
    tx: mpsc::UnboundedSender<Job>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn flush_jobs(&self, st: &mut FakeState) {
        for job in st.jobs.drain(..) {
            let _ = self.tx.send(job);
        }
    }
}

/// The running fake server. Dropping it stops the server.
pub struct FakeCleverReach {
    base_url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCleverReach {
    fn drop(&mut self) {
        self.server.abort();
        self.worker.abort();
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn random_token(len: usize) -> String {
    rand::rng().sample_iter(&rand::distr::Alphanumeric).take(len).map(char::from).collect()
}

impl FakeCleverReach {
    /// Starts with [`FakeConfig::default`].
    pub async fn start() -> Self {
        Self::start_with(FakeConfig::default()).await
    }

    pub async fn start_with(cfg: FakeConfig) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("reqwest client");
        let shared = Arc::new(Shared {
            state: Mutex::new(FakeState { cfg, next_id: 1000, ..FakeState::default() }),
            tx,
            http: http.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake CleverReach");
        let addr = listener.local_addr().expect("local addr");
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let weak = Arc::downgrade(&shared);
        let worker = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let status =
                    match http.post(&job.url).header("X-CR-Calltoken", &job.call_token).json(&job.body).send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                let Some(shared) = weak.upgrade() else { break };
                let mut st = shared.lock();
                st.deliveries.push(Delivery { url: job.url, body: job.body, status });
                st.pending_deliveries = st.pending_deliveries.saturating_sub(1);
            }
        });
        Self { base_url: format!("http://{addr}"), shared, server, worker }
    }

    /// `http://127.0.0.1:<port>` — use as REST, hooks and OAuth base.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// A client config pointing at this fake: no rate limit, fast backoff.
    pub fn client_config(&self) -> ClientConfig {
        let (id, secret) = {
            let st = self.shared.lock();
            (st.cfg.client_id.clone(), st.cfg.client_secret.clone())
        };
        let mut cfg = ClientConfig::new(id, Secret::new(secret), FAKE_REDIRECT_URI).with_base_url(&self.base_url);
        cfg.requests_per_second = 0.0;
        cfg.backoff_base = Duration::from_millis(5);
        cfg.backoff_cap = Duration::from_millis(50);
        cfg.request_timeout = Duration::from_secs(30);
        cfg
    }

    // ---- OAuth helpers ------------------------------------------------------------------

    /// Issues an access + refresh token directly (as if the code flow had run).
    pub fn issue_tokens(&self) -> TokenSet {
        let mut st = self.shared.lock();
        let (access, refresh, lifetime) = st.issue_tokens(true);
        TokenSet {
            access_token: Secret::new(access),
            refresh_token: refresh.map(Secret::new),
            expires_in: lifetime,
            obtained_at: now(),
        }
    }

    pub fn set_access_token_lifetime(&self, seconds: i64) {
        self.shared.lock().cfg.access_token_lifetime = seconds;
    }

    /// Invalidates every access token: the API answers 401 until the client refreshes.
    pub fn expire_access_tokens(&self) {
        self.shared.lock().access_tokens.clear();
    }

    /// Invalidates the refresh token: refresh answers 400 `invalid_grant`.
    pub fn revoke_refresh_token(&self) {
        self.shared.lock().refresh_token = None;
    }

    /// The currently valid refresh token.
    pub fn current_refresh_token(&self) -> Option<Secret> {
        self.shared.lock().refresh_token.clone().map(Secret::new)
    }

    /// How many refresh_token grants succeeded.
    pub fn refresh_count(&self) -> usize {
        self.shared.lock().refresh_grants
    }

    // ---- data helpers -------------------------------------------------------------------

    pub fn set_max_batch_size(&self, n: usize) {
        self.shared.lock().cfg.max_batch_size = n;
    }

    pub fn add_group(&self, name: &str) -> String {
        let mut st = self.shared.lock();
        let id = st.id();
        st.groups.insert(id, GroupRec { name: name.into(), stamp: now(), last_changed: now() });
        st.members.insert(id, BTreeMap::new());
        id.to_string()
    }

    pub fn add_global_attribute(&self, name: &str, kind: &str) -> String {
        let mut st = self.shared.lock();
        let id = st.id();
        st.attributes.push(AttrRec { id, name: name.to_lowercase(), kind: kind.into(), description: name.into() });
        id.to_string()
    }

    /// Adds a receiver to a group with explicit state (0 = not set). Returns the pool id.
    pub fn add_receiver(
        &self,
        group_id: &str,
        email: &str,
        activated: i64,
        deactivated: i64,
        global_attributes: &[(&str, &str)],
    ) -> String {
        let mut st = self.shared.lock();
        let gid: u64 = group_id.parse().expect("group id");
        let pid = match st.pool_by_key(email) {
            Some(p) => p,
            None => {
                let p = st.id();
                st.pool.insert(p, Pool { email: email.into(), global_attributes: BTreeMap::new() });
                p
            }
        };
        if let Some(pool) = st.pool.get_mut(&pid) {
            for (k, v) in global_attributes {
                pool.global_attributes.insert(k.to_string(), v.to_string());
            }
        }
        let member = Member {
            activated,
            deactivated,
            registered: now() - 86_400,
            source: "Fake seed".into(),
            last_changed: now(),
            ..Member::default()
        };
        st.members.entry(gid).or_default().insert(pid, member);
        pid.to_string()
    }

    /// The receiver clicked its double opt-in link (or opened a mailing) from `ip`: CleverReach keeps
    /// the address as the receiver's `last_ip` in that group.
    pub fn record_client_ip(&self, group_id: &str, email: &str, ip: &str) {
        let mut st = self.shared.lock();
        let gid: u64 = group_id.parse().expect("group id");
        let pid = st.pool_by_key(email).expect("receiver");
        let member = st.members.get_mut(&gid).and_then(|m| m.get_mut(&pid)).expect("member of the group");
        member.last_ip = ip.into();
    }

    /// Bulk seed `n` receivers `user{i}@example.org`; every 10th (i % 10 == 9) is deactivated.
    pub fn seed_receivers(&self, group_id: &str, n: usize) {
        let mut st = self.shared.lock();
        let gid: u64 = group_id.parse().expect("group id");
        let t = now();
        for i in 0..n {
            let pid = st.id();
            st.pool.insert(pid, Pool { email: format!("user{i}@example.org"), global_attributes: BTreeMap::new() });
            let deactivated = if i % 10 == 9 { t } else { 0 };
            let m = Member { activated: t - 10, deactivated, registered: t - 20, last_changed: t, ..Member::default() };
            st.members.entry(gid).or_default().insert(pid, m);
        }
    }

    /// Bulk seed: active receivers with these addresses, each new to the pool (no look-up, for large
    /// lists in benchmarks).
    pub fn add_new_receivers(&self, group_id: &str, emails: &[String]) {
        let mut st = self.shared.lock();
        let gid: u64 = group_id.parse().expect("group id");
        let t = now();
        for email in emails {
            let pid = st.id();
            st.pool.insert(pid, Pool { email: email.clone(), global_attributes: BTreeMap::new() });
            let m = Member { activated: t - 10, registered: t - 20, last_changed: t, ..Member::default() };
            st.members.entry(gid).or_default().insert(pid, m);
        }
    }

    /// The receiver as the API would return it (with events and tags).
    pub fn receiver(&self, group_id: &str, id_or_email: &str) -> Option<Receiver> {
        let st = self.shared.lock();
        let gid: u64 = group_id.parse().ok()?;
        let pid = st.pool_by_key(id_or_email)?;
        st.members.get(&gid)?.get(&pid)?;
        serde_json::from_value(st.render(gid, pid, 7, false)).ok()
    }

    /// The account setting that puts every recipient who uses an unsubscribe link on the account-wide
    /// blacklist and removes them from all groups (reference §5.4; R-E9).
    pub fn set_blacklist_unsubscribers(&self, on: bool) {
        self.shared.lock().blacklist_unsubscribers = on;
    }

    /// Puts an address on the account-wide blacklist at `stamp` (unix seconds), as an admin does in the
    /// backend: its receivers stay in their groups, but CleverReach sends them nothing (R-E9).
    pub fn blacklist(&self, email: &str, stamp: i64) {
        let mut st = self.shared.lock();
        st.blacklist
            .insert(email.to_lowercase(), BlacklistRec { email: email.to_owned(), comment: "Backend".into(), stamp });
    }

    /// The blacklisted addresses (lower-cased).
    pub fn blacklisted(&self) -> Vec<String> {
        self.shared.lock().blacklist.keys().cloned().collect()
    }

    /// Records a hard bounce of `email` at `at` that blocks the address until `expires_by` (unix
    /// seconds) without deactivating its receivers: their `bounced` is set, they stay active (R-E9, R-E6).
    pub fn hard_bounce(&self, email: &str, at: i64, expires_by: i64) {
        let mut st = self.shared.lock();
        let key = email.to_lowercase();
        match st.bounces.iter_mut().find(|b| b.email.to_lowercase() == key) {
            Some(b) => {
                b.occurences += 1;
                b.last_update = at;
                b.expires_by = expires_by;
            }
            None => st.bounces.push(BounceRec {
                email: email.to_owned(),
                category: "hardbounce".into(),
                occurences: 1,
                last_update: at,
                expires_by,
                message: "550 5.1.1 mailbox unavailable".into(),
            }),
        }
        if let Some(pid) = st.pool_by_key(email) {
            for group in st.members.values_mut() {
                if let Some(m) = group.get_mut(&pid) {
                    m.bounced = at;
                    m.events.push(json!({"stamp": at, "type": "mail_bounce", "type_id": "hardbounce",
                        "value": "550 5.1.1", "mailing_id": "0", "groups_id": ""}));
                }
            }
        }
    }

    /// Simulates the recipient clicking the unsubscribe link (deactivation inside CleverReach). With the
    /// account setting [`FakeCleverReach::set_blacklist_unsubscribers`] the address goes on the blacklist
    /// and its receiver leaves every group.
    pub fn unsubscribe_via_link(&self, group_id: &str, email: &str) {
        let mut st = self.shared.lock();
        let gid: u64 = group_id.parse().expect("group id");
        let Some(pid) = st.pool_by_key(email) else { return };
        let t = now();
        if let Some(m) = st.members.get_mut(&gid).and_then(|g| g.get_mut(&pid)) {
            m.deactivated = t;
            m.last_changed = t;
            m.events.push(json!({"stamp": t, "type": "user_unsubscribe", "type_id": "1", "value": "127.0.0.1",
                "mailing_id": "0", "groups_id": gid.to_string()}));
        }
        st.emit(gid, "receiver.unsubscribed", pid);
        if st.blacklist_unsubscribers {
            let address = st.pool[&pid].email.clone();
            st.blacklist.insert(
                address.to_lowercase(),
                BlacklistRec { email: address, comment: "Unsubscribe".into(), stamp: t },
            );
            for members in st.members.values_mut() {
                members.remove(&pid);
            }
        }
        self.shared.flush_jobs(&mut st);
    }

    /// Adds a filter (segment) to a group; `operator` is `AND` or `OR`.
    pub fn add_filter(&self, group_id: &str, name: &str, operator: &str, rules: Vec<FilterRule>) -> String {
        let mut st = self.shared.lock();
        let id = st.id();
        let gid: u64 = group_id.parse().expect("group id");
        st.filters.insert(id, FilterRec { group_id: gid, name: name.into(), operator: operator.into(), rules });
        id.to_string()
    }

    // ---- inspection ---------------------------------------------------------------------

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone()
    }

    /// Non-GET calls to `/v3/…` and `/hooks/…`.
    pub fn mutating_calls(&self) -> usize {
        self.shared.lock().mutating
    }

    pub fn clear_log(&self) {
        let mut st = self.shared.lock();
        st.log.clear();
        st.mutating = 0;
    }

    /// The next `times` API calls (after authentication) answer `status`, with `Retry-After`.
    pub fn inject_failures(&self, status: u16, retry_after: Option<u64>, times: usize) {
        let mut st = self.shared.lock();
        for _ in 0..times {
            st.injected.push_back(Injection { status, retry_after });
        }
    }

    pub fn webhook_registrations(&self) -> Vec<HookRegistration> {
        self.shared.lock().hooks.clone()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.lock().deliveries.clone()
    }

    /// Waits (at most 5 s) until every queued webhook POST was made.
    pub async fn settle_webhooks(&self) {
        for _ in 0..500 {
            if self.shared.lock().pending_deliveries == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// POSTs an arbitrary event body to every registration of `group_id` right now and returns
    /// the receivers' statuses (0 = transport error). `call_token` overrides the header value.
    pub async fn post_event(&self, group_id: &str, body: Value, call_token: Option<&str>) -> Vec<u16> {
        let targets: Vec<(String, String)> = self
            .shared
            .lock()
            .hooks
            .iter()
            .filter(|h| h.condition == group_id)
            .map(|h| (h.url.clone(), call_token.map(str::to_owned).unwrap_or_else(|| h.call_token.expose().to_owned())))
            .collect();
        let mut out = Vec::new();
        for (url, token) in targets {
            let status = match self.shared.http.post(&url).header("X-CR-Calltoken", token).json(&body).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            out.push(status);
        }
        out
    }
}

// ---- HTTP handling ------------------------------------------------------------------------

fn json_resp(status: StatusCode, v: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn err(status: StatusCode, msg: &str) -> Response {
    json_resp(status, json!({"error": {"code": status.as_u16(), "message": msg}}))
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let items = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a.len(),
        _ => 0,
    };
    let resp = route(&shared, &method, &uri, &headers, &body).await;
    let mut st = shared.lock();
    if method != Method::GET && (path.starts_with("/v3") || path.starts_with("/hooks")) {
        st.mutating += 1;
    }
    st.log.push(LoggedRequest {
        method: method.to_string(),
        path,
        query: uri.query().unwrap_or_default().to_owned(),
        status: resp.status().as_u16(),
        items,
    });
    resp
}

async fn route(shared: &Arc<Shared>, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Response {
    let segs: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(|s| {
            let s = urlencoding::decode(s).map(|c| c.into_owned()).unwrap_or_else(|_| s.to_owned());
            s.strip_suffix(".json").map(str::to_owned).unwrap_or(s)
        })
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let q = query_map(uri);
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["oauth", "authorize.php"]) => return authorize(shared, &q),
        ("POST", ["oauth", "token.php"]) => return token(shared, headers, body),
        ("GET", ["v3", "debug", "ping"]) => return json_resp(StatusCode::OK, json!(true)),
        _ => {}
    }
    if !(segs.first() == Some(&"v3") || segs.first() == Some(&"hooks")) {
        return err(StatusCode::NOT_FOUND, "Not Found");
    }
    // authentication
    {
        let mut st = shared.lock();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned)
            .or_else(|| q.get("token").cloned());
        let ok = bearer.and_then(|t| st.access_tokens.get(&t).copied()).is_some_and(|exp| exp > now());
        if !ok {
            return err(StatusCode::UNAUTHORIZED, "Unauthorized: invalid or expired token");
        }
        if let Some(inj) = st.injected.pop_front() {
            let status = StatusCode::from_u16(inj.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = err(status, "injected failure");
            if let Some(s) = inj.retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            return r;
        }
    }
    let body_json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if segs.first() == Some(&"hooks") {
        return hooks(shared, method, &segs[1..], &q, &body_json).await;
    }
    let mut st = shared.lock();
    let resp = api(&mut st, method, &segs[1..], &q, &body_json);
    shared.flush_jobs(&mut st);
    resp
}

fn authorize(shared: &Arc<Shared>, q: &HashMap<String, String>) -> Response {
    let mut st = shared.lock();
    if q.get("client_id") != Some(&st.cfg.client_id) || q.get("response_type").map(String::as_str) != Some("code") {
        return err(StatusCode::BAD_REQUEST, "invalid client or response_type");
    }
    let Some(redirect) = q.get("redirect_uri").cloned() else { return err(StatusCode::BAD_REQUEST, "no redirect_uri") };
    let code = random_token(24);
    st.codes.insert(code.clone(), redirect.clone());
    let Ok(mut url) = url::Url::parse(&redirect) else { return err(StatusCode::BAD_REQUEST, "bad redirect_uri") };
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(s) = q.get("state") {
        url.query_pairs_mut().append_pair("state", s);
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn token(shared: &Arc<Shared>, headers: &HeaderMap, body: &Bytes) -> Response {
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("json"));
    let params: HashMap<String, String> = if is_json {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), value_to_string(v))).collect(),
            _ => HashMap::new(),
        }
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    };
    let (mut cid, mut csecret) = (params.get("client_id").cloned(), params.get("client_secret").cloned());
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        && let Some((i, s)) = basic.split_once(':')
    {
        cid = Some(i.to_owned());
        csecret = Some(s.to_owned());
    }
    let mut st = shared.lock();
    if cid.as_deref() != Some(st.cfg.client_id.as_str()) || csecret.as_deref() != Some(st.cfg.client_secret.as_str()) {
        return json_resp(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "client authentication failed"}),
        );
    }
    let invalid_grant =
        |d: &str| json_resp(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant", "error_description": d}));
    let with_refresh = match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = params.get("code").cloned().unwrap_or_default();
            match st.codes.remove(&code) {
                Some(redirect) if params.get("redirect_uri").is_none_or(|r| *r == redirect) => true,
                _ => return invalid_grant("invalid or used code"),
            }
        }
        Some("refresh_token") => {
            let given = params.get("refresh_token");
            if given.is_none() || given != st.refresh_token.as_ref() {
                return invalid_grant("refresh token invalid or expired");
            }
            st.refresh_grants += 1;
            true
        }
        Some("client_credentials") => false,
        _ => return json_resp(StatusCode::BAD_REQUEST, json!({"error": "unsupported_grant_type"})),
    };
    let (access, refresh, lifetime) = st.issue_tokens(with_refresh);
    let mut v = json!({"access_token": access, "expires_in": lifetime, "token_type": "bearer", "scope": "basic"});
    if let Some(r) = refresh {
        v["refresh_token"] = Value::String(r);
    }
    json_resp(StatusCode::OK, v)
}

fn group_json(id: u64, g: &GroupRec) -> Value {
    json!({"id": id.to_string(), "name": g.name, "locked": false, "backup": true, "receiver_info": "",
        "stamp": g.stamp, "last_mailing": 0, "last_changed": g.last_changed})
}

fn blacklist_json(e: &BlacklistRec) -> Value {
    json!({"email": e.email, "comment": e.comment, "stamp": e.stamp.to_string(), "isLocked": false})
}

fn gmt(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

fn bounce_json(b: &BounceRec) -> Value {
    json!({"email": b.email, "category": b.category, "occurences": b.occurences.to_string(),
        "last_update": b.last_update.to_string(), "last_update_gmt": gmt(b.last_update),
        "expires_by": b.expires_by.to_string(), "expires_by_gmt": gmt(b.expires_by),
        "bounce_message": b.message, "type": "mailing", "type_id": "0"})
}

fn paging(q: &HashMap<String, String>) -> Option<(usize, usize, String, u32)> {
    let page = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0usize);
    let size = q.get("pagesize").and_then(|p| p.parse().ok()).unwrap_or(100usize);
    if size == 0 || size > 5000 {
        return None;
    }
    let kind = q.get("type").cloned().unwrap_or_else(|| "all".into()).to_lowercase();
    let detail = q.get("detail").and_then(|d| d.parse().ok()).unwrap_or(0u32);
    Some((page, size, kind, detail))
}

fn list_page(st: &FakeState, gid: u64, pids: Vec<u64>, q: &HashMap<String, String>) -> Response {
    let (page, size, kind, detail) = match paging(q) {
        Some(p) => p,
        None => return err(StatusCode::BAD_REQUEST, "Bad Request: pagesize must be 1..5000"),
    };
    let rows: Vec<Value> = pids
        .into_iter()
        .filter(|pid| {
            let m = &st.members[&gid][pid];
            match kind.as_str() {
                "active" => m.active(),
                "inactive" => !m.active(),
                "bounce" => m.bounced > 0,
                _ => true,
            }
        })
        .skip(page * size)
        .take(size)
        .map(|pid| st.render(gid, pid, detail, true))
        .collect();
    json_resp(StatusCode::OK, Value::Array(rows))
}

fn api(st: &mut FakeState, method: &Method, segs: &[&str], q: &HashMap<String, String>, body: &Value) -> Response {
    let not_found = |what: &str| err(StatusCode::NOT_FOUND, &format!("Not Found: invalid {what}"));
    match (method.as_str(), segs) {
        ("GET", ["debug", "validate"]) => json_resp(StatusCode::OK, json!(true)),
        ("GET", ["groups"]) => {
            json_resp(StatusCode::OK, Value::Array(st.groups.iter().map(|(id, g)| group_json(*id, g)).collect()))
        }
        ("POST", ["groups"]) => {
            let name = body.get("name").map(value_to_string).unwrap_or_default();
            if name.is_empty() {
                return err(StatusCode::BAD_REQUEST, "name missing");
            }
            let id = st.id();
            let g = GroupRec { name, stamp: now(), last_changed: now() };
            let v = group_json(id, &g);
            st.groups.insert(id, g);
            st.members.insert(id, BTreeMap::new());
            json_resp(StatusCode::OK, v)
        }
        ("GET", ["groups", gid]) => match gid.parse().ok().and_then(|g: u64| st.groups.get(&g).map(|r| group_json(g, r))) {
            Some(v) => json_resp(StatusCode::OK, v),
            None => not_found("group"),
        },
        ("GET", ["attributes"]) => json_resp(
            StatusCode::OK,
            Value::Array(
                st.attributes
                    .iter()
                    .map(|a| json!({"id": a.id, "groups_id": 0, "name": a.name, "description": a.description,
                        "preview_value": "", "value": null, "type": a.kind, "tag": format!("{{{}}}", a.name.to_uppercase())}))
                    .collect(),
            ),
        ),
        ("POST", ["attributes"]) => {
            let name = body.get("name").map(value_to_string).unwrap_or_default().to_lowercase();
            if name.is_empty() {
                return err(StatusCode::BAD_REQUEST, "name missing");
            }
            if st.attributes.iter().any(|a| a.name == name) {
                return err(StatusCode::CONFLICT, "Conflict: attribute already exists");
            }
            let id = st.id();
            let kind = body.get("type").map(value_to_string).unwrap_or_else(|| "text".into());
            let description = body.get("description").map(value_to_string).unwrap_or_else(|| name.clone());
            st.attributes.push(AttrRec { id, name: name.clone(), kind: kind.clone(), description });
            json_resp(StatusCode::OK, json!({"id": id, "groups_id": 0, "name": name, "type": kind}))
        }
        // The account-wide blacklist: one list, not paged (reference §4 "Blacklist (account)").
        ("GET", ["blacklist"]) => json_resp(
            StatusCode::OK,
            Value::Array(st.blacklist.values().map(blacklist_json).collect()),
        ),
        ("GET", ["blacklist", email]) => match st.blacklist.get(&email.to_lowercase()) {
            Some(entry) => json_resp(StatusCode::OK, blacklist_json(entry)),
            None => not_found("blacklist entry"),
        },
        ("POST", ["blacklist"]) => {
            let email = body.get("email").map(value_to_string).unwrap_or_default().trim().to_owned();
            if !email.contains('@') {
                return err(StatusCode::BAD_REQUEST, "Bad Request: email missing");
            }
            let comment = body.get("comment").map(value_to_string).unwrap_or_default();
            let entry = BlacklistRec { email: email.clone(), comment, stamp: now() };
            let v = blacklist_json(&entry);
            st.blacklist.insert(email.to_lowercase(), entry);
            json_resp(StatusCode::OK, v)
        }
        ("DELETE", ["blacklist", email]) => match st.blacklist.remove(&email.to_lowercase()) {
            Some(_) => json_resp(StatusCode::OK, json!(true)),
            None => not_found("blacklist entry"),
        },
        // The account's bounces, paged like receivers (reference §4 "Bounces").
        ("GET", ["bounces"]) => {
            let Some((page, size, _, _)) = paging(q) else {
                return err(StatusCode::BAD_REQUEST, "Bad Request: pagesize must be 1..5000");
            };
            let rows: Vec<Value> = st.bounces.iter().skip(page * size).take(size).map(bounce_json).collect();
            json_resp(StatusCode::OK, Value::Array(rows))
        }
        ("DELETE", ["receivers", key]) => {
            let Some(pid) = st.pool_by_key(key) else { return not_found("receiver") };
            let gids: Vec<u64> = st.members.iter().filter(|(_, m)| m.contains_key(&pid)).map(|(g, _)| *g).collect();
            for gid in gids {
                st.members.get_mut(&gid).map(|m| m.remove(&pid));
                st.emit(gid, "receiver.deleted", pid);
            }
            st.pool.remove(&pid);
            json_resp(StatusCode::OK, json!(true))
        }
        (_, ["groups", gid, rest @ ..]) => {
            let Some(gid) = gid.parse::<u64>().ok().filter(|g| st.groups.contains_key(g)) else {
                return not_found("group");
            };
            group_api(st, method, gid, rest, q, body)
        }
        _ => err(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn group_api(
    st: &mut FakeState,
    method: &Method,
    gid: u64,
    segs: &[&str],
    q: &HashMap<String, String>,
    body: &Value,
) -> Response {
    let not_found = |what: &str| err(StatusCode::NOT_FOUND, &format!("Not Found: invalid {what}"));
    let member_pid = |st: &FakeState, key: &str| st.pool_by_key(key).filter(|p| st.members[&gid].contains_key(p));
    match (method.as_str(), segs) {
        ("GET", ["receivers"]) => {
            let pids: Vec<u64> = st.members[&gid].keys().copied().collect();
            list_page(st, gid, pids, q)
        }
        ("POST", ["receivers", "upsert"]) => upsert(st, gid, body),
        ("GET", ["receivers", key]) => match member_pid(st, key) {
            Some(pid) => json_resp(StatusCode::OK, st.render(gid, pid, 7, false)),
            None => not_found("receiver"),
        },
        ("DELETE", ["receivers", key]) => match member_pid(st, key) {
            Some(pid) => {
                st.members.get_mut(&gid).map(|m| m.remove(&pid));
                st.emit(gid, "receiver.deleted", pid);
                json_resp(StatusCode::OK, json!(true))
            }
            None => not_found("receiver"),
        },
        ("PUT", ["receivers", key, action]) => {
            let Some(pid) = member_pid(st, key) else { return not_found("receiver") };
            let t = now();
            let activate = match *action {
                "setactive" | "activate" => true,
                "setinactive" | "deactivate" => false,
                _ => return err(StatusCode::NOT_FOUND, "Not Found"),
            };
            let Some(m) = st.members.get_mut(&gid).and_then(|g| g.get_mut(&pid)) else { return not_found("receiver") };
            let was = m.active();
            if activate {
                m.deactivated = 0;
                if m.activated == 0 {
                    m.activated = t;
                }
            } else if m.deactivated == 0 {
                m.deactivated = t;
            }
            m.last_changed = t;
            m.events.push(json!({"stamp": t, "type": "api", "type_id": "REST update", "value": "127.0.0.1", "mailing_id": "0", "groups_id": gid.to_string()}));
            if was != activate {
                st.emit(gid, if activate { "receiver.subscribed" } else { "receiver.unsubscribed" }, pid);
            }
            json_resp(StatusCode::OK, json!(true))
        }
        ("GET", ["filters"]) => {
            let list: Vec<Value> = st
                .filters
                .iter()
                .filter(|(_, f)| f.group_id == gid)
                .map(|(id, f)| {
                    json!({"id": id.to_string(), "name": f.name,
                        "rules": f.rules.iter().map(|r| json!({"operator": f.operator, "field": r.field, "logic": r.logic, "condition": r.condition})).collect::<Vec<_>>()})
                })
                .collect();
            json_resp(StatusCode::OK, Value::Array(list))
        }
        ("GET", ["filters", fid, "receivers"]) => {
            let Some(f) =
                fid.parse::<u64>().ok().and_then(|f| st.filters.get(&f)).filter(|f| f.group_id == gid).cloned()
            else {
                return not_found("filter");
            };
            let pids: Vec<u64> = st.members[&gid].keys().copied().filter(|p| st.matches_filter(&f, *p)).collect();
            list_page(st, gid, pids, q)
        }
        _ => err(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn upsert(st: &mut FakeState, gid: u64, body: &Value) -> Response {
    let items: Vec<Value> = match body {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![body.clone()],
        _ => return err(StatusCode::BAD_REQUEST, "Bad Request: body must be an array"),
    };
    if items.len() > st.cfg.max_batch_size {
        return err(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    let t = now();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let email = item.get("email").map(value_to_string).unwrap_or_default().trim().to_owned();
        let valid = email.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
        if !valid {
            out.push(Value::String(format!("invalid address '{email}';")));
            continue;
        }
        let act = item.get("activated").and_then(value_to_i64);
        let deact = item.get("deactivated").and_then(value_to_i64);
        let pid = match st.pool_by_key(&email) {
            Some(p) => p,
            None => {
                let p = st.id();
                st.pool.insert(p, Pool { email: email.clone(), global_attributes: BTreeMap::new() });
                p
            }
        };
        if let Some(Value::Object(ga)) = item.get("global_attributes")
            && let Some(pool) = st.pool.get_mut(&pid)
        {
            for (k, v) in ga {
                if v.is_null() {
                    pool.global_attributes.remove(&k.to_lowercase());
                } else {
                    pool.global_attributes.insert(k.to_lowercase(), value_to_string(v));
                }
            }
        }
        let group = st.members.entry(gid).or_default();
        let is_new = !group.contains_key(&pid);
        let m = group.entry(pid).or_default();
        let was_active = m.active();
        if is_new {
            m.registered = item.get("registered").and_then(value_to_i64).filter(|r| *r > 0).unwrap_or(t);
            m.source = "RESTful API".into();
            match (act, deact) {
                (a, Some(d)) if d > 0 => {
                    m.activated = a.unwrap_or(0);
                    m.deactivated = d;
                }
                (Some(a), _) => m.activated = a,
                (None, _) => m.activated = t,
            }
        } else {
            match (act, deact) {
                (_, Some(d)) if d > 0 => {
                    if m.deactivated == 0 {
                        m.deactivated = d;
                    }
                }
                (a, Some(_)) => {
                    // deactivated: 0 reactivates
                    m.deactivated = 0;
                    m.activated = a.filter(|a| *a > 0).unwrap_or(if m.activated > 0 { m.activated } else { t });
                }
                (Some(0), None) => m.activated = 0,
                (Some(a), None) => {
                    // activated > 0 does not override a deactivation
                    if m.deactivated == 0 {
                        m.activated = a;
                    }
                }
                (None, None) => {}
            }
        }
        if let Some(s) = item.get("source").map(value_to_string) {
            m.source = s;
        }
        if let Some(Value::Object(attrs)) = item.get("attributes") {
            for (k, v) in attrs {
                if v.is_null() {
                    m.attributes.remove(k);
                } else {
                    m.attributes.insert(k.clone(), value_to_string(v));
                }
            }
        }
        if let Some(Value::Array(tags)) = item.get("tags") {
            for tag in tags.iter().map(value_to_string) {
                if let Some(rm) = tag.strip_prefix('-') {
                    if let Some(origin) = rm.strip_suffix(".*") {
                        m.tags.retain(|t| !t.starts_with(&format!("{origin}.")));
                    } else {
                        m.tags.retain(|t| t != rm);
                    }
                } else if !m.tags.contains(&tag) {
                    m.tags.push(tag);
                }
            }
        }
        m.last_changed = t;
        let type_id = if is_new { "REST insert" } else { "REST update" };
        m.events.push(json!({"stamp": t, "type": "api", "type_id": type_id, "value": "127.0.0.1", "mailing_id": "0", "groups_id": gid.to_string()}));
        let now_active = m.active();
        if is_new {
            st.emit(gid, "receiver.created", pid);
        } else if was_active != now_active {
            st.emit(gid, if now_active { "receiver.subscribed" } else { "receiver.unsubscribed" }, pid);
        } else {
            st.emit(gid, "receiver.updated", pid);
        }
        out.push(json!({"status": "upsert success", "id": pid.to_string()}));
    }
    json_resp(StatusCode::OK, Value::Array(out))
}

async fn hooks(
    shared: &Arc<Shared>,
    method: &Method,
    segs: &[&str],
    q: &HashMap<String, String>,
    body: &Value,
) -> Response {
    match (method.as_str(), segs) {
        ("GET", ["eventhook"]) => {
            let list: Vec<Value> = shared
                .lock()
                .hooks
                .iter()
                .map(|h| json!({"url": h.url, "event": h.event, "condition": h.condition}))
                .collect();
            json_resp(StatusCode::OK, Value::Array(list))
        }
        ("POST", ["eventhook"]) => {
            let get = |k: &str| body.get(k).map(value_to_string).unwrap_or_default();
            let (url, event, condition, verify) = (get("url"), get("event"), get("condition"), get("verify"));
            if url.is_empty() || event.is_empty() || !(10..=50).contains(&verify.chars().count()) {
                return err(StatusCode::BAD_REQUEST, "Bad Request: url, event and verify (10-50 chars) required");
            }
            let challenge: String = (0..10).map(|_| char::from(b'0' + rand::rng().random_range(0..10u8))).collect();
            let Ok(mut check) = url::Url::parse(&url) else { return err(StatusCode::BAD_REQUEST, "bad url") };
            check.query_pairs_mut().append_pair("secret", &challenge);
            let answer = match shared.http.get(check).send().await {
                Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
                _ => String::new(),
            };
            if answer != format!("{verify} {challenge}") {
                return err(StatusCode::BAD_REQUEST, "Bad Request: verification failed");
            }
            let reg = HookRegistration {
                url,
                event,
                condition,
                call_token: Secret::new(random_token(64)),
                secret: Secret::new(random_token(32)),
            };
            let v = json!({"success": true, "call_token": reg.call_token.expose(), "secret": reg.secret.expose()});
            shared.lock().hooks.push(reg);
            json_resp(StatusCode::OK, v)
        }
        ("DELETE", ["eventhook", event]) => {
            let mut st = shared.lock();
            let before = st.hooks.len();
            let cond = q.get("condition").cloned();
            st.hooks.retain(|h| !(h.event == *event && cond.as_ref().is_none_or(|c| *c == h.condition)));
            let removed = before != st.hooks.len();
            if removed { json_resp(StatusCode::OK, json!(true)) } else { err(StatusCode::NOT_FOUND, "Not Found") }
        }
        _ => err(StatusCode::NOT_FOUND, "Not Found"),
    }
}
