//! [`EspDirectory`] over the real clients: connecting accounts (R-H1), what an account offers a link
//! (R-D6, R-G1, R-H2), and the webhooks a syncing link needs.
//!
//! Webhooks: Brevo's marketing webhook is account-wide (one per account, its bearer token in
//! `brevo/{account}/webhook-token`, the current one of [`BrevoHookTokens`]; the admin API rotates it, M3); CleverReach registers one hook per event and group, verified against
//! hook-cleverreach during the registration call, its tokens in `cleverreach/{account}/webhook`.

use crate::{EspRouter, unavailable};
use async_trait::async_trait;
use optisync_brevo::AttributeCategory;
use optisync_brevo::client::MarketingEvent;
use optisync_cleverreach::{CleverReachClient, Secret, SecretTokenStore};
use optisync_domain::rules::{AttributeInfo, AttributeScope};
use optisync_domain::{AccountId, AttributeName, EspAccount, Link, ListId, Provider, SegmentId};
use optisync_ports::names::secret;
use optisync_ports::tokens::BrevoHookTokens;
use optisync_ports::{EspCatalog, EspDirectory, EspError, EspList, EspSegment};
use std::sync::Arc;

/// The Brevo events hook-brevo understands.
const BREVO_EVENTS: [MarketingEvent; 5] = [
    MarketingEvent::Unsubscribed,
    MarketingEvent::HardBounce,
    MarketingEvent::ListAddition,
    MarketingEvent::ContactUpdated,
    MarketingEvent::ContactDeleted,
];

/// The CleverReach events hook-cleverreach understands.
const CLEVERREACH_EVENTS: [&str; 5] =
    ["receiver.subscribed", "receiver.unsubscribed", "receiver.created", "receiver.updated", "receiver.deleted"];

/// The description our Brevo webhooks carry.
const HOOK_DESCRIPTION: &str = "optisync";

fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The webhook tokens of a CleverReach account as kept in the secret store.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct HookTokens {
    verify_token: String,
    #[serde(default)]
    call_tokens: Vec<String>,
    /// Until when (seconds since the epoch) hook-cleverreach answers the verification handshake: set for
    /// the registration calls, cleared after them (L4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    registering_until: Option<i64>,
}

/// How long the handshake stays open for one link's registrations (CleverReach verifies during the call).
const REGISTRATION_WINDOW_SECS: i64 = 300;

impl EspRouter {
    /// The current Brevo webhook token of an account, made on first use (kept in the JSON form, M3).
    async fn brevo_hook_token(&self, account: &AccountId) -> Result<String, EspError> {
        let name = secret::brevo_webhook_token(account);
        if let Some(tokens) =
            self.secrets.get(&name).await.map_err(unavailable)?.as_deref().and_then(BrevoHookTokens::parse)
        {
            return Ok(tokens.current);
        }
        let token = random_token();
        self.secrets.put(&name, &BrevoHookTokens::new(token.clone()).to_secret()).await.map_err(unavailable)?;
        Ok(token)
    }

    async fn cleverreach_hook_tokens(&self, account: &AccountId) -> Result<HookTokens, EspError> {
        let raw = self.secrets.get(&secret::cleverreach_webhook(account)).await.map_err(unavailable)?;
        Ok(raw.and_then(|raw| serde_json::from_str(&raw).ok()).unwrap_or_default())
    }

    async fn save_cleverreach_hook_tokens(&self, account: &AccountId, tokens: &HookTokens) -> Result<(), EspError> {
        let raw = serde_json::to_string(tokens).map_err(|e| EspError::Rejected(e.to_string()))?;
        self.secrets.put(&secret::cleverreach_webhook(account), &raw).await.map_err(unavailable)
    }
}

#[async_trait]
impl EspDirectory for EspRouter {
    async fn connect_brevo(&self, account: &AccountId, api_key: &str) -> Result<(), EspError> {
        let client = self.brevo_client_with(api_key)?;
        // A read every key may make: Brevo answers 401 to a key it does not know (R-H1).
        client.lists().await.map_err(optisync_brevo::gateway::to_port)?;
        self.secrets.put(&secret::brevo_api_key(account), api_key).await.map_err(unavailable)?;
        self.forget(&EspAccount { provider: Provider::Brevo, account: account.clone() }).await;
        Ok(())
    }

    fn cleverreach_authorize_url(&self, state: &str) -> Result<String, EspError> {
        self.settings.cleverreach.oauth().authorize_url(state).map_err(|e| EspError::Rejected(e.to_string()))
    }

    async fn connect_cleverreach(&self, account: &AccountId, code: &str) -> Result<(), EspError> {
        let store = SecretTokenStore::new(self.secrets.clone(), secret::cleverreach_tokens(account));
        let client = CleverReachClient::new(self.settings.cleverreach.clone(), Arc::new(store));
        // The exchange keeps the tokens in the secret store (R-H1: no password is ever seen).
        client.exchange_code(code).await.map_err(optisync_cleverreach::gateway::to_port)?;
        self.forget(&EspAccount { provider: Provider::CleverReach, account: account.clone() }).await;
        Ok(())
    }

