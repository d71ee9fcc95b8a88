//! The CleverReach REST v3 client: token handling, rate limiting, retries, typed operations.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rand::Rng as _;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Mutex;

use bytes::Bytes;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::model::lenient::value_to_string;
use crate::model::{
    Attribute, BlacklistEntry, Bounce, Filter, Group, Receiver, ReceiverType, ReceiverUpsert, UpsertOutcome,
};
use crate::oauth::{OAuthConfig, TokenSet, TokenStore};
use crate::secret::{Secret, redact_emails};

/// Largest page size CleverReach accepts for receiver lists.
pub const MAX_PAGE_SIZE: usize = 5000;

/// Bounces per page of `GET /v3/bounces.json` (the page size integrators use, reference §4 "Bounces").
pub const BOUNCE_PAGE_SIZE: usize = 500;

/// Client settings. `new` fills sensible defaults; all fields are public.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base of `/v3/…` and `/hooks/…`, default `https://rest.cleverreach.com`.
    pub rest_base: String,
    /// Base of `/oauth/…`, default `https://rest.cleverreach.com`.
    pub oauth_base: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_uri: String,
    /// Requests per second shared by all clones; `<= 0` = unlimited.
    pub requests_per_second: f64,
    /// Attempts per call (first try included), at least 1.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Upper bound for a `Retry-After` wait.
    pub max_retry_after: Duration,
    /// Refresh tokens older than this even if `expires_in` says more (official core: 7 days).
    pub max_token_age: Duration,
    /// Refresh this long before the token is due.
    pub refresh_skew: Duration,
    /// First upsert batch size; halved on 413/failure.
    pub initial_batch_size: usize,
    /// Page size for full reads (≤ 5000).
    pub page_size: usize,
    pub request_timeout: Duration,
}

impl ClientConfig {
    pub fn new(client_id: impl Into<String>, client_secret: Secret, redirect_uri: impl Into<String>) -> Self {
        Self {
            rest_base: "https://rest.cleverreach.com".into(),
            oauth_base: "https://rest.cleverreach.com".into(),
            client_id: client_id.into(),
            client_secret,
            redirect_uri: redirect_uri.into(),
            requests_per_second: 5.0,
            max_attempts: 4,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            max_token_age: Duration::from_secs(7 * 24 * 3600),
            refresh_skew: Duration::from_secs(300),
            initial_batch_size: 250,
            page_size: MAX_PAGE_SIZE,
            request_timeout: Duration::from_secs(900),
        }
    }

    /// Points REST, hooks and OAuth at one base URL (e.g. the fake server).
    pub fn with_base_url(mut self, base: &str) -> Self {
        self.rest_base = base.trim_end_matches('/').to_owned();
        self.oauth_base = self.rest_base.clone();
        self
    }

    /// The OAuth app's settings (authorise URL, code exchange, refresh).
    pub fn oauth(&self) -> OAuthConfig {
        OAuthConfig {
            oauth_base: self.oauth_base.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            redirect_uri: self.redirect_uri.clone(),
        }
    }
}

/// The process-wide HTTP client (connection pool shared by every CleverReach client).
pub fn shared_http_client() -> reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("optisync-cleverreach/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("reqwest client")
    })
    .clone()
}

struct RateLimiter {
    interval: Option<Duration>,
    next: std::sync::Mutex<Instant>,
}

impl RateLimiter {
    fn new(rps: f64) -> Self {
        let interval = (rps > 0.0 && rps.is_finite()).then(|| Duration::from_secs_f64(1.0 / rps));
        Self { interval, next: std::sync::Mutex::new(Instant::now()) }
    }

