//! Ports: the small async traits the use cases talk through.
//!
//! Adapters (DynamoDB, Brevo, CleverReach, EventBridge) implement them; the in-memory doubles and the
//! conformance suite every store runs live in the dev-only `optisync-testkit` (`dev/testkit`).

pub mod intake;
pub mod metrics;
pub mod names;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use optisync_domain::{
    AccountRecord, ApprovalEntry, AssignmentId, AuditEntry, CommandId, CommandResult, Email, EspAccount, EspAction,
    EspEvent, Input, Link, LinkId, LinkView, ListId, NewsletterId, OptigemCommand, RecipientState, StateWrite,
    TenantId, TenantSettings,
};
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
    /// OPTIGEM commands to append to the tenant's feed; an id already there is not appended again.
    pub commands: Vec<OptigemCommand>,
    /// Audit trail entries, written with the rest (one item each; the store forgets them after
    /// [`AuditEntry::expires_at`]).
    pub audit: Vec<AuditEntry>,
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

/// Durable state: links, the mirror, recipients, approvals and the OPTIGEM command feed.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The tenant's settings (defaults if none were saved).
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError>;
    /// Saves a tenant's settings (create or replace).
    async fn put_tenant_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<(), StoreError>;
    /// The ESP accounts a tenant connected, ordered by provider and account.
    async fn accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, StoreError>;
    /// One ESP account record, whichever tenant holds it.
    async fn account(&self, esp: &EspAccount) -> Result<Option<AccountRecord>, StoreError>;
    /// Saves an ESP account record (create or replace); [`StoreError::Conflict`] and nothing written when
    /// another tenant holds that provider's account id.
    async fn put_account(&self, record: &AccountRecord) -> Result<(), StoreError>;
    /// A link's pending approval entries in queue order (oldest first, [`ApprovalEntry::queue_position`]),
    /// after the position `after` (`None`: from the first), up to `limit`.
    async fn pending_approvals(
        &self,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ApprovalEntry>, StoreError>;
    /// Saves a link (create or replace).
    async fn put_link(&self, link: &Link) -> Result<(), StoreError>;
    /// Every link of a tenant.
    async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, StoreError>;
    /// Every link of every tenant, ordered by tenant and link (the scheduler's fan-out).
    async fn all_links(&self) -> Result<Vec<Link>, StoreError>;
    /// One link of a tenant. A tenant has few links, so this filters [`StateStore::links`].
    async fn link(&self, tenant: &TenantId, link: &LinkId) -> Result<Option<Link>, StoreError> {
        Ok(self.links(tenant).await?.into_iter().find(|l| &l.id == link))
    }
    /// The links of a newsletter (R-F7). A tenant has few links, so this filters [`StateStore::links`].
    async fn links_for_newsletter(
        &self,
        tenant: &TenantId,
        newsletter: &NewsletterId,
    ) -> Result<Vec<Link>, StoreError> {
        Ok(self.links(tenant).await?.into_iter().filter(|l| &l.newsletter == newsletter).collect())
    }
    /// The links of one ESP account (R-E2).
    async fn links_for_account(&self, tenant: &TenantId, esp: &EspAccount) -> Result<Vec<Link>, StoreError> {
        Ok(self.links(tenant).await?.into_iter().filter(|l| &l.esp == esp).collect())
    }
    /// A slice of a link's state.
    async fn load(&self, link: &Link, slice: &Slice) -> Result<LoadedView, StoreError>;
    /// Mirror entries of a link whose next transition is due on `date` (R-A9), up to `limit`.
    async fn due(&self, link: &Link, date: NaiveDate, limit: usize) -> Result<Vec<AssignmentId>, StoreError>;
    /// Writes a commit atomically, or nothing and [`StoreError::Conflict`].
    async fn commit(&self, tenant: &TenantId, commit: Commit) -> Result<(), StoreError>;
    /// Takes the lease `name` for `owner` until `until`, if it is free, expired, or already the owner's.
    /// Leases serialise work on one recipient (ESP writes happen outside the commit, so two writers must
    /// not interleave) and stop two runs of one link from overlapping.
    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Gives a lease back (only the owner's).
    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError>;
    /// The tenant's command feed after sequence number `after`, oldest first, up to `limit`.
    async fn commands(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OptigemCommand)>, StoreError>;
    /// One command of the tenant's feed by id, with its sequence number.
    async fn command(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<(u64, OptigemCommand)>, StoreError>;
    /// Records the connector's result for a command of the feed. A `done` result is final: a later report
    /// (a retry of the same acknowledgement, or a stray failure) changes nothing. A command not in the
    /// feed is a [`StoreError::Permanent`]; callers check with [`StateStore::command`] first.
    async fn record_result(&self, tenant: &TenantId, id: &CommandId, result: &CommandResult) -> Result<(), StoreError>;
    /// The result recorded for a command, if any.
    async fn command_result(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<CommandResult>, StoreError>;
    /// The run state of a link (the scheduled run's checkpoint and last result, as the reconciler encodes
    /// it) with its version.
    async fn run_state(&self, link: &LinkId) -> Result<Option<(String, u64)>, StoreError>;
    /// Saves a link's run state if its version is still `expected` (`None`: there is none yet), else
    /// [`StoreError::Conflict`] and nothing is written.
    async fn save_run_state(&self, link: &LinkId, value: &str, expected: Option<u64>) -> Result<(), StoreError>;
    /// A link's audit trail, newest first, up to `limit` entries, without those expired at `now`.
    async fn audit(&self, link: &LinkId, now: DateTime<Utc>, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// A link's recipient states in the order of their R-B2 keys, starting after the key `after` (`None`:
    /// from the first), up to `limit` (the scheduled run's sweep for members gone from the list).
    async fn recipients(
        &self,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Email, RecipientState)>, StoreError>;
    /// Stores chunk `index` of a run's working data under `run` (the e-mails a listing saw, deferred ends,
    /// a dry run's report), replacing a chunk written before at that index; the store forgets it after
    /// `expires_at`.
    async fn put_run_chunk(
        &self,
        link: &LinkId,
        run: &str,
        index: u64,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// A run's chunks with an index above `after` (`None`: from the first), in index order, up to `limit`.
    async fn run_chunks(
        &self,
        link: &LinkId,
        run: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError>;
}

/// One page of an approval queue from a link's entries in any order: the pending ones after the queue
/// position `after`, oldest first ([`ApprovalEntry::queue_position`]), up to `limit`. Every store's
/// [`StateStore::pending_approvals`] pages through this.
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

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the key now (INPROGRESS until the given expiry) and must complete or abandon it.
    Acquired,
    /// Another caller is working on it and its INPROGRESS record has not expired.
    InProgress,
    /// Done before; here is the stored result.
    Completed(String),
    /// The key was used before for a different payload: the request is rejected.
    Mismatch,
}

impl Claim {
    /// The answer for a live record that holds the key: another payload is a mismatch, a stored result
    /// means completed, anything else is still in progress. Every store decides through this.
    pub fn of_existing(stored_fingerprint: &str, result: Option<String>, fingerprint: &str) -> Self {
        match result {
            _ if stored_fingerprint != fingerprint => Self::Mismatch,
            Some(result) => Self::Completed(result),
            None => Self::InProgress,
        }
    }
}

/// Idempotency records in the style of Lambda Powertools: one record per event key, INPROGRESS with its
/// own expiry (taken from the Lambda deadline) → COMPLETED with the stored result, a payload fingerprint
/// so a reused key with a different body is rejected, and removal when processing fails so a retry can
/// run. Expiry is enforced here, not left to a TTL sweep.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a payload with `fingerprint`, INPROGRESS until `in_progress_until`.
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        in_progress_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;
    /// Marks the key COMPLETED with a result kept until `keep_until`.
    async fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        result: &str,
        keep_until: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Removes the record after a failure, so that a retry can run.
    async fn abandon(&self, key: &str) -> Result<(), StoreError>;
}

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
    /// Stores an entry once per (tenant, key).
    async fn put(&self, entry: &InboxEntry) -> Result<InboxPut, StoreError>;
    /// An entry, if stored.
    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<InboxEntry>, StoreError>;
    /// Marks an entry processed (it leaves the pending index; the entry itself is kept for duplicates).
    async fn mark_done(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError>;
    /// Unprocessed entries received before `before`, oldest first, up to `limit`.
    async fn pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, String)>, StoreError>;
}

/// Secrets: ESP API keys, OAuth tokens, connector signing secrets (Secrets Manager in AWS). Never in the
/// state table, never in a log.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret's current value, if it exists.
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Creates or replaces the secret's value.
    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError>;
}

/// Why an ESP call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    /// Rate limited or temporarily unavailable: retry later.
    #[error("the ESP is rate limiting or unavailable; retry after {retry_after_secs:?} s")]
    Transient {
        /// When to try again, if the ESP said.
        retry_after_secs: Option<u64>,
    },
    /// The ESP refused the request: retrying the same will not help.
    #[error("the ESP refused the request: {0}")]
    Rejected(String),
    /// The credentials were refused (CleverReach: re-authorisation needed).
    #[error("the ESP refused the credentials")]
    Unauthorized,
}

/// Reads an ESP's current view of one recipient, for events whose payload carries ids only.
#[async_trait]
pub trait EspReader: Send + Sync {
    /// The observations a re-read yields: none when there is nothing to apply (a receiver gone without a
    /// known address is left to the reconciliation).
    async fn reread(&self, reread: &Reread) -> Result<Vec<EspEvent>, EspError>;
}

/// One member of a list as the ESP shows it now (the reconciliation's view of the ESP side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    /// The address.
    pub email: Email,
    /// Receives mail from this list: Brevo: on the list and not blacklisted; CleverReach: active in the group.
    pub active: bool,
    /// Brevo: on the account-wide blacklist (R-E2).
    pub blacklisted: bool,
    /// When the ESP last changed the member's state (activation, deactivation, blacklist), if it says.
    pub changed_at: Option<DateTime<Utc>>,
    /// What the ESP knows of the member (names, consent evidence), for the approval queue.
    pub signup: optisync_domain::Signup,
}

