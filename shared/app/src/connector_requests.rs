//! connector-api's requests (M1, R-K1): each is signed over what it does, and each `webhook-id` of a
//! result or a snapshot page is executed once per tenant.
//!
//! The signature binds the method, path and query to the body ([`SignedRequest`]), so a captured
//! request passes only as itself. A request passing as itself again inside the 5-minute tolerance (a
//! retry after a lost answer, or a replay) executes nothing: its `webhook-id` is remembered in the inbox
//! under `connector:{webhook-id}` with the fingerprint of the signed request, as hook-optigem remembers
//! `optigem:{webhook-id}`. Another request under a remembered id is refused (409). Feed reads (GET) are not
//! remembered: they change nothing, and a poll every few seconds would leave an entry each.

use crate::intake::IntakeError;
use crate::intake::optigem::{active_signing_secrets, unauthorized};
use chrono::{DateTime, Utc};
use optisync_connector::signature::{SignedHeaders, SignedRequest, verify_request};
use optisync_domain::TenantId;
use optisync_ports::names::InboxKey;
use optisync_ports::{Inbox, InboxEntry, InboxPut, SecretStore, StoreError};
use sha2::{Digest, Sha256};

/// Checks a connector-api request's signature (the optisync extension: method, path and query signed
/// with the body) against the tenant's active secrets and the 5-minute window; returns the `webhook-id`.
pub async fn authenticate_request<'a>(
    secrets: &dyn SecretStore,
    tenant: &TenantId,
    headers: SignedHeaders<'a>,
    request: &SignedRequest<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<&'a str, IntakeError> {
    let active = active_signing_secrets(secrets, tenant).await?;
    verify_request(&active, headers, request, body, now.timestamp()).map_err(unauthorized)
}

/// The inbox key under which a connector-api `webhook-id` is remembered, apart from the events'
/// `optigem:{id}`.
pub fn replay_key(id: &str) -> String {
    InboxKey::connector(id).into()
}

/// What the `webhook-id` of a result or a snapshot page found.
#[derive(Debug)]
pub enum Use {
    /// Not seen before: execute the request, then [`FirstUse::remember`] it.
    First(FirstUse),
    /// This very request was executed before under this id: answer as a duplicate, execute nothing.
    Repeat,
}

/// A request seen for the first time under its `webhook-id`, to remember once it has been executed.
#[derive(Debug)]
pub struct FirstUse {
    tenant: TenantId,
    key: String,
    fingerprint: String,
}

/// The fingerprint of a signed request: its request line and body, as signed.
fn fingerprint(request: &SignedRequest<'_>, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(request.line().as_bytes());
    hash.update(b"\n");
    hash.update(body);
    hex::encode(hash.finalize())
}

/// Looks up a result's or a snapshot page's `webhook-id` for the tenant: [`Use::Repeat`] for the same
/// request again, [`IntakeError::Reused`] (409) for another request under that id.
pub async fn first_use(
    inbox: &dyn Inbox,
    tenant: &TenantId,
    id: &str,
    request: &SignedRequest<'_>,
    body: &[u8],
) -> Result<Use, IntakeError> {
    let key = replay_key(id);
    let fingerprint = fingerprint(request, body);
    match inbox.get(tenant, &key).await? {
        None => Ok(Use::First(FirstUse { tenant: tenant.clone(), key, fingerprint })),
        Some(seen) if seen.fingerprint == fingerprint => Ok(Use::Repeat),
        Some(_) => Err(IntakeError::Reused),
    }
}

impl FirstUse {
    /// Remembers the id after the request was executed (an entry with nothing for the worker, done at once).
    /// Should this fail, a repeat of the request executes again, which results and pages allow.
    pub async fn remember(self, inbox: &dyn Inbox, now: DateTime<Utc>) -> Result<(), StoreError> {
        let entry = InboxEntry {
            tenant: self.tenant,
            key: self.key,
            fingerprint: self.fingerprint,
            items: Vec::new(),
            received_at: now,
        };
        if inbox.put(&entry).await? == InboxPut::Stored {
            inbox.mark_done(&entry.tenant, &entry.key).await?;
        }
        Ok(())
    }
}