    async fn acquire(&self) {
        let Some(interval) = self.interval else { return };
        let wait = {
            let mut next = self.next.lock().expect("rate limiter poisoned");
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

struct Inner {
    cfg: ClientConfig,
    oauth: OAuthConfig,
    http: reqwest::Client,
    limiter: RateLimiter,
    tokens: Mutex<Option<TokenSet>>,
    store: Arc<dyn TokenStore>,
}

/// CleverReach REST v3 client. Cheap to clone; clones share tokens and the rate limit.
#[derive(Clone)]
pub struct CleverReachClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CleverReachClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleverReachClient").field("rest_base", &self.inner.cfg.rest_base).finish_non_exhaustive()
    }
}

/// Answer of a webhook registration.
#[derive(Debug, Clone)]
pub struct WebhookRegistration {
    /// Sent by CleverReach as `X-CR-Calltoken` on every event call.
    pub call_token: Secret,
    /// Used by CleverReach to encrypt fields (not needed for pool-id events).
    pub secret: Secret,
}

enum Body {
    None,
    Json(Value),
}

impl CleverReachClient {
    /// A client using the process-wide HTTP client.
    pub fn new(cfg: ClientConfig, store: Arc<dyn TokenStore>) -> Self {
        Self::with_http_client(cfg, store, shared_http_client())
    }

    pub fn with_http_client(cfg: ClientConfig, store: Arc<dyn TokenStore>, http: reqwest::Client) -> Self {
        let limiter = RateLimiter::new(cfg.requests_per_second);
        let oauth = cfg.oauth();
        Self { inner: Arc::new(Inner { cfg, oauth, http, limiter, tokens: Mutex::new(None), store }) }
    }

    /// Installs previously persisted tokens (not saved again).
    pub async fn set_tokens(&self, tokens: TokenSet) {
        *self.inner.tokens.lock().await = Some(tokens);
    }

    /// The current token set, if any.
    pub async fn tokens(&self) -> Option<TokenSet> {
        self.inner.tokens.lock().await.clone()
    }

    /// Browser URL for the authorization-code flow (`grant=basic`).
    pub fn authorize_url(&self, state: &str) -> Result<String> {
        self.inner.oauth.authorize_url(state)
    }

    /// Exchanges the `code` from the redirect for tokens, persists and installs them.
    pub async fn exchange_code(&self, code: &str) -> Result<TokenSet> {
        self.inner.limiter.acquire().await;
        let tokens = self.inner.oauth.exchange_code(&self.inner.http, code).await?;
        let mut guard = self.inner.tokens.lock().await;
        self.inner.store.save(&tokens).await.map_err(Error::TokenStore)?;
        *guard = Some(tokens.clone());
        Ok(tokens)
    }

    /// Refreshes now (e.g. from a scheduled job), with the newest refresh token kept (M5).
    pub async fn refresh_now(&self) -> Result<TokenSet> {
        let mut guard = self.inner.tokens.lock().await;
        self.refresh_locked(&mut guard, true).await
    }

    /// Whether a token set is due for a refresh now.
    fn is_due(&self, tokens: &TokenSet) -> bool {
        let due = tokens.refresh_due_at(
            self.inner.cfg.max_token_age.as_secs() as i64,
            self.inner.cfg.refresh_skew.as_secs() as i64,
        );
        chrono::Utc::now().timestamp() >= due
    }

    /// The token set kept in the store if it should replace `current` (M5): before a refresh when it
    /// differs and is not older (another process refreshed since this one loaded), after a refused refresh
    /// whenever it differs (the refresh token held here is void).
    async fn kept_tokens(&self, current: Option<&TokenSet>, refused: bool) -> Option<TokenSet> {
        let kept = match self.inner.store.load().await {
            Ok(kept) => kept?,
            Err(e) => {
                tracing::warn!(error = %e, "cleverreach token store not readable; using the tokens held");
                return None;
            }
        };
        let changed = current != Some(&kept);
        let newer = current.is_none_or(|c| kept.obtained_at >= c.obtained_at);
        (changed && (refused || newer)).then_some(kept)
    }

