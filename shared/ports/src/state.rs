//! The state store's vocabulary: item keys and versions, what to load, what one commit writes, and why a
//! store call fails.

use chrono::{DateTime, Utc};
use optisync_domain::{
    ApprovalEntry, AssignmentId, AuditEntry, Email, EspAccount, LinkId, LinkView, OptigemCommand, StateWrite, TenantId,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The key of one versioned state item, for conditional writes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemKey {
    /// A mirror entry.
    Mirror(LinkId, AssignmentId),
    /// A recipient state (by the R-B2 key of the e-mail).
    Recipient(LinkId, String),
    /// An approval entry (by the R-B2 key of the e-mail).
    Approval(LinkId, String),
}

impl ItemKey {
    /// The key a state write goes to.
    pub fn of(write: &StateWrite) -> Self {
        match write {
            StateWrite::Mirror { link, entry } => Self::Mirror(link.clone(), entry.id.clone()),
            StateWrite::Recipient { link, email, .. } => Self::Recipient(link.clone(), email.key().to_owned()),
            StateWrite::Approval { entry } => Self::Approval(entry.link.clone(), entry.email.key().to_owned()),
        }
    }
}

/// A slice of a link's state with the version of every item in it (absent items have no version).
#[derive(Debug, Clone)]
pub struct LoadedView {
    /// The items.
    pub view: LinkView,
    /// Their versions, for the conditional writes of the commit.
    pub versions: BTreeMap<ItemKey, u64>,
}

/// What to load of a link: the assignments named, and everything about the e-mails named (mirror
/// entries using them, recipient states, approvals).
#[derive(Debug, Clone, Default)]
pub struct Slice {
    /// Mirror entries by id.
    pub assignments: Vec<AssignmentId>,
    /// E-mails whose mirror entries, recipient and approval are needed.
    pub emails: Vec<Email>,
}

/// The effects of one planned input, written atomically: either all items and commands or none.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// State writes, each conditional on the version it was read at (`None`: must not exist yet).
    pub writes: Vec<(StateWrite, Option<u64>)>,
    /// OPTIGEM commands to append to the tenant's feed; an id already there is not appended again. A new
    /// `erasure_report` also leaves its deletion report in the outbox
    /// ([`ErasureReports`](crate::ErasureReports), R-J2), unless the commands carry an expiry (a dry run).
    pub commands: Vec<OptigemCommand>,
    /// Audit trail entries, written with the rest (one item each; the store forgets them after
    /// [`AuditEntry::expires_at`]).
    pub audit: Vec<AuditEntry>,
    /// How long the store keeps what this commit writes once it may forget it (R-J6).
    pub expiry: Expiry,
}

/// The most items one commit may write: DynamoDB's `TransactWriteItems` bound. Every store refuses a
/// larger commit the same way ([`StoreError::Permanent`] naming the bound), so the in-memory suites see
/// what only DynamoDB would show (H4); callers plan in pages that stay below it.
pub const MAX_COMMIT_ITEMS: usize = 100;

impl Commit {
    /// The items this commit writes as DynamoDB counts them, given how many of its commands are new to
    /// the feed (`new_commands`): each state write, the R-J3 tombstone of each expirable recipient state
    /// that leaves one, each audit entry, and per new command its id marker and feed entry, plus the
    /// feed's counter once.
    pub fn items(&self, new_commands: usize) -> usize {
        let tombstones = self
            .writes
            .iter()
            .filter(|(w, _)| match w {
                StateWrite::Recipient { state, .. } => {
                    self.expiry.items.contains_key(&ItemKey::of(w))
                        && optisync_domain::TombstoneRecord::of(state).is_some()
                }
                _ => false,
            })
            .count();
        self.writes.len() + tombstones + self.audit.len() + 2 * new_commands + usize::from(new_commands > 0)
    }

    /// [`StoreError::Permanent`] when the commit writes more than [`MAX_COMMIT_ITEMS`] (H4).
    pub fn check_size(&self, new_commands: usize) -> Result<(), StoreError> {
        let items = self.items(new_commands);
        if items > MAX_COMMIT_ITEMS {
            return Err(StoreError::Permanent(format!(
                "a commit of {items} items exceeds one transaction ({MAX_COMMIT_ITEMS}); plan in smaller pages"
            )));
        }
        Ok(())
    }
}

/// How long a store keeps the records of one commit that became expirable (R-J6), counted from the
/// commit by the store's own clock (DynamoDB's TTL deletes by wall-clock time, so the stores date
/// expiries themselves). Until then the item reads as usual; after it, it reads as absent, whether or
/// not a TTL or purge has removed it yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expiry {
    /// State items written by this commit that may expire, and how long they are kept. A written item
    /// not named here is kept for good: an expiry it had before is cleared (it is needed again).
    pub items: BTreeMap<ItemKey, chrono::Duration>,
    /// How long the commands this commit appends are kept (a dry run's feed, which no connector
    /// reads). `None`: until the connector reports a result, then the tenant's
    /// [`Retention::commands`](optisync_domain::Retention::commands).
    pub commands: Option<chrono::Duration>,
}

/// A step of an OAuth authorisation the admin API started and has not seen finished (M4): stored when
/// it issues a single-use token (the start ticket, the state sent to CleverReach), taken once when the
/// token comes back ([`Tenants::take_authorisation`]). Only the SHA-256 of the token's nonce is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorisation {
    /// The tenant that started it (the key carries it, R-K1).
    pub tenant: TenantId,
    /// The account it authorises.
    pub account: EspAccount,
    /// The SHA-256 (hex) of the nonce the token holds.
    pub nonce_hash: String,
    /// When it stops counting; the store may keep it a while after (callers compare with now).
    pub expires_at: DateTime<Utc>,
}

/// Why a store call failed. Conflicts and throttling are expected under concurrency and retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost against a concurrent writer: reload and plan again.
    #[error("a concurrent writer changed an item first")]
    Conflict,
    /// The store is throttling or unreachable for now: retry later (HTTP 429 at the edge).
    #[error("the store is busy or unreachable: {0}")]
    Transient(String),
    /// Anything else: a bug or misconfiguration.
    #[error("store failure: {0}")]
    Permanent(String),
}

/// One page of an approval queue from a link's entries in any order: the pending ones after the queue
/// position `after`, oldest first ([`ApprovalEntry::queue_position`]), up to `limit`. Every store's
/// [`ApprovalQueue::pending_approvals`](crate::ApprovalQueue::pending_approvals) pages through this.
pub fn queue_page(
    entries: impl IntoIterator<Item = ApprovalEntry>,
    after: Option<&str>,
    limit: usize,
) -> Vec<ApprovalEntry> {
    let mut pending: Vec<(String, ApprovalEntry)> = entries
        .into_iter()
        .filter(|e| e.status == optisync_domain::ApprovalStatus::Pending)
        .map(|e| (e.queue_position(), e))
        .filter(|(position, _)| after.is_none_or(|a| position.as_str() > a))
        .collect();
    pending.sort_by(|a, b| a.0.cmp(&b.0));
    pending.into_iter().take(limit).map(|(_, e)| e).collect()
}
