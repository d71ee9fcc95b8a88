//! OPTIGEM → optisync: the connector's signed requests. [`OptigemSource`] is the intake's
//! [`WebhookSource`] for change-event batches (hook-optigem); beside it the connector's other reports,
//! command results and snapshot pages (connector-api), and the runs an export's result wakes.

use super::{Accepted, Hook, Intake, IntakeError, Observed, WebhookSource};
/// The scheduled runs an export's result wakes; they live with the runs.
pub use crate::reconcile::runs_waiting_for;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_connector::signature::{SignedHeaders, SigningSecret, VerifyError, verify};
use optisync_connector::wire::{ChangeEvent, EventBatch, WireError, parse_batch, parse_result, parse_snapshot_page};
use optisync_domain::{CommandId, Input, OptigemCommand, TenantId};
use optisync_ports::names::{InboxKey, secret};
use optisync_ports::{Inbox, InboxItem, SecretStore, StateStore, StoreError};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The intake of signed change-event batches from a tenant's connector.
pub type OptigemIngest = Intake<OptigemSource>;

/// A body that is not as the wire format says: the field and the problem.
fn malformed(e: WireError) -> IntakeError {
    IntakeError::Malformed { path: Some(e.path), problem: e.problem }
}

/// A missing header is a malformed request (400, T08); every other failure is a 401.
pub(crate) fn unauthorized(e: VerifyError) -> IntakeError {
    match e {
        // A request without the headers, or with a `webhook-id` no key can hold, is malformed (400, T08,
        // T28); every other fault is a refusal that says no more than "no valid signature" (L3).
        VerifyError::MissingHeader | VerifyError::InvalidMessageId(_) => {
            IntakeError::Malformed { path: None, problem: e.to_string() }
        }
        _ => IntakeError::Unauthorized(e.to_string()),
    }
}

/// The three Standard Webhooks headers of a request.
pub fn signed_headers<'a>(hook: &Hook<'a>) -> SignedHeaders<'a> {
    SignedHeaders {
        id: (hook.header)("webhook-id"),
        timestamp: (hook.header)("webhook-timestamp"),
        signature: (hook.header)("webhook-signature"),
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
) -> Result<&'a str, IntakeError> {
    let active = active_signing_secrets(secrets, tenant).await?;
    verify(&active, headers, body, now.timestamp()).map_err(unauthorized)
}

/// The tenant's active signing secrets, at least one: the events route and connector-api's request
/// signatures (M1) check against the same ones.
pub async fn active_signing_secrets(
    secrets: &dyn SecretStore,
    tenant: &TenantId,
) -> Result<Vec<SigningSecret>, IntakeError> {
    let stored = secrets.get(&secret::signing_secrets(tenant)).await?.ok_or(IntakeError::UnknownTenant)?;
    let active: Vec<SigningSecret> = serde_json::from_str::<Vec<String>>(&stored)
        .map_err(|_| StoreError::Permanent("signing secrets are not a JSON list".into()))?
        .iter()
        .filter_map(|s| SigningSecret::parse(s).ok())
        .collect();
    if active.is_empty() {
        return Err(IntakeError::UnknownTenant);
    }
    Ok(active)
}

/// Signed change-event batches: signature check (5-minute window) → parse → one inbox entry keyed by the
/// `webhook-id`, so a replay inside the window is a duplicate and the id with another body is refused.
#[derive(Clone)]
pub struct OptigemSource {
    secrets: Arc<dyn SecretStore>,
}

impl OptigemSource {
    /// Over the secret store (the tenants' signing secrets).
    pub fn new(secrets: Arc<dyn SecretStore>) -> Self {
        Self { secrets }
    }
}

impl Intake<OptigemSource> {
    /// The OPTIGEM intake over the secret store (signing secrets) and the inbox.
    pub fn optigem(secrets: Arc<dyn SecretStore>, inbox: Arc<dyn Inbox>) -> Self {
        Intake::new(OptigemSource::new(secrets), inbox)
    }
}

#[async_trait]
impl WebhookSource for OptigemSource {
    type Verified = String;
    type Parsed = EventBatch;