    /// Refreshes the tokens in `guard`. Several processes (Lambda containers) hold one account's tokens
    /// and CleverReach rotates the refresh token on every refresh, so the first to refresh voids the
    /// others' refresh token (M5). Hence the kept set is read first, and taken when newer (used as it is
    /// unless due or `force`); and after a refused refresh it is read again and, if it changed, taken and
    /// refreshed with once more when due. Only then is a refusal final (re-authorisation needed).
    async fn refresh_locked(&self, guard: &mut Option<TokenSet>, force: bool) -> Result<TokenSet> {
        if let Some(kept) = self.kept_tokens(guard.as_ref(), false).await {
            tracing::info!("cleverreach tokens were refreshed by another process; using the kept set");
            *guard = Some(kept.clone());
            if !force && !self.is_due(&kept) {
                return Ok(kept);
            }
        }
        let result = match self.refresh_with(guard).await {
            Err(refused @ Error::ReauthorizationRequired { .. }) => {
                match self.kept_tokens(guard.as_ref(), true).await {
                    Some(kept) => {
                        tracing::info!("cleverreach refresh refused; another process refreshed first, using its set");
                        *guard = Some(kept.clone());
                        if force || self.is_due(&kept) { self.refresh_with(guard).await } else { Ok(kept) }
                    }
                    None => Err(refused),
                }
            }
            other => other,
        };
        result.inspect_err(|e| {
            tracing::warn!(error = %e, "cleverreach token refresh failed");
            optisync_ports::metrics::oauth_refresh_failed("cleverreach");
        })
    }

    /// One refresh with the refresh token in `guard`; the new set is kept before it is used.
    async fn refresh_with(&self, guard: &mut Option<TokenSet>) -> Result<TokenSet> {
        let refresh = guard
            .as_ref()
            .and_then(|t| t.refresh_token.clone())
            .ok_or_else(|| Error::ReauthorizationRequired { reason: "no refresh token".into() })?;
        self.inner.limiter.acquire().await;
        let mut new = self.inner.oauth.refresh(&self.inner.http, &refresh).await?;
        if new.refresh_token.is_none() {
            // No rotation: keep using the old refresh token.
            new.refresh_token = Some(refresh);
        }
        tracing::info!(expires_in = new.expires_in, "cleverreach access token refreshed");
        let saved = self.inner.store.save(&new).await;
        // Keep the new pair in memory even if persisting failed: the old refresh token is void.
        *guard = Some(new.clone());
        saved.map_err(Error::TokenStore)?;
        Ok(new)
    }

    async fn access_token(&self) -> Result<Secret> {
        let mut guard = self.inner.tokens.lock().await;
        let Some(tokens) = guard.as_ref() else {
            return Err(Error::ReauthorizationRequired { reason: "no tokens configured".into() });
        };
        if self.is_due(tokens) && tokens.refresh_token.is_some() {
            return Ok(self.refresh_locked(&mut guard, false).await?.access_token);
        }
        Ok(tokens.access_token.clone())
    }

