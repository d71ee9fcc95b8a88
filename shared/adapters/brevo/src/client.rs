//! HTTP client for the parts of the Brevo v3 API the sync needs.
//!
//! One [`BrevoClient`] per account and process; clones share the HTTP connection pool and the rate
//! limiter. Requests are paced below Brevo's limits (10 req/s on `/contacts…`, 100 req/h elsewhere,
//! both configurable); a 429 blocks the bucket until `x-sib-ratelimit-reset` has passed and the
//! request is repeated; 5xx and timeouts are retried with exponential backoff and full jitter, but
//! only for idempotent requests (GET, PUT, DELETE, list add/remove).
//!
//! Nothing here logs or reports an e-mail address or the API key.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::limiter::{Bucket, RateLimiter};
use crate::types::{ApiKey, BrevoAttribute, BrevoContact, BrevoList, RawAttribute, mask_emails_in};

/// Production base URL.
pub const BREVO_BASE_URL: &str = "https://api.brevo.com/v3";
/// Brevo accepts at most this many e-mails per list add/remove request.
pub const MAX_LIST_BATCH: usize = 150;
/// Maximum page size of `GET /contacts/lists/{id}/contacts`.
pub const MAX_LIST_MEMBERS_PAGE: usize = 500;
/// Maximum page size of `GET /contacts`.
pub const MAX_CONTACTS_PAGE: usize = 1000;
const MAX_LISTS_PAGE: usize = 50;

/// Configuration of a [`BrevoClient`].
#[derive(Debug, Clone)]
pub struct BrevoConfig {
    /// Including `/v3`, without trailing slash needed: `https://api.brevo.com/v3`.
    pub base_url: String,
    pub api_key: ApiKey,
    /// Budget for `/contacts…` endpoints (Brevo general plans: 10).
    pub contacts_per_second: u32,
    /// Budget for all other endpoints (Brevo general plans: 100).
    pub others_per_hour: u32,
    /// Attempts per request in total (first try included) for retryable failures.
    pub max_attempts: u32,
    /// First backoff ceiling; doubles per attempt up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// The longest the client waits for the rate limiter before giving up with `RateLimited`.
    pub max_rate_limit_wait: Duration,
    /// Page size for list members (≤ 500).
    pub list_page_size: usize,
    /// Page size for account contacts (≤ 1000).
    pub contacts_page_size: usize,
}

impl BrevoConfig {
    /// Defaults matching Brevo's general-plan limits.
    pub fn new(base_url: impl Into<String>, api_key: ApiKey) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            contacts_per_second: 10,
            others_per_hour: 100,
            max_attempts: 4,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(60),
            list_page_size: MAX_LIST_MEMBERS_PAGE,
            contacts_page_size: MAX_CONTACTS_PAGE,
        }
    }
}

/// Errors of the Brevo client. `Display` never contains an e-mail address or the key.
#[derive(Debug, thiserror::Error)]
pub enum BrevoError {
    #[error("brevo: not found (code {code})")]
    NotFound { code: String },
    #[error("brevo: rate limited, retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error("brevo: invalid request (HTTP {status}, code {code}): {message}")]
    InvalidRequest {
        status: u16,
        code: String,
        /// Brevo's message with e-mail addresses masked.
        message: String,
        metadata: Option<Value>,
    },
    #[error("brevo: authentication failed (HTTP {status}, code {code})")]
    Auth { status: u16, code: String },
    #[error("brevo: transient failure{}: {detail}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Transient { status: Option<u16>, detail: String },
    #[error("brevo: unexpected response: {0}")]
    Decode(String),
    #[error("brevo: configuration: {0}")]
    Config(String),
}

impl BrevoError {
    /// `POST /contacts` without `updateEnabled` for an existing contact. Brevo sometimes uses
    /// `invalid_parameter` for it, so `metadata.duplicate_identifiers` counts as well.
    pub fn is_duplicate(&self) -> bool {
        match self {
            BrevoError::InvalidRequest { code, metadata, .. } => {
                code == "duplicate_parameter"
                    || metadata.as_ref().and_then(|m| m.get("duplicate_identifiers")).is_some_and(|d| !d.is_null())
            }
            _ => false,
        }
    }