    async fn verify(&self, hook: &Hook<'_>) -> Result<String, IntakeError> {
        let id = authenticate(self.secrets.as_ref(), hook.tenant, signed_headers(hook), hook.body, hook.now).await?;
        Ok(id.to_owned())
    }

    fn parse(&self, body: &[u8]) -> Result<EventBatch, IntakeError> {
        parse_batch(body).map_err(malformed)
    }

    async fn observe(&self, hook: &Hook<'_>, id: String, batch: EventBatch) -> Result<Option<Observed>, IntakeError> {
        Ok(Some(Observed {
            key: InboxKey::optigem(&id),
            fingerprint: hex::encode(Sha256::digest(hook.body)),
            items: batch.events.into_iter().map(|e| InboxItem::from(ChangeEvent::into_input(e))).collect(),
        }))
    }
}

/// Records the connector's result for a command of the tenant's feed (`POST …/commands/{id}/result`).
/// Reporting twice is harmless; a `done` result is final. The suggestions of a `match_persons` result
/// are read with the approval entry (R-C3); a `create_assignment` result names the assignment created.
/// An `end_assignment` done is also put into the inbox as [`Input::EndConfirmed`] (R-J2); its key is
/// returned for the worker to be told.
pub async fn accept_result(
    store: &dyn StateStore,
    inbox: &dyn Inbox,
    tenant: &TenantId,
    command: &CommandId,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Option<String>, IntakeError> {
    let result = parse_result(body).map_err(malformed)?;
    let Some((_, issued)) = store.command(tenant, command).await? else {
        return Err(IntakeError::NotFound("command"));
    };
    store.record_result(tenant, command, &result).await?;
    if result.is_done() {
        return end_confirmed(inbox, tenant, &issued, now).await;
    }
    Ok(None)
}

/// R-J2: an `end_assignment` OPTIGEM has executed is the moment erasure mode may act: one inbox entry
/// per command (a repeated result is a duplicate), keyed by the command id.
async fn end_confirmed(
    inbox: &dyn Inbox,
    tenant: &TenantId,
    issued: &OptigemCommand,
    now: DateTime<Utc>,
) -> Result<Option<String>, IntakeError> {
    let OptigemCommand::EndAssignment { id, assignment, newsletter, unsubscription, .. } = issued else {
        return Ok(None);
    };
    let input = Input::EndConfirmed {
        command: id.clone(),
        assignment: assignment.clone(),
        newsletter: newsletter.clone(),
        unsubscription: unsubscription.clone(),
    };
    let fingerprint = hex::encode(Sha256::digest(id.as_str().as_bytes()));
    let observed = Observed { key: InboxKey::end_confirmed(id), fingerprint, items: vec![input.into()] };
    match super::put(inbox, tenant, observed, now).await? {
        Accepted::Stored { key, .. } => Ok(Some(key)),
        _ => Ok(None),
    }
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
) -> Result<Accepted, IntakeError> {
    let parsed = parse_snapshot_page(body).map_err(malformed)?;
    match store.command(tenant, snapshot).await? {
        Some((_, OptigemCommand::ExportNewsletter { newsletter, .. })) if newsletter == parsed.newsletter => {}
        Some((_, OptigemCommand::ExportNewsletter { .. })) => {
            return Err(malformed(WireError {
                path: "newsletter".into(),
                problem: "differs from the newsletter the export asked for".into(),
            }));
        }
        _ => return Err(IntakeError::NotFound("snapshot")),
    }
    let observed = Observed {
        key: InboxKey::snapshot(snapshot, u64::from(page)),
        fingerprint: hex::encode(Sha256::digest(body)),
        items: parsed
            .assignments
            .into_iter()
            .map(|assignment| Input::AssignmentChanged { assignment }.into())
            .collect(),
    };
    let accepted = super::put(inbox, tenant, observed, now).await?;
    if let Accepted::Stored { key, .. } = &accepted {
        inbox.mark_done(tenant, key).await?;
    }
    Ok(accepted)
}
