//! The state store sized to its users: one trait per capability, and [`StateStore`], every capability at
//! once, for the wiring.
//!
//! Link ids, newsletter ids and list ids are unique only within a tenant (R-K1): every per-link call
//! names the tenant too, and every store keys what it keeps by tenant and link, so two tenants with the
//! same ids never see, change, lease or expire each other's items. ESP account ids are the exception:
//! they name the account's secrets and webhook registrations, so one tenant holds an account id in the
//! whole deployment ([`Tenants::put_account`] refuses another tenant's).

use crate::{Commit, ErasureReports, LoadedView, PendingAuthorisation, Slice, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use optisync_domain::{
    AccountRecord, ApprovalEntry, AssignmentId, AuditEntry, CommandId, CommandResult, Email, EspAccount, Link, LinkId,
    NewsletterId, OptigemCommand, RecipientState, TenantId, TenantSettings, Tombstone,
};

/// Tenant settings and the ESP accounts a tenant connected (the admin API; the engine, the scheduled
/// run and approval decisions read the settings).
#[async_trait]
pub trait Tenants: Send + Sync {
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
    /// Records a pending OAuth authorisation step under its tenant and nonce hash (M4), replacing one with
    /// the same key.
    async fn put_authorisation(&self, pending: &PendingAuthorisation) -> Result<(), StoreError>;
    /// Takes the tenant's pending authorisation with this nonce hash: removes it and returns it in one
    /// conditional step, so of any number of calls with one nonce, concurrent or not, exactly one gets it
    /// (M4). `None`: never stored, or taken already. Expiry is not checked here.
    async fn take_authorisation(
        &self,
        tenant: &TenantId,
        nonce_hash: &str,
    ) -> Result<Option<PendingAuthorisation>, StoreError>;
}

/// Links between an OPTIGEM newsletter and an ESP list: saved by the admin API and the scheduled run,
/// looked up by the engine (per newsletter, per account), the scheduler (all of them) and the rest.
#[async_trait]
pub trait Links: Send + Sync {
    /// Saves a link (create or replace).
    async fn put_link(&self, link: &Link) -> Result<(), StoreError>;
    /// Every link of a tenant.
    async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, StoreError>;
    /// Every link of every tenant, ordered by tenant and link (the scheduler's fan-out).
    async fn all_links(&self) -> Result<Vec<Link>, StoreError>;
    /// One link of a tenant. A tenant has few links, so this filters [`Links::links`].
    async fn link(&self, tenant: &TenantId, link: &LinkId) -> Result<Option<Link>, StoreError> {
        Ok(self.links(tenant).await?.into_iter().find(|l| &l.id == link))
    }
    /// The links of a newsletter (R-F7). A tenant has few links, so this filters [`Links::links`].
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
}

/// A link's versioned state (mirror entries, recipient states, approvals) and the atomic commit of one
/// input's effects: what the engine, approval decisions and the scheduled run read and write.
#[async_trait]
pub trait SyncState: Send + Sync {
    /// A slice of a link's state. Expired items are left out (R-J6); for an e-mail whose recipient state
    /// expired, the R-J3 tombstone it left under a keyed hash stands in for it
    /// ([`TombstoneRecord::into_state`](optisync_domain::TombstoneRecord::into_state), no version).
    async fn load(&self, link: &Link, slice: &Slice) -> Result<LoadedView, StoreError>;
    /// Mirror entries of a link whose next transition is due on `date` (R-A9), up to `limit`.
    async fn due(&self, link: &Link, date: NaiveDate, limit: usize) -> Result<Vec<AssignmentId>, StoreError>;
    /// Writes a commit atomically, or nothing and [`StoreError::Conflict`]. A write expecting no item
    /// (`None`) also succeeds over an expired one. Every recipient state written with an expiry and a
    /// tombstone leaves a [`TombstoneRecord`](optisync_domain::TombstoneRecord) under a keyed hash of its
    /// e-mail (per tenant key) that does not expire (R-J3, R-J6).
    async fn commit(&self, tenant: &TenantId, commit: Commit) -> Result<(), StoreError>;
    /// The assignments a link holds (its mirror entries with a snapshot; deleted ones are left out) in id
    /// order, starting after the id `after` (`None`: from the first), up to `limit` (R-A10: a settings
    /// change re-plans every one of them).
    async fn assignments(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&AssignmentId>,
        limit: usize,
    ) -> Result<Vec<AssignmentId>, StoreError>;
    /// A link's recipient states in the order of their R-B2 keys, starting after the key `after` (`None`:
    /// from the first), up to `limit` (the scheduled run's sweep for members gone from the list); expired
    /// ones are left out.
    async fn recipients(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Email, RecipientState)>, StoreError>;
}

/// Leases: the engine serialises work on one recipient with them, the scheduled run keeps two runs of
/// one link from overlapping.
#[async_trait]
pub trait Leases: Send + Sync {
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
}

/// The tenant's OPTIGEM command feed (appended by commits) and the connector's results: read by the
/// connector API, the OPTIGEM intake, approval decisions and the scheduled run.
#[async_trait]
pub trait CommandFeed: Send + Sync {
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
    /// feed is a [`StoreError::Permanent`]; callers check with [`CommandFeed::command`] first. From the
    /// first result on, the command and its result are kept for the tenant's
    /// [`Retention::commands`](optisync_domain::Retention::commands), then forgotten (R-J6): the feed
    /// skips them, and [`CommandFeed::command`] and [`CommandFeed::command_result`] find nothing.
    async fn record_result(&self, tenant: &TenantId, id: &CommandId, result: &CommandResult) -> Result<(), StoreError>;
    /// The result recorded for a command, if any.
    async fn command_result(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<CommandResult>, StoreError>;
}

/// The scheduled run's own records: its checkpoint per link and the chunks of working data it keeps
/// between invocations (the reconciler and the dry run).
#[async_trait]
pub trait RunStore: Send + Sync {
    /// The run state of a link (the scheduled run's checkpoint and last result, as the reconciler encodes
    /// it) with its version.
    async fn run_state(&self, tenant: &TenantId, link: &LinkId) -> Result<Option<(String, u64)>, StoreError>;
    /// Saves a link's run state if its version is still `expected` (`None`: there is none yet), else
    /// [`StoreError::Conflict`] and nothing is written.
    async fn save_run_state(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        value: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError>;
    /// Stores chunk `index` of a run's working data under `run` (the e-mails a listing saw, deferred ends,
    /// a dry run's report), replacing a chunk written before at that index; the store forgets it after
    /// `expires_at`.
    async fn put_run_chunk(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        run: &str,
        index: u64,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// A run's chunks with an index above `after` (`None`: from the first), in index order, up to `limit`.
    async fn run_chunks(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        run: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError>;
}

/// A link's audit trail, written with each commit ([`Commit::audit`]) and read back for support.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// A link's audit trail, newest first, up to `limit` entries, without those expired at `now`.
    async fn audit(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}

/// The approval queue of a link (signups waiting for a decision), paged by the admin API and watched by
/// the scheduler; entries are written through [`SyncState::commit`].
#[async_trait]
pub trait ApprovalQueue: Send + Sync {
    /// A link's pending approval entries in queue order (oldest first, [`ApprovalEntry::queue_position`]),
    /// after the position `after` (`None`: from the first), up to `limit`.
    async fn pending_approvals(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ApprovalEntry>, StoreError>;
}

/// Erasure mode's side of the store (R-J2, R-J3): a recipient erased from a link leaves only the keyed
/// hash of its e-mail with its tombstone, per tenant (R-K1), so that stale OPTIGEM data does not
/// subscribe the address again. The store hashes with the tenant's own random key, the one the R-J6
/// tombstones use (`TENANT#{t} / EMAIL-HASH-KEY`, made on first use): one key per tenant, none in the
/// code, so the same address hashes differently in two tenants and a hash says nothing outside its
/// tenant.
#[async_trait]
pub trait Erasures: Send + Sync {
    /// Forgets the link's recipient state and approval entry of this e-mail and keeps the tombstone under
    /// the tenant and the e-mail's keyed hash (the later tombstone wins). Repeating it is harmless.
    async fn erase_recipient(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        email: &Email,
        tombstone: &Tombstone,
    ) -> Result<(), StoreError>;
    /// The tombstone kept under the tenant and the e-mail's keyed hash, if the address was erased.
    async fn erased(&self, tenant: &TenantId, email: &Email) -> Result<Option<Tombstone>, StoreError>;
}

/// Durable state, every capability at once: what the functions wire (`Arc<dyn StateStore>`) and every
/// store implements. A use case that needs less can ask for a single capability.
pub trait StateStore:
    Tenants + Links + SyncState + Leases + CommandFeed + RunStore + AuditLog + ApprovalQueue + Erasures + ErasureReports
{
}

impl<T> StateStore for T where
    T: Tenants
        + Links
        + SyncState
        + Leases
        + CommandFeed
        + RunStore
        + AuditLog
        + ApprovalQueue
        + Erasures
        + ErasureReports
{
}