/// One page of a list, and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// The members on this page.
    pub members: Vec<ListedMember>,
    /// The cursor of the next page; `None` after the last.
    pub next: Option<String>,
}

/// Reads a link's list page by page (reconciliation, first sync).
///
/// A link restricted to a CleverReach segment (R-G1) lists the segment's members: the receivers of the
/// filter, active in the group.
#[async_trait]
pub trait EspLister: Send + Sync {
    /// The page of the link's list that starts at `cursor` (`None`: the first page). Cursors are opaque
    /// and survive a restart, so a run can continue from a checkpoint. With `since`, the lister may leave
    /// out members the ESP has not changed since then (Brevo's `modifiedSince`); a lister without such a
    /// delta lists everyone, and the caller treats a listing with `since` as incomplete either way.
    async fn list_page(
        &self,
        link: &Link,
        since: Option<DateTime<Utc>>,
        cursor: Option<&str>,
    ) -> Result<ListPage, EspError>;

    /// Whether the address is on the link's list (a segment link: in the group and active) right now, by
    /// a lookup of that one member. Paged listings can miss a member when the list changes between two
    /// pages, so nothing is taken as gone from the list before this confirms it.
    async fn is_listed(&self, link: &Link, email: &Email) -> Result<bool, EspError>;
}

/// The ESP side: applies planned operations, each a target state and so safe to repeat.
#[async_trait]
pub trait EspGateway: Send + Sync {
    /// Applies the actions in order.
    async fn apply(&self, actions: &[EspAction]) -> Result<(), EspError>;
}

