//! The connector: everything OPTIGEM's side sends to optisync, signed per Standard Webhooks.

use crate::SimOptigem;
use optisync_connector::signature::{SigningSecret, sign};
use optisync_connector::wire::{ChangeEvent, EventBatch, MAX_EVENTS_PER_BATCH};
use optisync_domain::{OptigemCommand, TenantId};
use reqwest::{Method, StatusCode};
use std::sync::Mutex;
use std::time::Duration;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// optisync refused the request (a 4xx other than 429); the body names what is wrong.
    #[error("{method} {path} answered {status}: {body}")]
    Refused {
        /// The method.
        method: String,
        /// The path.
        path: String,
        /// The status.
        status: u16,
        /// optisync's error body.
        body: String,
    },
    /// Still failing after every retry (429, 5xx or the network).
    #[error("{0} failed after all retries")]
    Exhausted(String),
    /// The command feed was not understood.
    #[error("unexpected command feed: {0}")]
    Feed(String),
}

/// A connector for one tenant.
pub struct Connector {
    base: String,
    tenant: TenantId,
    secret: SigningSecret,
    http: reqwest::Client,
    cursor: Mutex<u64>,
    /// Attempts per message (429, 5xx and network errors are retried with the same `webhook-id`).
    pub attempts: u32,
    /// The longest wait between attempts, whatever `Retry-After` says.
    pub max_wait: Duration,
    /// Assignments per snapshot page.
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
    /// A connector talking to optisync at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, tenant: TenantId, secret: SigningSecret) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            tenant,
            secret,
            http: reqwest::Client::new(),
            cursor: Mutex::new(0),
            attempts: 5,
            max_wait: Duration::from_secs(2),
            page_size: 500,
        }
    }

    /// The last command sequence executed.
    pub fn cursor(&self) -> u64 {
        *self.cursor.lock().expect("cursor lock")
    }

    /// One signed request, retried with the same message id; returns the status and body of the answer
    /// that ended it (2xx or a refusal other than 429).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        id: &str,
    ) -> Result<(StatusCode, Vec<u8>), ConnectorError> {
        let url = format!("{}/connector/{}{path}", self.base, self.tenant);
        for attempt in 1..=self.attempts {
            let timestamp = chrono::Utc::now().timestamp();
            let signature = sign(&self.secret, id, timestamp, &body);
            let request = self
                .http
                .request(method.clone(), &url)
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .header("content-type", "application/json")
                .body(body.clone());
            let wait = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
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
                    retry_after.map_or(Duration::from_millis(50 * u64::from(attempt)), Duration::from_secs)
                }
                Err(_) => Duration::from_millis(50 * u64::from(attempt)),
            };
            if attempt < self.attempts {
                tokio::time::sleep(wait.min(self.max_wait)).await;
            }
        }
        Err(ConnectorError::Exhausted(format!("{method} {path}")))
    }

    /// Sends change events as one message with this id (the same id for a retry of the same message).
    pub async fn send_events(&self, events: &[ChangeEvent], webhook_id: &str) -> Result<StatusCode, ConnectorError> {
        let body = serde_json::to_vec(&EventBatch { events: events.to_vec() }).expect("events serialise");
        Ok(self.send(Method::POST, "/events", body, webhook_id).await?.0)
    }

    /// Sends every recorded change event, in batches; returns how many.
    pub async fn push_events(&self, sim: &SimOptigem) -> Result<usize, ConnectorError> {
        let events = sim.take_events();
        for batch in events.chunks(MAX_EVENTS_PER_BATCH) {
            self.send_events(batch, &message_id()).await?;
        }
        Ok(events.len())
    }

    /// Reads the command feed from the cursor, executes each command on the simulated OPTIGEM, reports its
    /// result, uploads the pages an export asks for, and moves the cursor; until the feed is empty.
    /// Returns how many commands were executed.
    pub async fn poll_commands(&self, sim: &SimOptigem) -> Result<usize, ConnectorError> {
        let mut executed = 0;
        loop {
            let path = format!("/commands?after={}&limit=100", self.cursor());
            let (_, body) = self.send(Method::GET, &path, Vec::new(), &message_id()).await?;
            let feed: Feed = serde_json::from_slice(&body).map_err(|e| ConnectorError::Feed(e.to_string()))?;
            if feed.commands.is_empty() {
                return Ok(executed);
            }
            for entry in feed.commands {
                let result = sim.execute(&entry.command);
                let body = serde_json::to_vec(&result).expect("results serialise");
                self.send(Method::POST, &format!("/commands/{}/result", entry.command.id()), body, &message_id())
                    .await?;
                for (export, newsletter) in sim.take_exports() {
                    for (n, page) in sim.snapshot_pages(&newsletter, self.page_size).into_iter().enumerate() {
                        let body = serde_json::to_vec(&page).expect("pages serialise");
                        let path = format!("/snapshots/{export}/pages/{}", n + 1);
                        self.send(Method::PUT, &path, body, &message_id()).await?;
                    }
                }
                *self.cursor.lock().expect("cursor lock") = entry.seq;
                executed += 1;
            }
        }
    }

    /// Events out, commands in, and the events the commands caused out again; returns (events, commands).
    pub async fn sync(&self, sim: &SimOptigem) -> Result<(usize, usize), ConnectorError> {
        let mut events = self.push_events(sim).await?;
        let commands = self.poll_commands(sim).await?;
        events += self.push_events(sim).await?;
        Ok((events, commands))
    }
}

fn message_id() -> String {
    format!("msg_{:032x}", rand::random::<u128>())
}
