//! In-memory implementations of the ports, for tests and for running the engine without AWS: the state
//! store (one module per capability), the ESP, the event bus, the clock, the secrets and the re-reader.

mod approvals;
mod audit;
mod bus;
mod clock;
mod commands;
mod erasures;
mod esp;
mod inbox;
mod leases;
mod links;
mod notifier;
mod reports;
mod retention;
mod runs;
mod secrets;
mod sync_state;
mod tenants;

pub use bus::MemoryBus;
pub use clock::FixedClock;
pub use esp::{MemoryContact, MemoryEsp, MemoryReader};
pub use notifier::MemoryNotifier;
pub use secrets::MemorySecrets;

use chrono::{DateTime, Utc};
use optisync_domain::{
    AccountRecord, ApprovalEntry, AssignmentId, AuditEntry, CommandResult, Email, Link, LinkId, MirrorEntry,
    OptigemCommand, Provider, RecipientState, TenantId, TenantSettings,
};
use optisync_ports::{InboxEntry, ItemKey, PendingAuthorisation, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

/// A state item as kept in memory.
#[derive(Debug, Clone)]
enum Item {
    Mirror(Box<MirrorEntry>),
    Recipient(Email, RecipientState),
    Approval(ApprovalEntry),
}

/// A deletion report in the outbox and when it expires (set once delivered, R-J6).
type KeptReport = (optisync_ports::ErasureReportRecord, Option<DateTime<Utc>>);

/// Everything a [`MemoryStore`] holds, behind one lock.
#[derive(Default)]
struct StoreInner {
    tenants: HashMap<TenantId, TenantSettings>,
    accounts: BTreeMap<(Provider, String), AccountRecord>,
    /// Pending OAuth authorisations by tenant and nonce hash (M4).
    authorisations: BTreeMap<(TenantId, String), PendingAuthorisation>,
    /// Everything of a link is keyed by tenant and link (R-K1).
    links: BTreeMap<(TenantId, LinkId), Link>,
    items: BTreeMap<(TenantId, ItemKey), (u64, Item)>,
    /// Mirror entries by link and e-mail key (as the table's index serves them).
    by_email: BTreeMap<(TenantId, LinkId, String), BTreeSet<AssignmentId>>,
    commands: HashMap<TenantId, Vec<(u64, OptigemCommand)>>,
    command_ids: BTreeSet<(TenantId, String)>,
    results: HashMap<(TenantId, String), CommandResult>,
    leases: HashMap<String, (String, DateTime<Utc>)>,
    inbox: BTreeMap<(TenantId, String), (InboxEntry, bool)>,
    audit: BTreeMap<(TenantId, LinkId), Vec<AuditEntry>>,
    runs: HashMap<(TenantId, LinkId), (String, u64)>,
    chunks: BTreeMap<(TenantId, LinkId, String, u64), String>,
    /// Erased recipients' tombstones by tenant and keyed hash (R-J2, R-J3).
    erased: BTreeMap<(TenantId, String), optisync_domain::Tombstone>,
    /// The deletion report outbox by tenant and report id (R-J2), with when each delivered one expires.
    reports: BTreeMap<(TenantId, String), KeptReport>,
    /// R-J6: when each expirable record is forgotten (kept apart from the records themselves).
    expiries: retention::Expiries,
    fail_next_put: Option<StoreError>,
    /// Commits left before one fails (fault injection).
    commits_before_failure: Option<u64>,
    writes: WriteCount,
}

/// Writes a store received, as a DynamoDB table would count them: one request per write call, and the
/// items it writes (a commit is one transaction of its state writes, audit entries, two items per new
/// command and the feed counter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCount {
    /// Write requests.
    pub requests: u64,
    /// Items written.
    pub items: u64,
}

impl StoreInner {
    fn wrote(&mut self, items: u64) {
        self.writes.requests += 1;
        self.writes.items += items;
    }
}

/// The state store in memory; conditional writes behave as in DynamoDB.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<StoreInner>,
    /// The clock expiries are dated and checked by (R-J6); the system clock when none is given.
    clock: Option<std::sync::Arc<dyn optisync_ports::Clock>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that dates and checks expiries (R-J6) by `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: std::sync::Arc<dyn optisync_ports::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Makes the next inbox `put` fail with this error (fault injection, e.g. throttling).
    pub fn fail_next_inbox_put(&self, error: StoreError) {
        self.lock().fail_next_put = Some(error);
    }

    /// Makes the commit after the next `n` fail as a lost connection would (fault injection: a process
    /// killed in the middle of a page).
    pub fn fail_commit_after(&self, n: u64) {
        self.lock().commits_before_failure = Some(n);
    }

    /// The writes received so far.
    pub fn writes(&self) -> WriteCount {
        self.lock().writes
    }

    /// Sets a tenant's settings.
    pub fn set_tenant(&self, tenant: TenantId, settings: TenantSettings) {
        self.inner.lock().expect("lock").tenants.insert(tenant, settings);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner.lock().expect("store lock")
    }
}
