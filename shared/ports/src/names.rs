//! Every name the service stores things under, in one place: the secret names (deployed secrets; the
//! IAM policies in `template.yaml` grant their prefixes) and the inbox keys (stored data). Changing a
//! string here orphans what is stored under the old one.

use optisync_domain::{AccountId, CommandId, TenantId};
use std::fmt;

/// The secret store's names, relative to the deployment's prefix (`SECRETS_PREFIX`).
pub mod secret {
    use super::{AccountId, TenantId};

    /// A tenant's connector signing secrets: a JSON array of secrets, all valid together during a rotation.
    pub fn signing_secrets(tenant: &TenantId) -> String {
        format!("connector/{tenant}/signing-secrets")
    }

    /// A Brevo account's API key.
    pub fn brevo_api_key(account: &AccountId) -> String {
        format!("brevo/{account}/api-key")
    }

    /// The name of our own API key at a Brevo account, so that echoes of our own writes are dropped.
    pub fn brevo_api_key_name(account: &AccountId) -> String {
        format!("brevo/{account}/api-key-name")
    }

    /// The bearer token Brevo's webhooks to an account carry: the current one and, after a rotation, the
    /// previous one for a while (`crate::tokens::BrevoHookTokens`, M3).
    pub fn brevo_webhook_token(account: &AccountId) -> String {
        format!("brevo/{account}/webhook-token")
    }

    /// A CleverReach account's OAuth tokens (kept there again on every refresh).
    pub fn cleverreach_tokens(account: &AccountId) -> String {
        format!("cleverreach/{account}/tokens")
    }

    /// A CleverReach account's webhook tokens: `{"verify_token": "…", "call_tokens": ["…"]}` (one call
    /// token per registration).
    pub fn cleverreach_webhook(account: &AccountId) -> String {
        format!("cleverreach/{account}/webhook")
    }

    /// The client secret of our CleverReach OAuth app.
    pub const CLEVERREACH_CLIENT_SECRET: &str = "cleverreach/app/client-secret";

    /// The key that signs OAuth states (made on first use).
    pub const OAUTH_STATE_KEY: &str = "admin/oauth-state-key";

    /// The key that signs the admin console's session cookies (made on first use).
    pub const CONSOLE_SESSION_KEY: &str = "admin/console-session-key";
}

/// The names of leases, scoped by tenant (R-K1): ids are unique only within a tenant.
pub mod lease {
    use optisync_domain::{LinkId, TenantId};

    /// The lease that keeps two scheduled runs of one link from overlapping.
    pub fn run(tenant: &TenantId, link: &LinkId) -> String {
        format!("run#{tenant}#{link}")
    }

    /// The lease that serialises work on one recipient of a tenant (by its R-B2 key).
    pub fn recipient(tenant: &TenantId, email_key: &str) -> String {
        format!("recipient#{tenant}#{email_key}")
    }
}

/// The key of an inbox entry, scoped by tenant: the sender's message id where it has one, else derived
/// from the content. The one type that forms them, so every hook keys its entries the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InboxKey {
    key: String,
    from_content: bool,
}

impl InboxKey {
    /// A signed OPTIGEM batch, by its `webhook-id`.
    pub fn optigem(message_id: &str) -> Self {
        Self { key: format!("optigem:{message_id}"), from_content: false }
    }

    /// A connector-api result or snapshot page, by its `webhook-id`, remembered once executed (M1).
    pub fn connector(message_id: &str) -> Self {
        Self { key: format!("connector:{message_id}"), from_content: false }
    }

    /// The confirmation that OPTIGEM executed the `end_assignment` command `command` (R-J2): the worker
    /// applies it like any input, so erasure mode acts once the end has reached OPTIGEM.
    pub fn end_confirmed(command: &CommandId) -> Self {
        Self { key: format!("result:{command}"), from_content: false }
    }

    /// Page `page` (counting from 1) of the snapshot answering the export `snapshot`.
    pub fn snapshot(snapshot: &CommandId, page: u64) -> Self {
        Self { key: format!("snapshot:{snapshot}:{page}"), from_content: false }
    }

    /// A Brevo webhook, by the hash of its events' content (Brevo has no event id).
    pub fn brevo(account: &AccountId, content_hash: &str) -> Self {
        Self { key: format!("brevo:{account}:{content_hash}"), from_content: true }
    }

    /// A CleverReach event, by the hash of its body within a time window (`window` counts windows since
    /// the epoch), so retries collapse and two changes made apart in time do not.
    pub fn cleverreach(account: &AccountId, body_hash: &str, window: i64) -> Self {
        Self { key: format!("cleverreach:{account}:{body_hash}:{window}"), from_content: true }
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// Whether the key is derived from the content: then another body under it is the same events again
    /// (a duplicate), not a reused message id.
    pub fn from_content(&self) -> bool {
        self.from_content
    }
}

impl fmt::Display for InboxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl From<InboxKey> for String {
    fn from(key: InboxKey) -> Self {
        key.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_are_the_stored_strings() {
        let (t, a) = (TenantId::new("t1"), AccountId::new("acc"));
        assert_eq!(secret::signing_secrets(&t), "connector/t1/signing-secrets");
        assert_eq!(secret::brevo_api_key(&a), "brevo/acc/api-key");
        assert_eq!(secret::brevo_api_key_name(&a), "brevo/acc/api-key-name");
        assert_eq!(secret::brevo_webhook_token(&a), "brevo/acc/webhook-token");
        assert_eq!(secret::cleverreach_tokens(&a), "cleverreach/acc/tokens");
        assert_eq!(secret::cleverreach_webhook(&a), "cleverreach/acc/webhook");
        assert_eq!(InboxKey::optigem("msg_1").as_str(), "optigem:msg_1");
        assert_eq!(InboxKey::connector("msg_1").as_str(), "connector:msg_1");
        assert_eq!(InboxKey::snapshot(&CommandId::new("c1"), 2).as_str(), "snapshot:c1:2");
        assert_eq!(InboxKey::brevo(&a, "ab").as_str(), "brevo:acc:ab");
        assert_eq!(InboxKey::cleverreach(&a, "ab", 7).to_string(), "cleverreach:acc:ab:7");
        assert!(InboxKey::brevo(&a, "ab").from_content() && !InboxKey::optigem("m").from_content());
        assert_eq!(lease::run(&t, &optisync_domain::LinkId::new("l1")), "run#t1#l1");
        assert_eq!(lease::recipient(&t, "a@b.de"), "recipient#t1#a@b.de");
    }
}
