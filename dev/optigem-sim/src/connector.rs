//! The connector: everything OPTIGEM's side sends to optisync, signed per Standard Webhooks; requests to
//! connector-api with the optisync extension that signs the method, path and query too (M1).

use crate::SimOptigem;
use optisync_connector::signature::{SignedRequest, SigningSecret, sign, sign_request};
use optisync_connector::wire::{ChangeEvent, EventBatch, MAX_ASSIGNMENTS_PER_PAGE, MAX_EVENTS_PER_BATCH};
use optisync_domain::{OptigemCommand, TenantId};
use reqwest::{Method, StatusCode};
use std::sync::Mutex;
use std::time::Duration;

/// Commands asked for per feed page.
pub const FEED_LIMIT: u32 = 100;

/// Why an exchange failed. No variant carries personal data: optisync's error bodies name fields, never
/// values.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// optisync refused the request (a 4xx other than 429); the body names what is wrong.
    #[error("{method} {path} answered {status}: {body}")]
    Refused {
        /// The method.
        method: String,
        /// The path below `/connector/{tenant}`.
        path: String,
        /// The status.
        status: u16,
        /// optisync's error body (`{"error":{"path":…,"problem":…}}` for a 400).
        body: String,
    },
    /// Still failing after every attempt (429, 5xx or the network).
    #[error("{request} failed after all attempts; last: {last}")]
    Exhausted {
        /// Method and path.
        request: String,
        /// What the last attempt met (a status or "connection error").
        last: String,
    },
    /// The request could not even be built (a bad base URL).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The command feed was not understood.
    #[error("unexpected command feed: {0}")]
    Feed(String),
}

/// A connector for one tenant: sends the simulated OPTIGEM's change events, executes optisync's commands
/// on it, reports the results and uploads snapshot pages.
///
/// Every request is signed with a fresh `webhook-id`; a retry of the same message (after 429, a 5xx or a
/// network error) keeps its id.
#[derive(Debug)]
pub struct Connector {
    base: String,
    tenant: TenantId,
    secret: SigningSecret,
    http: reqwest::Client,
    cursor: Mutex<u64>,
    /// Attempts per message (429, 5xx and network errors are retried with the same `webhook-id`); 5 by
    /// default.
    pub attempts: u32,
    /// The longest wait between attempts, whatever `Retry-After` says; 2 s by default.
    pub max_wait: Duration,
    /// Assignments per snapshot page; 500 by default, and never more than the contract's 500.
    pub page_size: usize,
}

#[derive(serde::Deserialize)]
struct Feed {
    commands: Vec<FeedEntry>,
}

#[derive(serde::Deserialize)]
struct FeedEntry {
    seq: u64,
    command: OptigemCommand,
}

