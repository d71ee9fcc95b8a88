//! CleverReach's specifics for the intake (`optisync_app::intake`): call token → parse → a re-read of
//! the receiver in the inbox; and the verification handshake.
//!
//! The tokens are the secret `cleverreach/{account}/webhook` =
//! `{"verify_token": "…", "call_tokens": ["…", …]}` — one call token per registration (CleverReach
//! answers each event registration with its own); a single `"call_token"` is accepted too.
//!
//! CleverReach sends no event id. A re-read applies the receiver's state at the time it runs, so applying
//! an event twice is harmless and deduplication only saves work: the key is the body's hash within a
//! ten-minute window ([`DEDUP_WINDOW_SECS`]), which collapses retries without merging two real changes
//! made apart in time.

use crate::Secret;
use crate::webhook::{WebhookEvent, authenticate, parse_event, verification_answer_for_query};
use async_trait::async_trait;
use optisync_domain::{AccountId, EspAccount, ListId, Provider};
use optisync_ports::intake::{Hook, IntakeError, Observed, WebhookSource};
use optisync_ports::names::{InboxKey, secret};
use optisync_ports::{InboxItem, Reread, SecretStore, StoreError};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Deliveries of the same body within this window are one event.
pub const DEDUP_WINDOW_SECS: i64 = 600;

#[derive(serde::Deserialize)]
struct Tokens {
    verify_token: String,
    /// The call token of one registration.
    #[serde(default)]
    call_token: Option<String>,
    /// Every registration (one per event) gets a call token of its own.
    #[serde(default)]
    call_tokens: Vec<String>,
    /// Until when the handshake is answered: only while optisync registers hooks (L4).
    #[serde(default)]
    registering_until: Option<i64>,
}

/// CleverReach webhooks to one of the tenant's accounts.
#[derive(Clone)]
pub struct CleverReachSource {
    secrets: Arc<dyn SecretStore>,
}

impl CleverReachSource {
    /// Over the secret store (the accounts' webhook tokens).
    pub fn new(secrets: Arc<dyn SecretStore>) -> Self {
        Self { secrets }
    }

    async fn tokens(&self, account: Option<&AccountId>) -> Result<Tokens, IntakeError> {
        let account = account.ok_or(IntakeError::UnknownAccount)?;
        let raw = self.secrets.get(&secret::cleverreach_webhook(account)).await?;
        let raw = raw.ok_or(IntakeError::UnknownAccount)?;
        serde_json::from_str(&raw).map_err(|_| {
            tracing::error!("the CleverReach webhook secret is not the expected JSON");
            IntakeError::Store(StoreError::Permanent("the webhook secret is not the expected JSON".into()))
        })
    }

    /// The answer to the verification GET: `"{verify_token} {secret}"`, `secret` from the query.
    /// It is answered only while optisync registers the account's hooks (L4): at any other time the
    /// verify token is nobody's business, and the answer is 404.
    pub async fn handshake(
        &self,
        account: &AccountId,
        query: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<String, IntakeError> {
        let tokens = self.tokens(Some(account)).await?;
        if tokens.registering_until.is_none_or(|until| until < now.timestamp()) {
            return Err(IntakeError::NotFound("registration"));
        }
        verification_answer_for_query(&Secret::new(tokens.verify_token), query)
            .map_err(|e| IntakeError::Malformed { path: None, problem: e.to_string() })
    }
}

#[async_trait]
impl WebhookSource for CleverReachSource {
    type Verified = ();
    type Parsed = WebhookEvent;

    async fn verify(&self, hook: &Hook<'_>) -> Result<(), IntakeError> {
        let tokens = self.tokens(hook.account).await?;
        let call_token = (hook.header)("x-cr-calltoken");
        let mut valid = false;
        for expected in tokens.call_token.into_iter().chain(tokens.call_tokens) {
            // Every token is compared (each in constant time), so timing tells nothing about which matched.
            valid |= authenticate(&Secret::new(expected), call_token).is_ok();
        }
        if !valid {
            return Err(IntakeError::Unauthorized("missing or wrong X-CR-Calltoken".into()));
        }
        Ok(())
    }

    fn parse(&self, body: &[u8]) -> Result<WebhookEvent, IntakeError> {
        parse_event(body).map_err(|e| IntakeError::Malformed { path: None, problem: e.to_string() })
    }

    async fn observe(&self, hook: &Hook<'_>, _: (), event: WebhookEvent) -> Result<Option<Observed>, IntakeError> {
        let account = hook.account.ok_or(IntakeError::UnknownAccount)?;
        let changed = match event {
            WebhookEvent::Receiver(changed) => changed,
            WebhookEvent::Other { .. } => {
                tracing::debug!("CleverReach event without effect on the sync");
                return Ok(None);
            }
        };
        let Some(receiver) = changed.pool_id.clone() else {
            tracing::info!(event = changed.kind.as_str(), "receiver event without an id; left to the reconciliation");
            return Ok(None);
        };
        let reread = Reread {
            esp: EspAccount { provider: Provider::CleverReach, account: account.clone() },
            list: ListId::new(changed.group_id.clone()),
            receiver,
            event: changed.kind.as_str().to_owned(),
            received_at: hook.now,
        };
        let fingerprint = hex::encode(Sha256::digest(hook.body));
        let window = hook.now.timestamp().div_euclid(DEDUP_WINDOW_SECS);
        Ok(Some(Observed {
            key: InboxKey::cleverreach(account, &fingerprint, window),
            fingerprint,
            items: vec![InboxItem::Reread { reread }],
        }))
    }
}
