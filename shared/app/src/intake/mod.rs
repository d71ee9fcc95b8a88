//! The intake: every hook's one sequence, verify → parse → observe → key and fingerprint → durable,
//! idempotent inbox write → [`Accepted`]. What differs by sender (how it authenticates, what its body
//! holds, how it is keyed) sits behind [`WebhookSource`]: OPTIGEM's in [`optigem`], Brevo's and
//! CleverReach's in their adapter crates. Refusals are [`IntakeError`]s; the edge answers them.

pub mod optigem;

use optisync_domain::{EspAccount, TenantId};
pub use optisync_ports::intake::{Accepted, Hook, IntakeError, Observed, WebhookSource};
use optisync_ports::names::InboxKey;
use optisync_ports::{BusEvent, EventPublisher, Inbox, InboxEntry, InboxPut, Tenants};
use std::sync::Arc;

/// Accepts one sender's webhooks into the inbox.
#[derive(Clone)]
pub struct Intake<S> {
    source: S,
    inbox: Arc<dyn Inbox>,
}

impl<S: WebhookSource> Intake<S> {
    /// Over the sender's specifics and the inbox.
    pub fn new(source: S, inbox: Arc<dyn Inbox>) -> Self {
        Self { source, inbox }
    }

    /// The sender's specifics (CleverReach's handshake is answered there).
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Credentials → parse → what the body holds → one inbox entry. Bad input changes nothing; a request
    /// stored before is a duplicate.
    pub async fn accept(&self, hook: &Hook<'_>) -> Result<Accepted, IntakeError> {
        let verified = self.source.verify(hook).await?;
        let parsed = self.source.parse(hook.body)?;
        let Some(observed) = self.source.observe(hook, verified, parsed).await? else {
            return Ok(Accepted::Ignored);
        };
        put(self.inbox.as_ref(), hook.tenant, observed, hook.now).await
    }
}

/// Stores what a request holds under its key: [`Accepted::Stored`] now, [`Accepted::Duplicate`] if the
/// same body (or, for a key derived from the content, any body) was stored before, else
/// [`IntakeError::Reused`].
pub async fn put(
    inbox: &dyn Inbox,
    tenant: &TenantId,
    observed: Observed,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Accepted, IntakeError> {
    let Observed { key, fingerprint, items } = observed;
    let events = items.len();
    let from_content = key.from_content();
    let key: String = InboxKey::into(key);
    let entry = InboxEntry { tenant: tenant.clone(), key: key.clone(), fingerprint, items, received_at: now };
    match inbox.put(&entry).await? {
        InboxPut::Stored => Ok(Accepted::Stored { events, key }),
        InboxPut::Duplicate => Ok(Accepted::Duplicate),
        // The key is derived from the content, so another body under it is the same events again.
        InboxPut::Mismatch if from_content => Ok(Accepted::Duplicate),
        InboxPut::Mismatch => Err(IntakeError::Reused),
    }
}

/// Tells the worker that an inbox entry is ready. The entry is durable already: if the nudge fails, the
/// scheduler's sweep re-drives it, so a failure is only logged.
pub async fn announce(publisher: &dyn EventPublisher, tenant: &TenantId, key: &str) {
    let ready = BusEvent::InboxReady { tenant: tenant.clone(), key: key.to_owned() };
    if let Err(e) = publisher.publish(&[ready]).await {
        tracing::warn!(error = %e, "inbox entry stored, but the worker was not notified; the sweep will re-drive it");
    }
}

/// An ESP hook's URL names a tenant and an account; the events are accepted only when that tenant owns the
/// account and is a real tenant, never a dry run's (M2). An unknown account, another tenant's account and
/// a dry run's tenant are the same [`IntakeError::NotFound`], so the answer tells nobody which accounts
/// exist (L3).
pub async fn owned_by(tenants: &dyn Tenants, tenant: &TenantId, esp: &EspAccount) -> Result<(), IntakeError> {
    if tenant.is_preview() {
        return Err(IntakeError::NotFound("account"));
    }
    match tenants.account(esp).await? {
        Some(record) if &record.tenant == tenant => Ok(()),
        _ => Err(IntakeError::NotFound("account")),
    }
}
