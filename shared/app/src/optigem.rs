//! OPTIGEM → optisync: accepting signed change events into the inbox (hook-optigem), and applying an
//! inbox entry through the engine (the worker).

use chrono::{DateTime, Utc};
use optisync_connector::signature::{SignedHeaders, SigningSecret, VerifyError, verify};
use optisync_connector::wire::{ChangeEvent, WireError, parse_batch, parse_result, parse_snapshot_page};
use optisync_domain::{CommandId, Input, OptigemCommand, TenantId};
use optisync_ports::{Inbox, InboxEntry, InboxItem, InboxPut, SecretStore, StateStore, StoreError};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The name of a tenant's connector signing secrets in the secret store: a JSON array of secrets, all
/// valid together during a rotation.
pub fn signing_secrets_name(tenant: &TenantId) -> String {
    format!("connector/{tenant}/signing-secrets")
}

/// What became of an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored now: `events` events wait for the worker under `key`.
    Stored {
        /// How many events.
        events: usize,
        /// The inbox key, to hand to the worker.
        key: String,
    },
    /// This message id was stored before with the same body.
    Duplicate,
}

/// Why a request was not accepted. Nothing was stored in any case.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The tenant has no signing secret: unknown tenant or not set up (401).
    #[error("unknown tenant or no signing secret")]
    UnknownTenant,
    /// Signature, timestamp or headers refused (401).
    #[error("{0}")]
    Unauthorized(#[from] VerifyError),
    /// The body is not a valid batch (400); names the field.
    #[error("{0}")]
    Malformed(#[from] WireError),
    /// The message id was used before with another body (409).
    #[error("this webhook-id was used before for a different body")]
    Reused,
    /// The command or snapshot named does not exist for this tenant (404).
    #[error("no such {0} for this tenant")]
    NotFound(&'static str),
    /// A transient store fault (429 with Retry-After): the sender retries.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl IngestError {
    /// The HTTP status the hook answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownTenant | Self::Unauthorized(_) => 401,
            Self::Malformed(_) => 400,
            Self::Reused => 409,
            Self::NotFound(_) => 404,
            Self::Store(StoreError::Permanent(_)) => 500,
            Self::Store(_) => 429,
        }
    }

    /// The `error` object of the HTTP answer: the field and the problem for a malformed body, else the
    /// problem.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            Self::Malformed(w) => serde_json::json!({"path": w.path, "problem": w.problem}),
            other => serde_json::json!({"problem": other.to_string()}),
        }
    }
}

/// Checks a change-event request's plain Standard Webhooks signature against the tenant's active signing
/// secrets (several during a rotation) and the 5-minute window; returns the message id. connector-api's
/// requests sign their method, path and query too ([`crate::connector_requests::authenticate_request`], M1).
pub async fn authenticate<'a>(
    secrets: &dyn SecretStore,
    tenant: &TenantId,
    headers: SignedHeaders<'a>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<&'a str, IngestError> {
    let active = active_signing_secrets(secrets, tenant).await?;
    Ok(verify(&active, headers, body, now.timestamp())?)
}

/// The tenant's active signing secrets, at least one: the events route and connector-api's request
/// signatures (M1) check against the same ones.
pub async fn active_signing_secrets(
    secrets: &dyn SecretStore,
    tenant: &TenantId,
) -> Result<Vec<SigningSecret>, IngestError> {
    let stored = secrets.get(&signing_secrets_name(tenant)).await?.ok_or(IngestError::UnknownTenant)?;
    let active: Vec<SigningSecret> = serde_json::from_str::<Vec<String>>(&stored)
        .map_err(|_| StoreError::Permanent("signing secrets are not a JSON list".into()))?
        .iter()
        .filter_map(|s| SigningSecret::parse(s).ok())
        .collect();
    if active.is_empty() {
        return Err(IngestError::UnknownTenant);
    }
    Ok(active)
}

/// Accepts signed change-event batches from a tenant's connector into the inbox.
#[derive(Clone)]
pub struct OptigemIngest {
    secrets: Arc<dyn SecretStore>,
    inbox: Arc<dyn Inbox>,
}

impl OptigemIngest {
    /// Over the secret store (signing secrets) and the inbox.
    pub fn new(secrets: Arc<dyn SecretStore>, inbox: Arc<dyn Inbox>) -> Self {
        Self { secrets, inbox }
    }