impl Connector {
    /// A connector talking to optisync at `base` (e.g. `http://127.0.0.1:8080`), for one tenant.
    pub fn new(base: &str, tenant: TenantId, secret: SigningSecret) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client with default settings");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            tenant,
            secret,
            http,
            cursor: Mutex::new(0),
            attempts: 5,
            max_wait: Duration::from_secs(2),
            page_size: MAX_ASSIGNMENTS_PER_PAGE,
        }
    }

    /// With this many attempts per message (at least 1).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// With this longest wait between attempts.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// With this many assignments per snapshot page (1 to 500).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size;
        self
    }

    /// The last command sequence executed.
    pub fn cursor(&self) -> u64 {
        *self.cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the cursor (e.g. back to 0, as a connector that lost its state would start).
    pub fn set_cursor(&self, seq: u64) {
        *self.cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = seq;
    }

    fn page_size(&self) -> usize {
        self.page_size.clamp(1, MAX_ASSIGNMENTS_PER_PAGE)
    }

    /// One signed request below `/connector/{tenant}`, retried with the same message id; returns the
    /// status and body of the answer that ended it (2xx, or a refusal other than 429).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        id: &str,
    ) -> Result<(StatusCode, Vec<u8>), ConnectorError> {
        let url = format!("{}/connector/{}{path}", self.base, self.tenant);
        // The change events are plain Standard Webhooks; every other request signs what it does (M1).
        let target = format!("/connector/{}{path}", self.tenant);
        let (signed_path, query) = target.split_once('?').map_or((target.as_str(), None), |(p, q)| (p, Some(q)));
        let signed = (path != "/events").then_some(SignedRequest { method: method.as_str(), path: signed_path, query });
        let attempts = self.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            let timestamp = chrono::Utc::now().timestamp();
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    match &signed {
                        Some(request) => sign_request(&self.secret, id, timestamp, request, &body),
                        None => sign(&self.secret, id, timestamp, &body),
                    },
                );
            if !body.is_empty() {
                request = request.header("content-type", "application/json");
            }
            let backoff = Duration::from_millis(100 << (attempt - 1).min(6));
            let wait = match request.body(body.clone()).send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let bytes = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    if status.is_success() {
                        return Ok((status, bytes));
                    }
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Err(ConnectorError::Refused {
                            method: method.to_string(),
                            path: path.to_owned(),
                            status: status.as_u16(),
                            body: String::from_utf8_lossy(&bytes).into_owned(),
                        });
                    }
                    last = status.as_u16().to_string();
                    retry_after.map_or(backoff, Duration::from_secs)
                }
                Err(e) if e.is_builder() => return Err(ConnectorError::Invalid(e.without_url().to_string())),
                Err(e) => {
                    last = if e.is_timeout() { "timeout" } else { "connection error" }.to_owned();
                    backoff
                }
            };
            if attempt < attempts {
                tokio::time::sleep(wait.min(self.max_wait)).await;
            }
        }
        Err(ConnectorError::Exhausted { request: format!("{method} {path}"), last })
    }

    /// Sends change events as one message with this `webhook-id` (use the same id to deliver the same
    /// message again); returns optisync's status (202).
    pub async fn send_events(&self, events: &[ChangeEvent], webhook_id: &str) -> Result<StatusCode, ConnectorError> {
        let body = serde_json::to_vec(&EventBatch { events: events.to_vec() }).expect("events serialise");
        Ok(self.send(Method::POST, "/events", body, webhook_id).await?.0)
    }

    /// Sends every recorded change event, oldest first, in batches of at most 200, each a new message;
    /// returns how many were sent. Events not sent when an error ends it go back to the outbox.
    pub async fn push_events(&self, sim: &SimOptigem) -> Result<usize, ConnectorError> {
        let events = sim.take_events();
        let mut sent = 0;
        for batch in events.chunks(MAX_EVENTS_PER_BATCH) {
            if let Err(e) = self.send_events(batch, &message_id()).await {
                sim.return_events(events[sent..].to_vec());
                return Err(e);
            }
            sent += batch.len();
        }
        Ok(sent)
    }

    /// Reads the command feed after the cursor, executes each command on the simulated OPTIGEM in order,
    /// uploads the pages an export asks for, reports the result and moves the cursor to the command's
    /// `seq`; until the feed is empty. Returns how many commands were executed.
    ///
    /// An export's pages go up before its `done`, so a `done` export is complete. When an error ends it,
    /// the cursor stands before the failed command, which the next poll executes again (harmless: the
    /// simulated OPTIGEM answers a repeated command with its first result, and re-uploads the same pages).
    pub async fn poll_commands(&self, sim: &SimOptigem) -> Result<usize, ConnectorError> {
        let mut executed = 0;
        loop {
            let after = self.cursor();
            let path = format!("/commands?after={after}&limit={FEED_LIMIT}");
            let (_, body) = self.send(Method::GET, &path, Vec::new(), &message_id()).await?;
            let feed: Feed = serde_json::from_slice(&body)
                .map_err(|e| ConnectorError::Feed(crate::without_values(&e.to_string())))?;
            if feed.commands.is_empty() {
                return Ok(executed);
            }
            for entry in feed.commands {
                if entry.seq <= self.cursor() {
                    continue;
                }
                let command = &entry.command;
                let result = sim.execute(command);
                if let OptigemCommand::ExportNewsletter { id, .. } = command
                    && let Some(pages) = sim.export_pages(id, self.page_size())
                {
                    for (n, page) in pages.iter().enumerate() {
                        let body = serde_json::to_vec(page).expect("pages serialise");
                        self.send(Method::PUT, &format!("/snapshots/{id}/pages/{}", n + 1), body, &message_id())
                            .await?;
                    }
                    sim.uploaded(id);
                }
                let body = serde_json::to_vec(&result).expect("results serialise");
                self.send(Method::POST, &format!("/commands/{}/result", command.id()), body, &message_id()).await?;
                self.set_cursor(entry.seq);
                executed += 1;
            }
            if self.cursor() == after {
                return Err(ConnectorError::Feed(format!("no command after sequence {after}")));
            }
        }
    }

    /// Events out, commands in, and the events the commands caused out again; returns (events sent,
    /// commands executed).
    pub async fn sync(&self, sim: &SimOptigem) -> Result<(usize, usize), ConnectorError> {
        let mut events = self.push_events(sim).await?;
        let commands = self.poll_commands(sim).await?;
        events += self.push_events(sim).await?;
        Ok((events, commands))
    }
}

/// A fresh message id.
fn message_id() -> String {
    format!("msg_{:032x}", rand::random::<u128>())
}