    /// Worth retrying later (rate limit or transient failure).
    pub fn is_retryable(&self) -> bool {
        matches!(self, BrevoError::RateLimited { .. } | BrevoError::Transient { .. })
    }
}

/// Outcome of [`BrevoClient::upsert_contact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// 201: a new contact with this id.
    Created { id: i64 },
    /// 204: an existing contact was updated (Brevo returns no id then).
    Updated,
}

/// What to write with [`BrevoClient::upsert`]. `email_blacklisted` stays `None` (not sent) unless the
/// caller deliberately sets it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactUpsert {
    pub attributes: Map<String, Value>,
    pub list_ids: Vec<i64>,
    pub email_blacklisted: Option<bool>,
}

/// Per-e-mail result of list add/remove (e-mails as sent, lower-cased by Brevo possibly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListMembershipOutcome {
    pub success: Vec<String>,
    /// Already (not) in the list, or unknown contact.
    pub failure: Vec<String>,
}

/// Marketing webhook event names as `POST /webhooks` expects them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketingEvent {
    Unsubscribed,
    ListAddition,
    ContactUpdated,
    ContactDeleted,
    HardBounce,
    SoftBounce,
    Spam,
    Delivered,
    Opened,
    Click,
}

impl MarketingEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            MarketingEvent::Unsubscribed => "unsubscribed",
            MarketingEvent::ListAddition => "listAddition",
            MarketingEvent::ContactUpdated => "contactUpdated",
            MarketingEvent::ContactDeleted => "contactDeleted",
            MarketingEvent::HardBounce => "hardBounce",
            MarketingEvent::SoftBounce => "softBounce",
            MarketingEvent::Spam => "spam",
            MarketingEvent::Delivered => "delivered",
            MarketingEvent::Opened => "opened",
            MarketingEvent::Click => "click",
        }
    }
}

/// A registered webhook as `GET /webhooks` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BrevoWebhook {
    pub id: i64,
    pub url: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub events: Vec<String>,
    /// `marketing`, `transactional` (listed as `transac`) or `inbound`.
    #[serde(default, rename = "type")]
    pub webhook_type: String,
}

/// Brevo API client. Cheap to clone; clones share the connection pool and the rate limiter.
#[derive(Clone)]
pub struct BrevoClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: BrevoConfig,
    base: String,
    limiter: RateLimiter,
}

impl std::fmt::Debug for BrevoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrevoClient").field("base_url", &self.inner.base).field("api_key", &"<redacted>").finish()
    }
}