    /// Raw body → signature check (5-minute window) → parse → durable, idempotent inbox write keyed by
    /// the `webhook-id`. Bad input changes nothing; a replay inside the window is a duplicate.
    pub async fn accept(
        &self,
        tenant: &TenantId,
        headers: SignedHeaders<'_>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, IngestError> {
        let id = authenticate(self.secrets.as_ref(), tenant, headers, body, now).await?;
        let batch = parse_batch(body)?;
        let events = batch.events.len();
        let key = format!("optigem:{id}");
        let entry = InboxEntry {
            tenant: tenant.clone(),
            key: key.clone(),
            fingerprint: hex::encode(Sha256::digest(body)),
            items: batch.events.into_iter().map(|e| InboxItem::from(ChangeEvent::into_input(e))).collect(),
            received_at: now,
        };
        match self.inbox.put(&entry).await? {
            InboxPut::Stored => Ok(Accepted::Stored { events, key }),
            InboxPut::Duplicate => Ok(Accepted::Duplicate),
            InboxPut::Mismatch => Err(IngestError::Reused),
        }
    }
}

/// Records the connector's result for a command of the tenant's feed (`POST …/commands/{id}/result`).
/// Reporting twice is harmless; a `done` result is final. The suggestions of a `match_persons` result
/// are read with the approval entry (R-C3); a `create_assignment` result names the assignment created.
pub async fn accept_result(
    store: &dyn StateStore,
    tenant: &TenantId,
    command: &CommandId,
    body: &[u8],
) -> Result<(), IngestError> {
    let result = parse_result(body)?;
    if store.command(tenant, command).await?.is_none() {
        return Err(IngestError::NotFound("command"));
    }
    store.record_result(tenant, command, &result).await?;
    Ok(())
}

/// The inbox key of snapshot page `page` (counting from 1) of the export `snapshot`.
pub fn snapshot_page_key(snapshot: &CommandId, page: u64) -> String {
    format!("snapshot:{snapshot}:{page}")
}

/// Accepts one snapshot page answering an `export_newsletter` command (`PUT …/snapshots/{id}/pages/{n}`)
/// into the inbox, as one `assignment.changed` per assignment: snapshots carry versions, so a page that
/// arrives after newer change events changes nothing (R-F2…F6). A page sent twice is stored once.
///
/// The page is kept out of the worker's way (marked processed at once): the scheduled run that asked for
/// the export applies the pages in order once the connector reports it done, or previews them in a dry
/// run without applying anything (R-F8).
pub async fn accept_snapshot_page(
    store: &dyn StateStore,
    inbox: &dyn Inbox,
    tenant: &TenantId,
    snapshot: &CommandId,
    page: u32,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Accepted, IngestError> {
    let parsed = parse_snapshot_page(body)?;
    match store.command(tenant, snapshot).await? {
        Some((_, OptigemCommand::ExportNewsletter { newsletter, .. })) if newsletter == parsed.newsletter => {}
        Some((_, OptigemCommand::ExportNewsletter { .. })) => {
            return Err(IngestError::Malformed(WireError {
                path: "newsletter".into(),
                problem: "differs from the newsletter the export asked for".into(),
            }));
        }
        _ => return Err(IngestError::NotFound("snapshot")),
    }
    let events = parsed.assignments.len();
    let key = snapshot_page_key(snapshot, u64::from(page));
    let entry = InboxEntry {
        tenant: tenant.clone(),
        key: key.clone(),
        fingerprint: hex::encode(Sha256::digest(body)),
        items: parsed
            .assignments
            .into_iter()
            .map(|assignment| Input::AssignmentChanged { assignment }.into())
            .collect(),
        received_at: now,
    };
    match inbox.put(&entry).await? {
        InboxPut::Stored => {
            inbox.mark_done(tenant, &key).await?;
            Ok(Accepted::Stored { events, key })
        }
        InboxPut::Duplicate => Ok(Accepted::Duplicate),
        InboxPut::Mismatch => Err(IngestError::Reused),
    }
}

/// The scheduled runs waiting for an export, to wake when the connector reports the export's result:
/// the first syncs (and dry runs) of the newsletter's links and the reconciliations whose checkpoint
/// names the export.
pub async fn runs_waiting_for(
    store: &dyn StateStore,
    tenant: &TenantId,
    command: &CommandId,
) -> Result<Vec<(TenantId, optisync_domain::LinkId)>, StoreError> {
    let Some((_, OptigemCommand::ExportNewsletter { newsletter, .. })) = store.command(tenant, command).await? else {
        return Ok(Vec::new());
    };
    let mut waiting = Vec::new();
    for t in [tenant.clone(), crate::reconcile::preview_tenant(tenant)] {
        for link in store.links_for_newsletter(&t, &newsletter).await? {
            if link.status == optisync_domain::LinkStatus::Linking
                || crate::reconcile::waits_for(store, &link.id, command).await?
            {
                waiting.push((t.clone(), link.id));
            }
        }
    }
    Ok(waiting)
}