    async fn catalog(&self, esp: &EspAccount) -> Result<EspCatalog, EspError> {
        match esp.provider {
            Provider::Brevo => {
                let client = self.brevo_client(&esp.account).await?;
                let to_port = optisync_brevo::gateway::to_port;
                let lists = client.lists().await.map_err(to_port)?;
                let attributes = client.attributes().await.map_err(to_port)?;
                Ok(EspCatalog {
                    lists: lists
                        .into_iter()
                        .map(|l| EspList { id: ListId::new(l.id.to_string()), name: l.name, segments: Vec::new() })
                        .collect(),
                    // Brevo's contact attributes are account-wide; the plain ("normal") ones hold text.
                    attributes: attributes
                        .into_iter()
                        .filter(|a| a.category == AttributeCategory::Normal)
                        .map(|a| AttributeInfo { name: AttributeName::new(a.name), scope: AttributeScope::Global })
                        .collect(),
                })
            }
            Provider::CleverReach => {
                let client = self.cleverreach_client(&esp.account).await?;
                let to_port = optisync_cleverreach::gateway::to_port;
                let mut lists = Vec::new();
                for group in client.list_groups().await.map_err(to_port)? {
                    let filters = client.list_filters(&group.id).await.map_err(to_port)?;
                    lists.push(EspList {
                        id: ListId::new(group.id),
                        name: group.name,
                        segments: filters
                            .into_iter()
                            .map(|f| EspSegment { id: SegmentId::new(f.id), name: f.name })
                            .collect(),
                    });
                }
                // Only the account's global attributes; group attributes cannot be mapped (R-D6).
                let attributes = client
                    .list_global_attributes()
                    .await
                    .map_err(to_port)?
                    .into_iter()
                    .map(|a| AttributeInfo { name: AttributeName::new(a.name), scope: AttributeScope::Global })
                    .collect();
                Ok(EspCatalog { lists, attributes })
            }
        }
    }

    async fn register_hooks(&self, link: &Link, hook_url: &str) -> Result<(), EspError> {
        match link.esp.provider {
            Provider::Brevo => {
                let client = self.brevo_client(&link.esp.account).await?;
                let to_port = optisync_brevo::gateway::to_port;
                let existing = client.marketing_webhooks().await.map_err(to_port)?;
                if existing.iter().any(|w| w.url == hook_url) {
                    return Ok(());
                }
                let token = self.brevo_hook_token(&link.esp.account).await?;
                client.create_webhook(hook_url, &BREVO_EVENTS, &token, HOOK_DESCRIPTION).await.map_err(to_port)?;
                Ok(())
            }
            Provider::CleverReach => {
                let client = self.cleverreach_client(&link.esp.account).await?;
                let mut tokens = self.cleverreach_hook_tokens(&link.esp.account).await?;
                if tokens.verify_token.is_empty() {
                    tokens.verify_token = random_token();
                }
                // CleverReach checks the hook with this token during the registration call, so
                // hook-cleverreach must find it first, and answers it only while we register (L4).
                tokens.registering_until = Some(chrono::Utc::now().timestamp() + REGISTRATION_WINDOW_SECS);
                self.save_cleverreach_hook_tokens(&link.esp.account, &tokens).await?;
                let verify = Secret::new(tokens.verify_token.clone());
                let mut outcome = Ok(());
                for event in CLEVERREACH_EVENTS {
                    match client.register_webhook(hook_url, event, link.list.as_str(), &verify).await {
                        Ok(registration) => {
                            let token = registration.call_token.expose().to_owned();
                            if !tokens.call_tokens.contains(&token) {
                                tokens.call_tokens.push(token);
                            }
                            self.save_cleverreach_hook_tokens(&link.esp.account, &tokens).await?;
                        }
                        Err(e) => {
                            outcome = Err(optisync_cleverreach::gateway::to_port(e));
                            break;
                        }
                    }
                }
                tokens.registering_until = None;
                self.save_cleverreach_hook_tokens(&link.esp.account, &tokens).await?;
                outcome
            }
        }
    }

    async fn set_brevo_hook_token(&self, account: &AccountId, hook_url: &str, token: &str) -> Result<usize, EspError> {
        let client = self.brevo_client(account).await?;
        let to_port = optisync_brevo::gateway::to_port;
        let mut updated = 0;
        for hook in client.marketing_webhooks().await.map_err(to_port)? {
            if hook.url == hook_url {
                client.update_webhook_token(hook.id, token).await.map_err(to_port)?;
                updated += 1;
            }
        }
        Ok(updated)
    }

    async fn unregister_hooks(&self, link: &Link, hook_url: &str, still_syncing: &[Link]) -> Result<(), EspError> {
        match link.esp.provider {
            Provider::Brevo => {
                if still_syncing.iter().any(|l| l.esp == link.esp) {
                    return Ok(()); // the account-wide webhook serves the account's other links
                }
                let client = self.brevo_client(&link.esp.account).await?;
                let to_port = optisync_brevo::gateway::to_port;
                for hook in client.marketing_webhooks().await.map_err(to_port)? {
                    if hook.url == hook_url {
                        client.delete_webhook(hook.id).await.map_err(to_port)?;
                    }
                }
                Ok(())
            }
            Provider::CleverReach => {
                if still_syncing.iter().any(|l| l.esp == link.esp && l.list == link.list) {
                    return Ok(()); // another link (another segment) of the group still needs them
                }
                let client = self.cleverreach_client(&link.esp.account).await?;
                for event in CLEVERREACH_EVENTS {
                    client
                        .delete_webhook(event, link.list.as_str())
                        .await
                        .map_err(optisync_cleverreach::gateway::to_port)?;
                }
                Ok(())
            }
        }
    }
}