    async fn refresh_after_401(&self, used: &Secret) -> Result<()> {
        let mut guard = self.inner.tokens.lock().await;
        if guard.as_ref().is_some_and(|t| &t.access_token != used) {
            return Ok(()); // another task refreshed already
        }
        self.refresh_locked(&mut guard, false).await.map(|_| ())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.inner.cfg.backoff_base.as_millis() as u64;
        let cap = self.inner.cfg.backoff_cap.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << attempt.min(20)).min(cap);
        Duration::from_millis(rand::rng().random_range(0..=exp))
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<url::Url> {
        let mut url = url::Url::parse(&format!("{}{path}", self.inner.cfg.rest_base.trim_end_matches('/')))
            .map_err(|e| Error::Config(e.to_string()))?;
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Sends one call with auth, rate limit, 401 refresh, 429 and retries. Returns any
    /// non-retried status with its body; 2xx and final errors are mapped by the callers.
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        body: Body,
        idempotent: bool,
    ) -> Result<(StatusCode, Bytes)> {
        let max = self.inner.cfg.max_attempts.max(1);
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            self.inner.limiter.acquire().await;
            let token = self.access_token().await?;
            let mut req = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose())
                .timeout(self.inner.cfg.request_timeout);
            if let Body::Json(v) = &body {
                req = req.json(v);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let message = e.without_url().to_string();
                    if idempotent && attempt < max {
                        tracing::warn!(op, attempt, error = %message, "cleverreach transport error, retrying");
                        tokio::time::sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    return Err(Error::Transport { operation: op, message });
                }
            };
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| Error::Transport { operation: op, message: e.without_url().to_string() })?;
            tracing::debug!(op, status = status.as_u16(), attempt, "cleverreach call");
            optisync_ports::metrics::esp_call("cleverreach", status == StatusCode::TOO_MANY_REQUESTS);
            if status == StatusCode::UNAUTHORIZED {
                if refreshed {
                    return Err(Error::Unauthorized { operation: op, status: status.as_u16() });
                }
                refreshed = true;
                attempt -= 1; // the refresh retry is not a failure attempt
                tracing::info!(op, "cleverreach answered 401, refreshing the token once");
                self.refresh_after_401(&token).await?;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                if attempt < max {
                    let wait = retry_after.unwrap_or_else(|| self.backoff(attempt)).min(self.inner.cfg.max_retry_after);
                    tracing::warn!(op, attempt, wait_ms = wait.as_millis() as u64, "cleverreach rate limited");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(Error::RateLimited { operation: op, retry_after });
            }
            if status.is_server_error() && idempotent && attempt < max {
                tracing::warn!(op, attempt, status = status.as_u16(), "cleverreach server error, retrying");
                tokio::time::sleep(self.backoff(attempt)).await;
                continue;
            }
            return Ok((status, bytes));
        }
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        body: Body,
        idempotent: bool,
    ) -> Result<T> {
        let (status, bytes) = self.send(op, method, url, body, idempotent).await?;
        if !status.is_success() {
            return Err(status_error(op, status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| decode_error(op, &e))
    }

    // ---- operations -------------------------------------------------------------------

    /// `GET /v3/groups.json`.
    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        self.call_json("list_groups", Method::GET, self.url("/v3/groups.json", &[])?, Body::None, true).await
    }

    /// `GET /v3/attributes.json` (global attributes).
    pub async fn list_global_attributes(&self) -> Result<Vec<Attribute>> {
        self.call_json("list_global_attributes", Method::GET, self.url("/v3/attributes.json", &[])?, Body::None, true)
            .await
    }

    /// `GET /v3/groups.json/{gid}/filters`.
    pub async fn list_filters(&self, group_id: &str) -> Result<Vec<Filter>> {
        let url = self.url(&format!("/v3/groups.json/{}/filters", enc(group_id)), &[])?;
        self.call_json("list_filters", Method::GET, url, Body::None, true).await
    }

    /// `GET /v3/groups.json/{gid}/receivers/{id|email}`; `None` when not in this group.
    pub async fn get_receiver(&self, group_id: &str, id_or_email: &str) -> Result<Option<Receiver>> {
        let url = self.url(&format!("/v3/groups.json/{}/receivers/{}", enc(group_id), enc(id_or_email)), &[])?;
        match self.call_json::<Receiver>("get_receiver", Method::GET, url, Body::None, true).await {
            Ok(r) => Ok(Some(r)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Receivers per page of a listing (the configured size, at most [`MAX_PAGE_SIZE`]).
    pub fn page_size(&self) -> usize {
        self.inner.cfg.page_size.clamp(1, MAX_PAGE_SIZE)
    }

    /// One page of a group's receivers (`page` from 0, `page_size` ≤ 5000).
    pub async fn receivers_page(
        &self,
        group_id: &str,
        kind: ReceiverType,
        page: usize,
        page_size: usize,
    ) -> Result<Vec<Receiver>> {
        let query = page_query(kind, page, page_size);
        let url = self.url(&format!("/v3/groups.json/{}/receivers", enc(group_id)), &query)?;
        self.call_json("receivers_page", Method::GET, url, Body::None, true).await
    }

    /// All receivers of a group of `kind` (use [`ReceiverType::All`] for active and inactive),
    /// paging until a short page.
    pub async fn all_receivers(&self, group_id: &str, kind: ReceiverType) -> Result<Vec<Receiver>> {
        self.every_page(|page, size| self.receivers_page(group_id, kind, page, size)).await
    }

    /// One page of a filter's (segment's) receivers.
    pub async fn filter_receivers_page(
        &self,
        group_id: &str,
        filter_id: &str,
        kind: ReceiverType,
        page: usize,
        page_size: usize,
    ) -> Result<Vec<Receiver>> {
        let query = page_query(kind, page, page_size);
        let url =
            self.url(&format!("/v3/groups.json/{}/filters/{}/receivers", enc(group_id), enc(filter_id)), &query)?;
        self.call_json("filter_receivers_page", Method::GET, url, Body::None, true).await
    }

    /// All receivers of a filter, paging until a short page.
    pub async fn all_filter_receivers(
        &self,
        group_id: &str,
        filter_id: &str,
        kind: ReceiverType,
    ) -> Result<Vec<Receiver>> {
        self.every_page(|page, size| self.filter_receivers_page(group_id, filter_id, kind, page, size)).await
    }

    /// Reads pages of the configured size from page 0 until [`next_page`] says there is none.
    async fn every_page<F, Fut>(&self, mut fetch: F) -> Result<Vec<Receiver>>
    where
        F: FnMut(usize, usize) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Receiver>>>,
    {
        let size = self.page_size();
        let mut out = Vec::new();
        let mut page = Some(0);
        while let Some(p) = page {
            let rows = fetch(p, size).await?;
            page = next_page(p, rows.len(), size);
            out.extend(rows);
        }
        Ok(out)
    }

    /// `GET /v3/blacklist.json`: the account-wide blacklist in one call (CleverReach does not page it;
    /// reference §4 "Blacklist (account)"). R-E9.
    pub async fn blacklist(&self) -> Result<Vec<BlacklistEntry>> {
        self.call_json("blacklist", Method::GET, self.url("/v3/blacklist.json", &[])?, Body::None, true).await
    }

    /// One page of the account's bounces, `GET /v3/bounces.json?page=&pagesize=` (`page` from 0; a page
    /// shorter than `page_size` is the last, [`next_page`]; reference §4 "Bounces"). R-E9, R-E6.
    pub async fn bounces_page(&self, page: usize, page_size: usize) -> Result<Vec<Bounce>> {
        let query = [("page", page.to_string()), ("pagesize", page_size.clamp(1, MAX_PAGE_SIZE).to_string())];
        self.call_json("bounces_page", Method::GET, self.url("/v3/bounces.json", &query)?, Body::None, true).await
    }

    /// `POST /v3/groups.json/{gid}/receivers/upsert` in batches (start at the configured size,
    /// halve on 413 or failure, down to 1). One outcome per input, in order. `activated` /
    /// `deactivated` are sent only for [`crate::StateChange`] other than `Keep`.
    pub async fn upsert_receivers(&self, group_id: &str, receivers: &[ReceiverUpsert]) -> Result<Vec<UpsertOutcome>> {
        let url = self.url(&format!("/v3/groups.json/{}/receivers/upsert", enc(group_id)), &[])?;
        let mut batch = self.inner.cfg.initial_batch_size.max(1);
        let mut out = Vec::with_capacity(receivers.len());
        let mut start = 0;
        while start < receivers.len() {
            let end = (start + batch).min(receivers.len());
            let chunk = &receivers[start..end];
            let body = Value::Array(chunk.iter().map(ReceiverUpsert::to_json).collect());
            let result = self.send("upsert_receivers", Method::POST, url.clone(), Body::Json(body), true).await;
            let failure = match result {
                Ok((status, bytes)) if status.is_success() => match parse_upsert(&bytes, chunk) {
                    Some(items) => {
                        out.extend(items);
                        start = end;
                        continue;
                    }
                    None => Error::Decode {
                        operation: "upsert_receivers",
                        message: "answer is not one item per receiver".into(),
                    },
                },
                Ok((StatusCode::PAYLOAD_TOO_LARGE, _)) => {
                    Error::BatchTooLarge { operation: "upsert_receivers", size: chunk.len() }
                }
                Ok((status, bytes)) => status_error("upsert_receivers", status, &bytes),
                Err(e) => e,
            };
            let halvable =
                matches!(failure, Error::BatchTooLarge { .. } | Error::Decode { .. }) || failure.is_transient();
            if halvable && chunk.len() > 1 {
                batch = chunk.len().div_ceil(2);
                tracing::warn!(new_batch = batch, error = %failure, "cleverreach upsert failed, halving the batch");
                continue;
            }
            return Err(failure);
        }
        Ok(out)
    }

    async fn put_state(&self, op: &'static str, group_id: &str, key: &str, action: &str) -> Result<()> {
        let url = self.url(&format!("/v3/groups.json/{}/receivers/{}/{action}", enc(group_id), enc(key)), &[])?;
        let (status, bytes) = self.send(op, Method::PUT, url, Body::None, true).await?;
        if !status.is_success() {
            return Err(status_error(op, status, &bytes));
        }
        if serde_json::from_slice::<Value>(&bytes).ok() == Some(Value::Bool(false)) {
            return Err(Error::Api { operation: op, status: status.as_u16(), message: "answered false".into() });
        }
        Ok(())
    }

    /// `PUT /v3/groups.json/{gid}/receivers/{id|email}/setactive`.
    pub async fn set_active(&self, group_id: &str, id_or_email: &str) -> Result<()> {
        self.put_state("set_active", group_id, id_or_email, "setactive").await
    }

    /// `PUT /v3/groups.json/{gid}/receivers/{id|email}/setinactive`.
    pub async fn set_inactive(&self, group_id: &str, id_or_email: &str) -> Result<()> {
        self.put_state("set_inactive", group_id, id_or_email, "setinactive").await
    }

    /// `DELETE /v3/groups.json/{gid}/receivers/{id|email}`; `false` when it was not there.
    pub async fn remove_from_group(&self, group_id: &str, id_or_email: &str) -> Result<bool> {
        let url = self.url(&format!("/v3/groups.json/{}/receivers/{}", enc(group_id), enc(id_or_email)), &[])?;
        self.delete_call("remove_from_group", url).await
    }

    /// `DELETE /v3/receivers.json/{id|email}`: removes the receiver from **all** groups.
    pub async fn delete_receiver(&self, id_or_email: &str) -> Result<bool> {
        let url = self.url(&format!("/v3/receivers.json/{}", enc(id_or_email)), &[])?;
        self.delete_call("delete_receiver", url).await
    }

    async fn delete_call(&self, op: &'static str, url: url::Url) -> Result<bool> {
        let (status, bytes) = self.send(op, Method::DELETE, url, Body::None, true).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if !status.is_success() {
            return Err(status_error(op, status, &bytes));
        }
        Ok(serde_json::from_slice::<Value>(&bytes).ok() != Some(Value::Bool(false)))
    }

    /// `POST /hooks/eventhook` — CleverReach calls `url` with GET (verification) during this call.
    pub async fn register_webhook(
        &self,
        url: &str,
        event: &str,
        condition: &str,
        verify: &Secret,
    ) -> Result<WebhookRegistration> {
        let body = serde_json::json!({"url": url, "event": event, "condition": condition, "verify": verify.expose()});
        let v: Value = self
            .call_json("register_webhook", Method::POST, self.url("/hooks/eventhook", &[])?, Body::Json(body), false)
            .await?;
        let success = v.get("success").is_some_and(|s| s == &Value::Bool(true) || s == "true" || s == 1);
        let call_token = v.get("call_token").map(value_to_string).filter(|s| !s.is_empty());
        match (success, call_token) {
            (true, Some(call_token)) => Ok(WebhookRegistration {
                call_token: Secret::new(call_token),
                secret: Secret::new(v.get("secret").map(value_to_string).unwrap_or_default()),
            }),
            _ => Err(Error::Api {
                operation: "register_webhook",
                status: 200,
                message: "registration not successful".into(),
            }),
        }
    }

    /// `DELETE /hooks/eventhook/{event}?condition={gid}` (always pass the condition: without it
    /// CleverReach deletes every registration of that event in the account).
    pub async fn delete_webhook(&self, event: &str, condition: &str) -> Result<bool> {
        let url = self.url(&format!("/hooks/eventhook/{}", enc(event)), &[("condition", condition.to_owned())])?;
        self.delete_call("delete_webhook", url).await
    }
}

/// The page after `page` of a receiver listing, or `None` when `rows` fell short of `page_size`:
/// CleverReach reports no total, so a short (or empty) page is the last.
pub fn next_page(page: usize, rows: usize, page_size: usize) -> Option<usize> {
    (rows >= page_size).then_some(page + 1)
}

fn page_query(kind: ReceiverType, page: usize, page_size: usize) -> Vec<(&'static str, String)> {
    vec![
        ("page", page.to_string()),
        ("pagesize", page_size.clamp(1, MAX_PAGE_SIZE).to_string()),
        ("type", kind.as_str().to_owned()),
        ("detail", "0".to_owned()),
    ]
}

fn enc(segment: &str) -> String {
    urlencoding::encode(segment).into_owned()
}

fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (at.timestamp() - chrono::Utc::now().timestamp()).max(0);
    Some(Duration::from_secs(secs as u64))
}

fn parse_upsert(bytes: &[u8], chunk: &[ReceiverUpsert]) -> Option<Vec<UpsertOutcome>> {
    let Value::Array(items) = serde_json::from_slice::<Value>(bytes).ok()? else {
        return None; // literal `false` or something else: treat as failure
    };
    if items.len() != chunk.len() {
        return None;
    }
    Some(
        items
            .iter()
            .zip(chunk)
            .map(|(item, input)| match item {
                Value::Object(m) => UpsertOutcome::Ok {
                    id: m.get("id").map(value_to_string).unwrap_or_default(),
                    status: m.get("status").map(value_to_string).unwrap_or_default(),
                },
                other => UpsertOutcome::Rejected {
                    email: input.email.clone(),
                    message: redact_emails(value_to_string(other).trim()),
                },
            })
            .collect(),
    )
}

fn error_message(bytes: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => match v.get("error") {
            Some(Value::Object(e)) => e.get("message").map(value_to_string).unwrap_or_default(),
            Some(other) => value_to_string(other),
            None => v.to_string(),
        },
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    };
    let text: String = text.chars().take(200).collect();
    redact_emails(&text)
}

fn status_error(op: &'static str, status: StatusCode, bytes: &[u8]) -> Error {
    match status {
        StatusCode::NOT_FOUND => Error::NotFound { operation: op },
        StatusCode::PAYLOAD_TOO_LARGE => Error::BatchTooLarge { operation: op, size: 0 },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if error_message(bytes).to_lowercase().contains("token") => {
            Error::Unauthorized { operation: op, status: status.as_u16() }
        }
        _ => Error::Api { operation: op, status: status.as_u16(), message: error_message(bytes) },
    }
}

fn decode_error(op: &'static str, e: &serde_json::Error) -> Error {
    // serde_json messages can quote values (e-mails): keep only the category and position.
    Error::Decode {
        operation: op,
        message: format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()),
    }
}