/// A segment of a list (a CleverReach filter, R-G1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EspSegment {
    /// Its id.
    pub id: optisync_domain::SegmentId,
    /// Its name in the ESP.
    pub name: String,
}

/// A list of an ESP account (Brevo list, CleverReach group) with its segments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EspList {
    /// Its id.
    pub id: ListId,
    /// Its name in the ESP.
    pub name: String,
    /// Its segments (CleverReach filters; none at Brevo).
    pub segments: Vec<EspSegment>,
}

/// What an account offers a link: its lists and the attributes a field mapping may target (R-D6, R-H2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspCatalog {
    /// The lists.
    pub lists: Vec<EspList>,
    /// The attributes, with their scope.
    pub attributes: Vec<optisync_domain::rules::AttributeInfo>,
}

/// The administrative side of the ESPs: connecting accounts (R-H1), what an account offers, and the
/// webhooks a syncing link needs. Credentials go to the secret store and never come back out.
#[async_trait]
pub trait EspDirectory: Send + Sync {
    /// Checks a Brevo API key with a call to Brevo and, if Brevo accepts it, keeps it as the account's.
    /// [`EspError::Unauthorized`] when Brevo refuses it (nothing is kept then).
    async fn connect_brevo(&self, account: &optisync_domain::AccountId, api_key: &str) -> Result<(), EspError>;
    /// Where to send the admin to authorise CleverReach access; `state` comes back with the callback.
    fn cleverreach_authorize_url(&self, state: &str) -> Result<String, EspError>;
    /// Exchanges the callback's code for tokens and keeps them as the account's.
    async fn connect_cleverreach(&self, account: &optisync_domain::AccountId, code: &str) -> Result<(), EspError>;
    /// The account's lists (with segments) and attributes.
    async fn catalog(&self, esp: &EspAccount) -> Result<EspCatalog, EspError>;
    /// Registers the webhooks the link needs at `hook_url` (safe to repeat).
    async fn register_hooks(&self, link: &Link, hook_url: &str) -> Result<(), EspError>;
    /// Removes the link's webhooks at `hook_url` unless one of `still_syncing` (the account's other
    /// syncing links) needs them.
    async fn unregister_hooks(&self, link: &Link, hook_url: &str, still_syncing: &[Link]) -> Result<(), EspError>;
}

/// Work handed on over the event bus (EventBridge in AWS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// An inbox event is ready for the worker.
    InboxReady {
        /// The tenant.
        tenant: TenantId,
        /// The inbox key.
        key: String,
    },
    /// A link is due for its scheduled run.
    ReconcileLink {
        /// The tenant.
        tenant: TenantId,
        /// The link.
        link: LinkId,
    },
}

/// Publishes work on the event bus.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes events; all or an error.
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError>;
}

/// The time, so tests can set it.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