struct Call<'a> {
    method: Method,
    /// Path below the base URL, already percent-encoded.
    path: String,
    /// Path template for logs (no e-mail in it).
    route: &'static str,
    query: Vec<(&'a str, String)>,
    body: Option<Value>,
    idempotent: bool,
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

#[derive(Deserialize)]
struct ContactPage {
    #[serde(default)]
    contacts: Vec<BrevoContact>,
    #[serde(default)]
    count: Option<u64>,
}

impl BrevoClient {
    /// Builds a client with its own `reqwest::Client`.
    pub fn new(config: BrevoConfig) -> Result<Self, BrevoError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| BrevoError::Config(format!("http client: {}", e.without_url())))?;
        Self::with_http_client(config, http)
    }

    /// Builds a client on a shared `reqwest::Client` (one per process).
    pub fn with_http_client(config: BrevoConfig, http: reqwest::Client) -> Result<Self, BrevoError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        url::Url::parse(&base).map_err(|e| BrevoError::Config(format!("base_url: {e}")))?;
        if config.max_attempts == 0 {
            return Err(BrevoError::Config("max_attempts must be at least 1".into()));
        }
        let limiter = RateLimiter::new(config.contacts_per_second, config.others_per_hour);
        Ok(Self { inner: Arc::new(Inner { http, config, base, limiter }) })
    }

    fn config(&self) -> &BrevoConfig {
        &self.inner.config
    }

    // ---- contacts -------------------------------------------------------------------------------

    /// `GET /contacts/{email}`; `None` when Brevo does not know the address.
    pub async fn get_contact(&self, email: &str) -> Result<Option<BrevoContact>, BrevoError> {
        let call = Call::get(format!("contacts/{}", enc(email)), "contacts/{email}");
        match self.execute(call).await {
            Ok(reply) => decode::<BrevoContact>(&reply).map(Some),
            Err(BrevoError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates or updates a contact (`POST /contacts` with `updateEnabled: true`), adding it to
    /// `list_ids`. Never sends `emailBlacklisted`, so a blacklisted contact stays blacklisted.
    pub async fn upsert_contact(
        &self,
        email: &str,
        attributes: Map<String, Value>,
        list_ids: &[i64],
    ) -> Result<UpsertOutcome, BrevoError> {
        self.upsert(email, &ContactUpsert { attributes, list_ids: list_ids.to_vec(), email_blacklisted: None }).await
    }

    /// Like [`Self::upsert_contact`], with explicit control over `emailBlacklisted`.
    pub async fn upsert(&self, email: &str, upsert: &ContactUpsert) -> Result<UpsertOutcome, BrevoError> {
        let mut body = json!({ "email": email, "updateEnabled": true });
        if !upsert.attributes.is_empty() {
            body["attributes"] = Value::Object(upsert.attributes.clone());
        }
        if !upsert.list_ids.is_empty() {
            body["listIds"] = json!(upsert.list_ids);
        }
        if let Some(b) = upsert.email_blacklisted {
            body["emailBlacklisted"] = json!(b);
        }
        let call =
            Call { body: Some(body), idempotent: false, ..Call::new(Method::POST, "contacts".into(), "contacts") };
        let reply = self.execute(call).await?;
        if reply.status == 204 || reply.body.is_empty() {
            return Ok(UpsertOutcome::Updated);
        }
        #[derive(Deserialize)]
        struct Created {
            id: i64,
        }
        let created: Created = decode(&reply)?;
        Ok(UpsertOutcome::Created { id: created.id })
    }

    /// Sets or clears the account-wide e-mail blacklist flag (`PUT /contacts/{email}`).
    /// Un-blacklisting a contact who unsubscribed may be illegal; only call it deliberately.
    pub async fn set_blacklisted(&self, email: &str, blacklisted: bool) -> Result<(), BrevoError> {
        let call = Call {
            body: Some(json!({ "emailBlacklisted": blacklisted })),
            ..Call::new(Method::PUT, format!("contacts/{}", enc(email)), "contacts/{email}")
        };
        self.execute(call).await.map(|_| ())
    }

    /// Deletes a contact. `Ok(false)` when it did not exist (also after a retried delete).
    pub async fn delete_contact(&self, email: &str) -> Result<bool, BrevoError> {
        let call = Call::new(Method::DELETE, format!("contacts/{}", enc(email)), "contacts/{email}");
        match self.execute(call).await {
            Ok(_) => Ok(true),
            Err(BrevoError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // ---- list membership ------------------------------------------------------------------------

    /// Adds existing contacts to a list, at most 150 per request.
    pub async fn add_to_list<S: AsRef<str>>(
        &self,
        list_id: i64,
        emails: &[S],
    ) -> Result<ListMembershipOutcome, BrevoError> {
        self.list_membership(list_id, emails, "add").await
    }

    /// Removes contacts from a list (membership only; blacklist untouched), at most 150 per request.
    pub async fn remove_from_list<S: AsRef<str>>(
        &self,
        list_id: i64,
        emails: &[S],
    ) -> Result<ListMembershipOutcome, BrevoError> {
        self.list_membership(list_id, emails, "remove").await
    }

    async fn list_membership<S: AsRef<str>>(
        &self,
        list_id: i64,
        emails: &[S],
        action: &'static str,
    ) -> Result<ListMembershipOutcome, BrevoError> {
        let mut outcome = ListMembershipOutcome::default();
        for chunk in emails.chunks(MAX_LIST_BATCH) {
            let chunk: Vec<&str> = chunk.iter().map(AsRef::as_ref).collect();
            let route = if action == "add" {
                "contacts/lists/{id}/contacts/add"
            } else {
                "contacts/lists/{id}/contacts/remove"
            };
            let call = Call {
                body: Some(json!({ "emails": chunk })),
                ..Call::new(Method::POST, format!("contacts/lists/{list_id}/contacts/{action}"), route)
            };
            match self.execute(call).await {
                Ok(reply) => {
                    let (success, failure) = parse_membership(&reply)?;
                    outcome.success.extend(success);
                    outcome.failure.extend(failure);
                }
                // Brevo answers 400 when nothing in the batch could be changed ("Contact already in
                // list and/or does not exist"): report the batch as failures, not as an error.
                Err(BrevoError::InvalidRequest { status: 400, code, message, .. })
                    if code == "invalid_parameter"
                        && (message.contains("already") || message.contains("does not exist")) =>
                {
                    tracing::debug!(list_id, action, batch = chunk.len(), "brevo: no contact of the batch changed");
                    outcome.failure.extend(chunk.into_iter().map(str::to_owned));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(outcome)
    }

    // ---- paging ---------------------------------------------------------------------------------

    /// All contacts of a list (optionally only those modified since `modified_since`), paged until exhausted.
    pub async fn list_contacts(
        &self,
        list_id: i64,
        modified_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<BrevoContact>, BrevoError> {
        let limit = self.config().list_page_size.clamp(1, MAX_LIST_MEMBERS_PAGE);
        self.page_contacts(
            format!("contacts/lists/{list_id}/contacts"),
            "contacts/lists/{id}/contacts",
            limit,
            modified_since,
        )
        .await
    }

    /// All contacts of the account (optionally only those modified since), paged until exhausted.
    pub async fn account_contacts(
        &self,
        modified_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<BrevoContact>, BrevoError> {
        let limit = self.config().contacts_page_size.clamp(1, MAX_CONTACTS_PAGE);
        self.page_contacts("contacts".into(), "contacts", limit, modified_since).await
    }

    async fn page_contacts(
        &self,
        path: String,
        route: &'static str,
        limit: usize,
        modified_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<BrevoContact>, BrevoError> {
        let mut all = Vec::new();
        let mut offset = 0usize;
        loop {
            let (page, next) = self.contacts_page(path.clone(), route, limit, offset, modified_since).await?;
            all.extend(page);
            match next {
                Some(n) => offset = n,
                None => return Ok(all),
            }
        }
    }

    /// One page of a list's contacts from `offset` (sorted by creation, oldest first; optionally only
    /// those modified since `modified_since`), and the offset of the next page (`None` after the last).
    pub async fn list_contacts_page(
        &self,
        list_id: i64,
        modified_since: Option<DateTime<Utc>>,
        offset: usize,
    ) -> Result<(Vec<BrevoContact>, Option<usize>), BrevoError> {
        let limit = self.config().list_page_size.clamp(1, MAX_LIST_MEMBERS_PAGE);
        let path = format!("contacts/lists/{list_id}/contacts");
        self.contacts_page(path, "contacts/lists/{id}/contacts", limit, offset, modified_since).await
    }

    async fn contacts_page(
        &self,
        path: String,
        route: &'static str,
        limit: usize,
        offset: usize,
        modified_since: Option<DateTime<Utc>>,
    ) -> Result<(Vec<BrevoContact>, Option<usize>), BrevoError> {
        let mut query = vec![("limit", limit.to_string()), ("offset", offset.to_string()), ("sort", "asc".to_owned())];
        if let Some(since) = modified_since {
            query.push(("modifiedSince", format_modified_since(since)));
        }
        let call = Call { query, ..Call::get(path, route) };
        let page: ContactPage = decode(&self.execute(call).await?)?;
        let n = page.contacts.len();
        let next = offset + n;
        let total_reached = page.count.is_some_and(|c| next as u64 >= c);
        Ok((page.contacts, (n == limit && !total_reached).then_some(next)))
    }

    // ---- account metadata -----------------------------------------------------------------------

    /// All contact lists (paged, 50 per request).
    pub async fn lists(&self) -> Result<Vec<BrevoList>, BrevoError> {
        #[derive(Deserialize)]
        struct ListsPage {
            #[serde(default)]
            lists: Vec<BrevoList>,
            #[serde(default)]
            count: Option<u64>,
        }
        let mut all = Vec::new();
        loop {
            let query =
                vec![("limit", MAX_LISTS_PAGE.to_string()), ("offset", all.len().to_string()), ("sort", "asc".into())];
            let call = Call { query, ..Call::get("contacts/lists".into(), "contacts/lists") };
            let page: ListsPage = decode(&self.execute(call).await?)?;
            let n = page.lists.len();
            all.extend(page.lists);
            if n < MAX_LISTS_PAGE || page.count.is_some_and(|c| all.len() as u64 >= c) {
                return Ok(all);
            }
        }
    }

    /// Contact attribute definitions with their category (normal, category, transactional, …).
    pub async fn attributes(&self) -> Result<Vec<BrevoAttribute>, BrevoError> {
        #[derive(Deserialize)]
        struct Attributes {
            #[serde(default)]
            attributes: Vec<RawAttribute>,
        }
        let reply = self.execute(Call::get("contacts/attributes".into(), "contacts/attributes")).await?;
        let parsed: Attributes = decode(&reply)?;
        Ok(parsed.attributes.into_iter().map(BrevoAttribute::from).collect())
    }

    // ---- webhooks -------------------------------------------------------------------------------

    /// Registers a marketing webhook that authenticates with `Authorization: Bearer <token>`.
    pub async fn create_webhook(
        &self,
        url: &str,
        events: &[MarketingEvent],
        bearer_token: &str,
        description: &str,
    ) -> Result<i64, BrevoError> {
        let body = json!({
            "url": url,
            "description": description,
            "type": "marketing",
            "events": events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
            "batched": false,
            "auth": { "type": "bearer", "token": bearer_token },
        });
        let call =
            Call { body: Some(body), idempotent: false, ..Call::new(Method::POST, "webhooks".into(), "webhooks") };
        #[derive(Deserialize)]
        struct Created {
            id: i64,
        }
        let created: Created = decode(&self.execute(call).await?)?;
        Ok(created.id)
    }

    /// Gives a webhook another bearer token (`PUT /webhooks/{webhookId}` with only `auth`; Brevo keeps the
    /// other settings). Used by the token rotation (M3). The token is in the body only, never logged.
    pub async fn update_webhook_token(&self, id: i64, bearer_token: &str) -> Result<(), BrevoError> {
        let body = json!({ "auth": { "type": "bearer", "token": bearer_token } });
        let call = Call { body: Some(body), ..Call::new(Method::PUT, format!("webhooks/{id}"), "webhooks/{id}") };
        self.execute(call).await?;
        Ok(())
    }

    /// Deletes a webhook (`DELETE /webhooks/{webhookId}`). `Ok(false)` when it did not exist.
    pub async fn delete_webhook(&self, id: i64) -> Result<bool, BrevoError> {
        match self.execute(Call::new(Method::DELETE, format!("webhooks/{id}"), "webhooks/{id}")).await {
            Ok(_) => Ok(true),
            Err(BrevoError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Marketing webhooks of the account (`GET /webhooks?type=marketing`).
    pub async fn marketing_webhooks(&self) -> Result<Vec<BrevoWebhook>, BrevoError> {
        #[derive(Deserialize)]
        struct Hooks {
            #[serde(default)]
            webhooks: Vec<BrevoWebhook>,
        }
        let call = Call { query: vec![("type", "marketing".into())], ..Call::get("webhooks".into(), "webhooks") };
        let hooks: Hooks = decode(&self.execute(call).await?)?;
        Ok(hooks.webhooks)
    }

    // ---- transport ------------------------------------------------------------------------------

    async fn execute(&self, call: Call<'_>) -> Result<Reply, BrevoError> {
        let cfg = self.config();
        let bucket = Bucket::of(&call.path);
        let mut url = url::Url::parse(&format!("{}/{}", self.inner.base, call.path))
            .map_err(|e| BrevoError::Config(format!("url for {}: {e}", call.route)))?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let last = attempt >= cfg.max_attempts;
            self.inner
                .limiter
                .acquire(bucket, cfg.max_rate_limit_wait)
                .await
                .map_err(|w| BrevoError::RateLimited { retry_after: w.0 })?;
            let mut req = self
                .inner
                .http
                .request(call.method.clone(), url.clone())
                .timeout(cfg.request_timeout)
                .header("api-key", cfg.api_key.expose())
                .header("accept", "application/json");
            if let Some(body) = &call.body {
                req = req.json(body);
            }
            let resp = match req.send().await {
                Ok(resp) => resp,
                Err(e) => {
                    // A connection that could not be opened never reached Brevo: safe to retry anyway.
                    let retry = call.idempotent || e.is_connect();
                    let detail = if e.is_timeout() { "timeout".to_owned() } else { e.without_url().to_string() };
                    tracing::warn!(route = call.route, method = %call.method, attempt, %detail, "brevo: request failed");
                    if retry && !last {
                        self.backoff(attempt).await;
                        continue;
                    }
                    return Err(BrevoError::Transient { status: None, detail });
                }
            };
            let status = resp.status().as_u16();
            let reset = resp
                .headers()
                .get("x-sib-ratelimit-reset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64);
            let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            tracing::debug!(route = call.route, method = %call.method, status, attempt, "brevo: response");
            optisync_ports::metrics::esp_call("brevo", status == 429);
            match status {
                200..=299 => return Ok(Reply { status, body }),
                429 => {
                    let wait = reset.unwrap_or(Duration::from_secs(1));
                    self.inner.limiter.block_for(bucket, wait);
                    tracing::warn!(route = call.route, attempt, reset_secs = wait.as_secs_f64(), "brevo: rate limited");
                    // A 429 means the request was not processed: repeating it is safe for any method.
                    if last || wait > cfg.max_rate_limit_wait {
                        return Err(BrevoError::RateLimited { retry_after: wait });
                    }
                    continue;
                }
                500..=599 => {
                    tracing::warn!(route = call.route, method = %call.method, status, attempt, "brevo: server error");
                    if call.idempotent && !last {
                        self.backoff(attempt).await;
                        continue;
                    }
                    return Err(BrevoError::Transient { status: Some(status), detail: error_text(&body) });
                }
                _ => return Err(client_error(status, &body)),
            }
        }
    }

    async fn backoff(&self, attempt: u32) {
        let cfg = self.config();
        let ceiling = cfg.backoff_base.saturating_mul(1u32 << (attempt - 1).min(16)).min(cfg.backoff_max);
        let nanos = ceiling.as_nanos().min(u128::from(u64::MAX)) as u64;
        let wait = Duration::from_nanos(if nanos == 0 { 0 } else { rand::rng().random_range(0..=nanos) });
        tokio::time::sleep(wait).await;
    }
}

impl<'a> Call<'a> {
    fn new(method: Method, path: String, route: &'static str) -> Self {
        let idempotent = method != Method::POST || route.ends_with("/add") || route.ends_with("/remove");
        Self { method, path, route, query: vec![], body: None, idempotent }
    }

    fn get(path: String, route: &'static str) -> Self {
        Self::new(Method::GET, path, route)
    }
}

/// Percent-encodes one path segment (e-mail identifiers: `+`, `@`, non-ASCII).
fn enc(segment: &str) -> String {
    urlencoding::encode(segment.trim()).into_owned()
}

/// `modifiedSince` as Brevo wants it: RFC 3339 with an explicit offset (URL-encoding happens later).
pub fn format_modified_since(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, false)
}

fn decode<T: for<'de> Deserialize<'de>>(reply: &Reply) -> Result<T, BrevoError> {
    // The decoder's message may quote a value of the reply (a contact's address): only its kind is kept
    // (R-J5, M10).
    serde_json::from_slice(&reply.body).map_err(|e| {
        BrevoError::Decode(format!("HTTP {}: {}", reply.status, optisync_domain::decode_problem(&e.to_string())))
    })
}

fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => mask_emails_in(&format!("{}: {}", e.code.unwrap_or_default(), e.message.unwrap_or_default())),
        Err(_) => format!("{} bytes of non-JSON body", body.len()),
    }
}

fn client_error(status: u16, body: &[u8]) -> BrevoError {
    let parsed =
        serde_json::from_slice::<ErrorBody>(body).unwrap_or(ErrorBody { code: None, message: None, metadata: None });
    let code = parsed.code.unwrap_or_default();
    match status {
        401 | 403 => BrevoError::Auth { status, code },
        404 => BrevoError::NotFound { code },
        _ => BrevoError::InvalidRequest {
            status,
            code,
            message: mask_emails_in(&parsed.message.unwrap_or_default()),
            metadata: parsed.metadata,
        },
    }
}

/// Parses the add/remove answer; the spec nests it in `contacts`, its examples do not.
fn parse_membership(reply: &Reply) -> Result<(Vec<String>, Vec<String>), BrevoError> {
    if reply.body.is_empty() {
        return Ok((vec![], vec![]));
    }
    let v: Value = decode(reply)?;
    let inner = v.get("contacts").filter(|c| c.is_object()).unwrap_or(&v);
    let strings = |key: &str| -> Vec<String> {
        inner
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    Ok((strings("success"), strings("failure")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_parses_nested_and_flat_shapes() {
        let nested = Reply { status: 201, body: br#"{"contacts":{"success":["a"],"failure":["b"]}}"#.to_vec() };
        let flat = Reply { status: 201, body: br#"{"success":["a"],"failure":["b"]}"#.to_vec() };
        for r in [nested, flat] {
            assert_eq!(parse_membership(&r).unwrap(), (vec!["a".to_owned()], vec!["b".to_owned()]));
        }
    }

    #[test]
    fn error_display_masks_emails() {
        let err = client_error(400, br#"{"code":"invalid_parameter","message":"Invalid email max@example.com"}"#);
        let shown = err.to_string();
        assert!(!shown.contains("max@example.com"), "{shown}");
        assert!(shown.contains("m***@e***.com"));
    }

    #[test]
    fn m10_a_reply_that_does_not_decode_names_no_value_of_it() {
        // A contact whose `id` came as the address: the decoder would quote it.
        let reply = Reply { status: 200, body: br#"{"id":"lena.schmidt@example.org","email":"x"}"#.to_vec() };
        let err = decode::<BrevoContact>(&reply).unwrap_err().to_string();
        assert!(!err.contains('@') && !err.contains("lena"), "{err}");
        assert!(err.contains("HTTP 200") && err.contains("invalid type"), "{err}");
    }

    #[test]
    fn duplicate_is_recognised_by_code_or_metadata() {
        let a = client_error(400, br#"{"code":"duplicate_parameter","message":"x"}"#);
        let b = client_error(
            400,
            br#"{"code":"invalid_parameter","message":"x","metadata":{"duplicate_identifiers":["email"]}}"#,
        );
        let c = client_error(400, br#"{"code":"invalid_parameter","message":"x"}"#);
        assert!(a.is_duplicate() && b.is_duplicate() && !c.is_duplicate());
    }

    #[test]
    fn modified_since_has_an_offset() {
        let at = DateTime::parse_from_rfc3339("2025-03-01T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(format_modified_since(at), "2025-03-01T10:00:00.000+00:00");
    }

    #[test]
    fn config_debug_hides_the_key() {
        let cfg = BrevoConfig::new(BREVO_BASE_URL, ApiKey::new("xkeysib-very-secret"));
        assert!(!format!("{cfg:?}").contains("very-secret"));
    }
}
