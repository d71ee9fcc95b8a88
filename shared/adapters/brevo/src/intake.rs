//! Brevo's specifics for the intake (`optisync_app::intake`): bearer token → parse (one event or an
//! array) → observations → one inbox entry. Brevo has no event id and may send an event again with
//! another emission time, so key and fingerprint come from the events' content ([`dedupe_key`]).
//!
//! Brevo signs nothing: the webhook is registered with a bearer token, kept in the secret
//! `brevo/{account}/webhook-token` with, after a rotation, the previous one for its overlap (M3,
//! [`BrevoHookTokens`]); either is accepted then. The optional secret `brevo/{account}/api-key-name` names our own API
//! key, so that `list_addition` echoes of our own writes are dropped.

use crate::webhook::{WebhookEvent, authenticate_any, dedupe_key, observations, parse_events};
use async_trait::async_trait;
use optisync_domain::Input;
use optisync_ports::intake::{Hook, IntakeError, Observed, WebhookSource};
use optisync_ports::names::{InboxKey, secret};
use optisync_ports::tokens::BrevoHookTokens;
use optisync_ports::{InboxItem, SecretStore};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Brevo marketing webhooks to one of the tenant's accounts.
#[derive(Clone)]
pub struct BrevoSource {
    secrets: Arc<dyn SecretStore>,
}

impl BrevoSource {
    /// Over the secret store (webhook tokens and our API key's name).
    pub fn new(secrets: Arc<dyn SecretStore>) -> Self {
        Self { secrets }
    }
}

fn unauthorized() -> IntakeError {
    IntakeError::Unauthorized("missing or wrong bearer token".into())
}

#[async_trait]
impl WebhookSource for BrevoSource {
    type Verified = ();
    type Parsed = Vec<WebhookEvent>;

    async fn verify(&self, hook: &Hook<'_>) -> Result<(), IntakeError> {
        let Some(account) = hook.account else { return Err(unauthorized()) };
        let raw = self.secrets.get(&secret::brevo_webhook_token(account)).await?.unwrap_or_default();
        // No token, or one that cannot be read: nothing authenticates (compared against empty tokens, so
        // the answer takes as long as a wrong token's).
        let tokens = BrevoHookTokens::parse(&raw).unwrap_or_else(|| BrevoHookTokens::new(""));
        if !authenticate_any((hook.header)("authorization"), &tokens.valid_at(hook.now)) {
            return Err(unauthorized());
        }
        Ok(())
    }

    fn parse(&self, body: &[u8]) -> Result<Vec<WebhookEvent>, IntakeError> {
        parse_events(body).map_err(|e| IntakeError::Malformed { path: None, problem: e.to_string() })
    }

    async fn observe(
        &self,
        hook: &Hook<'_>,
        _: (),
        events: Vec<WebhookEvent>,
    ) -> Result<Option<Observed>, IntakeError> {
        let Some(account) = hook.account else { return Err(unauthorized()) };
        let own_key = self.secrets.get(&secret::brevo_api_key_name(account)).await?;
        let (mut items, mut keys) = (Vec::new(), Vec::new());
        for event in &events {
            let observed = observations(event, account, own_key.as_deref(), hook.now);
            if observed.is_empty() {
                tracing::debug!("Brevo event without effect on the sync");
                continue;
            }
            keys.push(dedupe_key(event));
            items.extend(observed.into_iter().map(|o| InboxItem::from(Input::Esp(o))));
        }
        if items.is_empty() {
            return Ok(None);
        }
        let hash = hex::encode(Sha256::digest(keys.join("\n").as_bytes()));
        Ok(Some(Observed { key: InboxKey::brevo(account, &hash), fingerprint: hash, items }))
    }
}
