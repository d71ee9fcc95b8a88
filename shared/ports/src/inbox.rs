//! The durable inbox between the hooks and the worker, and what it holds.

use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{EspAccount, Input, ListId, TenantId};

/// A CleverReach receiver event to be re-read from the API before it is applied: the payload carries ids
/// only, and re-reading gives the receiver's current state, so a late or repeated delivery is harmless.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reread {
    /// The account.
    pub esp: EspAccount,
    /// The group (`condition`).
    pub list: ListId,
    /// The receiver id (`pool_id`).
    pub receiver: String,
    /// The event name, e.g. `receiver.unsubscribed`.
    pub event: String,
    /// When the hook accepted it (the time of the observation when the ESP gives none).
    pub received_at: DateTime<Utc>,
}

/// One unit of work in an inbox entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "item", rename_all = "snake_case")]
pub enum InboxItem {
    /// A planner input, applied as it is.
    Input {
        /// The input.
        input: Box<Input>,
    },
    /// A receiver to re-read first; the observations found are then applied.
    Reread {
        /// What to re-read.
        reread: Reread,
    },
}

impl From<Input> for InboxItem {
    fn from(input: Input) -> Self {
        Self::Input { input: Box::new(input) }
    }
}

/// One accepted request, kept until the worker has applied it: the durable, idempotent inbox between
/// the hooks and the worker. The key is the sender's message id (`webhook-id`, or a key derived from the
/// content where the sender has none), scoped by tenant. Stores keep it in this serde form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InboxEntry {
    /// The tenant.
    pub tenant: TenantId,
    /// The message key.
    pub key: String,
    /// A hash of the body: the same key with another body is refused.
    pub fingerprint: String,
    /// The work the request carried, in order.
    pub items: Vec<InboxItem>,
    /// When it was accepted.
    pub received_at: DateTime<Utc>,
}

/// What storing an inbox entry found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxPut {
    /// Stored now.
    Stored,
    /// The same key and body were stored before: nothing to do.
    Duplicate,
    /// The key was used before for another body.
    Mismatch,
}

/// The inbox: accepted requests wait here until processed; a sweep finds those that stayed unprocessed.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Stores an entry once per (tenant, key); an expired entry under the key counts as absent.
    async fn put(&self, entry: &InboxEntry) -> Result<InboxPut, StoreError>;
    /// An entry, if stored and not expired.
    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<InboxEntry>, StoreError>;
    /// Marks an entry processed: it leaves the pending index and is kept for the tenant's
    /// [`Retention::inbox`](optisync_domain::Retention::inbox) to answer duplicates, then forgotten (R-J6).
    async fn mark_done(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError>;
    /// Unprocessed entries received before `before`, oldest first, up to `limit`.
    async fn pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, String)>, StoreError>;
}
