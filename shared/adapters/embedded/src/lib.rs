//! The state store in one local file (redb), for the local runner: the same port and the same
//! behaviour as the in-memory store and DynamoDB (the conformance suite runs against all of them),
//! and everything survives a restart of the process.
//!
//! redb runs one write transaction at a time, so a commit checks every expected version and writes
//! everything inside one transaction: conditional and atomic like `TransactWriteItems`. redb is
//! synchronous, so every call runs on tokio's blocking pool and never stalls the async workers.
//!
//! Layout: one table per kind of record, with tuple keys so that one link's items (or one tenant's
//! links and feed) are a contiguous range whatever characters the ids contain. Values are JSON.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use optisync_domain::{
    AccountRecord, ApprovalEntry, AssignmentId, AuditEntry, CommandId, CommandResult, Email, EspAccount, Link, LinkId,
    LinkView, MirrorEntry, OptigemCommand, RecipientState, StateWrite, TenantId, TenantSettings,
};
use optisync_ports::{
    ApprovalQueue, AuditLog, CommandFeed, Commit, Inbox, InboxEntry, InboxPut, ItemKey, Leases, Links, LoadedView,
    RunStore, SecretStore, Slice, StoreError, SyncState, Tenants,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// State items: (link, kind, assignment id or R-B2 e-mail key) → versioned JSON.
const ITEMS: TableDefinition<(&str, u8, &str), &[u8]> = TableDefinition::new("items");
/// Index of mirror entries by the e-mail they use: (link, e-mail key, assignment id) → ().
const MIRROR_BY_EMAIL: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("mirror_by_email");
/// Links: (tenant, link id) → JSON.
const LINKS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("links");
/// The tenant a link id is stored under, so a link that changes tenant is not listed twice.
const LINK_TENANT: TableDefinition<&str, &str> = TableDefinition::new("link_tenant");
/// Tenant settings: tenant → JSON.
const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// ESP accounts: (provider, account id) → JSON (the record names its tenant).
const ACCOUNTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("accounts");
/// The command feed: (tenant, sequence number) → JSON.
const FEED: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("feed");
/// Command ids already in a tenant's feed: (tenant, command id) → sequence number.
const COMMAND_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("command_ids");
/// Leases: name → JSON (owner, expiry).
/// (tenant, command id) → the connector's result, JSON.
const RESULTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("results");
/// (link, committed at in epoch ms, sequence within that millisecond) → audit entry (JSON).
const AUDIT: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("audit");
/// link → (version, run state).
const RUNS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("runs");
/// (link, run, index) → (expires at in epoch seconds, chunk): a run's working data.
const CHUNKS: TableDefinition<(&str, &str, u64), (i64, &str)> = TableDefinition::new("run_chunks");
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
/// Local secrets: name → value.
const SECRETS: TableDefinition<&str, &str> = TableDefinition::new("secrets");
/// The inbox: (tenant, key) → JSON (the entry and whether it was processed).
const INBOX: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("inbox");

const MIRROR: u8 = 0;
const RECIPIENT: u8 = 1;
const APPROVAL: u8 = 2;

/// The embedded store: state, leases, the command feed, the inbox and local secrets in one
/// redb file, so the local runner keeps its state across restarts without AWS.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

/// Maps a redb error to the port's error. Lock and I/O conditions are worth a retry; the rest is not.
/// Messages name the condition only, never a key or a value (R-J5).
fn db_err(e: impl Into<redb::Error>) -> StoreError {
    let transient = |m: String| StoreError::Transient(format!("embedded store: {m}"));
    let permanent = |m: String| StoreError::Permanent(format!("embedded store: {m}"));
    match e.into() {
        redb::Error::Io(io) => transient(format!("I/O failure ({:?})", io.kind())),
        redb::Error::DatabaseAlreadyOpen => transient("the file is open in another store or process".into()),
        redb::Error::TransactionInProgress | redb::Error::WouldBlock | redb::Error::ReadTransactionStillInUse(_) => {
            transient("another transaction is in progress".into())
        }
        redb::Error::Corrupted(_) => permanent("the file is corrupted".into()),
        redb::Error::UpgradeRequired(format) => {
            permanent(format!("the file has the old format {format} and must be upgraded"))
        }
        redb::Error::ValueTooLarge(len) => permanent(format!("a value of {len} bytes is too large")),
        other => permanent(other.to_string()),
    }
}

/// A JSON error without its text: serde messages can quote the offending value.
fn json_err(what: &str, e: &serde_json::Error) -> StoreError {
    StoreError::Permanent(format!(
        "embedded store: a {what} does not (de)serialise ({:?} error at line {}, column {})",
        e.classify(),
        e.line(),
        e.column()
    ))
}

fn encode<T: Serialize + ?Sized>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| json_err(what, &e))
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| json_err(what, &e))
}

/// A state item as written: its version, the e-mail key a mirror entry is indexed under, the value.
#[derive(Serialize)]
struct PutItem<'a, T: Serialize> {
    version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    value: T,
}

/// A state item as read.
#[derive(Deserialize)]
struct GotItem<T> {
    version: u64,
    value: T,
}

/// The part of a state item a commit needs: the version to check and the index entry to drop.
#[derive(Deserialize)]
struct ItemHeader {
    version: u64,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Lease {
    owner: String,
    until: DateTime<Utc>,
}

/// The table key of an item key.
fn item_key(key: &ItemKey) -> (&str, u8, &str) {
    match key {
        ItemKey::Mirror(l, id) => (l.as_str(), MIRROR, id.as_str()),
        ItemKey::Recipient(l, e) => (l.as_str(), RECIPIENT, e.as_str()),
        ItemKey::Approval(l, e) => (l.as_str(), APPROVAL, e.as_str()),
    }
}

/// The smallest string after every string that equals `s` (for ranges over one tuple element).
fn successor(s: &str) -> String {
    format!("{s}\0")
}

/// One state write, encoded outside the transaction.
struct EncodedWrite {
    key: ItemKey,
    expected: Option<u64>,
    /// For mirror entries: the e-mail key it uses (the index entry).
    email: Option<String>,
    value: serde_json::Value,
}

impl EmbeddedStore {
    /// Opens the store in a file, creating the file and its tables if they do not exist yet.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(ITEMS).map_err(db_err)?;
        txn.open_table(MIRROR_BY_EMAIL).map_err(db_err)?;
        txn.open_table(LINKS).map_err(db_err)?;
        txn.open_table(LINK_TENANT).map_err(db_err)?;
        txn.open_table(TENANTS).map_err(db_err)?;
        txn.open_table(ACCOUNTS).map_err(db_err)?;
        txn.open_table(FEED).map_err(db_err)?;
        txn.open_table(COMMAND_IDS).map_err(db_err)?;
        txn.open_table(RESULTS).map_err(db_err)?;
        txn.open_table(LEASES).map_err(db_err)?;
        txn.open_table(SECRETS).map_err(db_err)?;
        txn.open_table(INBOX).map_err(db_err)?;
        txn.open_table(AUDIT).map_err(db_err)?;
        txn.open_table(RUNS).map_err(db_err)?;
        txn.open_table(CHUNKS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs blocking redb work on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(|e| {
            if e.is_cancelled() {
                StoreError::Transient("embedded store: the store task was cancelled".into())
            } else {
                StoreError::Permanent("embedded store: the store task panicked".into())
            }
        })?
    }

    /// Runs `f` in one read transaction (one consistent snapshot).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.blocking(move |db| f(&db.begin_read().map_err(db_err)?)).await
    }

    /// Runs `f` in one write transaction and commits when it returns `Ok`; on `Err` nothing is written.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(db_err)?;
            let result = f(&txn)?;
            txn.commit().map_err(db_err)?;
            Ok(result)
        })
        .await
    }
}

/// Reads one state item with its version.
fn get_item<T: DeserializeOwned>(
    table: &impl ReadableTable<(&'static str, u8, &'static str), &'static [u8]>,
    key: (&str, u8, &str),
    what: &str,
) -> Result<Option<GotItem<T>>, StoreError> {
    match table.get(key).map_err(db_err)? {
        Some(bytes) => Ok(Some(decode(what, bytes.value())?)),
        None => Ok(None),
    }
}

fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
    what: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key).map_err(db_err)? {
        Some(bytes) => Ok(Some(decode(what, bytes.value())?)),
        None => Ok(None),
    }
}

#[async_trait]
impl Tenants for EmbeddedStore {
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |txn| {
            let table = txn.open_table(TENANTS).map_err(db_err)?;
            Ok(get_json(&table, &tenant, "tenant's settings")?.unwrap_or_default())
        })
        .await
    }

    async fn put_tenant_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<(), StoreError> {
        let bytes = encode("tenant's settings", settings)?;
        let tenant = tenant.to_string();
        self.write(move |txn| {
            txn.open_table(TENANTS).map_err(db_err)?.insert(tenant.as_str(), bytes.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |txn| {
            let table = txn.open_table(ACCOUNTS).map_err(db_err)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(db_err)? {
                let (_, bytes) = row.map_err(db_err)?;
                let record: AccountRecord = decode("account", bytes.value())?;
                if record.tenant == tenant {
                    out.push(record);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn account(&self, esp: &EspAccount) -> Result<Option<AccountRecord>, StoreError> {
        let esp = esp.clone();
        self.read(move |txn| {
            let table = txn.open_table(ACCOUNTS).map_err(db_err)?;
            match table.get((esp.provider.as_str(), esp.account.as_str())).map_err(db_err)? {
                Some(bytes) => Ok(Some(decode("account", bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn put_account(&self, record: &AccountRecord) -> Result<(), StoreError> {
        let bytes = encode("account", record)?;
        let record = record.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(ACCOUNTS).map_err(db_err)?;
            let key = (record.esp.provider.as_str(), record.esp.account.as_str());
            let held: Option<AccountRecord> = match table.get(key).map_err(db_err)? {
                Some(bytes) => Some(decode("account", bytes.value())?),
                None => None,
            };
            if held.is_some_and(|held| held.tenant != record.tenant) {
                return Err(StoreError::Conflict);
            }
            table.insert(key, bytes.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Links for EmbeddedStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let bytes = encode("link", link)?;
        let (tenant, id) = (link.tenant.to_string(), link.id.to_string());
        self.write(move |txn| {
            let mut owners = txn.open_table(LINK_TENANT).map_err(db_err)?;
            let mut links = txn.open_table(LINKS).map_err(db_err)?;
            let previous = owners.insert(id.as_str(), tenant.as_str()).map_err(db_err)?.map(|t| t.value().to_owned());
            if let Some(previous) = previous.filter(|p| p != &tenant) {
                links.remove((previous.as_str(), id.as_str())).map_err(db_err)?;
            }
            links.insert((tenant.as_str(), id.as_str()), bytes.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |txn| {
            let table = txn.open_table(LINKS).map_err(db_err)?;
            let upper = successor(&tenant);
            let mut links = Vec::new();
            for entry in table.range((tenant.as_str(), "")..(upper.as_str(), "")).map_err(db_err)? {
                let (_, bytes) = entry.map_err(db_err)?;
                links.push(decode("link", bytes.value())?);
            }
            Ok(links)
        })
        .await
    }

    async fn all_links(&self) -> Result<Vec<Link>, StoreError> {
        self.read(move |txn| {
            let table = txn.open_table(LINKS).map_err(db_err)?;
            let mut links = Vec::new();
            for entry in table.iter().map_err(db_err)? {
                let (_, bytes) = entry.map_err(db_err)?;
                links.push(decode("link", bytes.value())?);
            }
            Ok(links)
        })
        .await
    }
}

#[async_trait]
impl SyncState for EmbeddedStore {
    async fn load(&self, link: &Link, slice: &Slice) -> Result<LoadedView, StoreError> {
        let (link, slice) = (link.clone(), slice.clone());
        self.read(move |txn| {
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let by_email = txn.open_table(MIRROR_BY_EMAIL).map_err(db_err)?;
            let l = link.id.as_str();
            let mut ids: BTreeSet<String> = slice.assignments.iter().map(|a| a.as_str().to_owned()).collect();
            let keys: BTreeSet<&str> = slice.emails.iter().map(Email::key).collect();
            for key in &keys {
                let upper = successor(key);
                for entry in by_email.range((l, *key, "")..(l, upper.as_str(), "")).map_err(db_err)? {
                    let (k, _) = entry.map_err(db_err)?;
                    ids.insert(k.value().2.to_owned());
                }
            }
            let mut loaded = LoadedView { view: LinkView::new(link.clone()), versions: BTreeMap::new() };
            for id in &ids {
                if let Some(got) = get_item::<MirrorEntry>(&items, (l, MIRROR, id), "mirror entry")? {
                    loaded.versions.insert(ItemKey::Mirror(link.id.clone(), got.value.id.clone()), got.version);
                    loaded.view.mirror.insert(got.value.id.clone(), got.value);
                }
            }
            for key in &keys {
                let recipient = get_item::<(Email, RecipientState)>(&items, (l, RECIPIENT, key), "recipient state")?;
                if let Some(GotItem { version, value: (email, state) }) = recipient {
                    loaded.versions.insert(ItemKey::Recipient(link.id.clone(), (*key).to_owned()), version);
                    loaded.view.recipients.insert(email, state);
                }
                if let Some(got) = get_item::<ApprovalEntry>(&items, (l, APPROVAL, key), "approval entry")? {
                    loaded.versions.insert(ItemKey::Approval(link.id.clone(), (*key).to_owned()), got.version);
                    loaded.view.approvals.insert(got.value.email.clone(), got.value);
                }
            }
            Ok(loaded)
        })
        .await
    }

    async fn due(&self, link: &Link, date: NaiveDate, limit: usize) -> Result<Vec<AssignmentId>, StoreError> {
        let link = link.id.to_string();
        self.read(move |txn| {
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let mut due = Vec::new();
            let range = (link.as_str(), MIRROR, "")..(link.as_str(), MIRROR + 1, "");
            for entry in items.range(range).map_err(db_err)? {
                if due.len() >= limit {
                    break;
                }
                let (_, bytes) = entry.map_err(db_err)?;
                let got: GotItem<MirrorEntry> = decode("mirror entry", bytes.value())?;
                if got.value.next_transition.is_some_and(|d| d <= date) {
                    due.push(got.value.id);
                }
            }
            Ok(due)
        })
        .await
    }

    async fn commit(&self, tenant: &TenantId, commit: Commit) -> Result<(), StoreError> {
        let mut writes = Vec::with_capacity(commit.writes.len());
        for (write, expected) in &commit.writes {
            let (email, value) = match write {
                StateWrite::Mirror { entry, .. } => {
                    (entry.email.as_ref().map(|e| e.key().to_owned()), serde_json::to_value(entry))
                }
                StateWrite::Recipient { email, state, .. } => (None, serde_json::to_value((email, state))),
                StateWrite::Approval { entry } => (None, serde_json::to_value(entry)),
            };
            let value = value.map_err(|e| json_err("state item", &e))?;
            writes.push(EncodedWrite { key: ItemKey::of(write), expected: *expected, email, value });
        }
        let commands = commit
            .commands
            .iter()
            .map(|c| Ok((c.id().to_string(), encode("command", c)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let audit = commit
            .audit
            .iter()
            .map(|e| Ok((e.link.to_string(), epoch_ms(e.at), encode("audit entry", e)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let tenant = tenant.to_string();
        self.write(move |txn| {
            let mut trail = txn.open_table(AUDIT).map_err(db_err)?;
            for (link, at, bytes) in &audit {
                let last = match trail
                    .range((link.as_str(), *at, 0)..=(link.as_str(), *at, u64::MAX))
                    .map_err(db_err)?
                    .next_back()
                {
                    Some(last) => Some(last.map_err(db_err)?.0.value().2),
                    None => None,
                };
                let seq = last.map_or(0, |s| s + 1);
                trail.insert((link.as_str(), *at, seq), bytes.as_slice()).map_err(db_err)?;
            }
            let mut items = txn.open_table(ITEMS).map_err(db_err)?;
            let mut by_email = txn.open_table(MIRROR_BY_EMAIL).map_err(db_err)?;
            // Every expected version is checked against the state before the commit, then all is written.
            let mut previous = Vec::with_capacity(writes.len());
            for w in &writes {
                let header: Option<ItemHeader> = match items.get(item_key(&w.key)).map_err(db_err)? {
                    Some(bytes) => Some(decode("state item", bytes.value())?),
                    None => None,
                };
                if header.as_ref().map(|h| h.version) != w.expected {
                    return Err(StoreError::Conflict);
                }
                previous.push(header.and_then(|h| h.email));
            }
            for (w, old_email) in writes.iter().zip(previous) {
                let key = item_key(&w.key);
                let item = PutItem { version: w.expected.unwrap_or(0) + 1, email: w.email.as_deref(), value: &w.value };
                items.insert(key, encode("state item", &item)?.as_slice()).map_err(db_err)?;
                if let ItemKey::Mirror(link, id) = &w.key {
                    if let Some(old) = old_email {
                        by_email.remove((link.as_str(), old.as_str(), id.as_str())).map_err(db_err)?;
                    }
                    if let Some(new) = &w.email {
                        by_email.insert((link.as_str(), new.as_str(), id.as_str()), ()).map_err(db_err)?;
                    }
                }
            }
            let mut feed = txn.open_table(FEED).map_err(db_err)?;
            let mut ids = txn.open_table(COMMAND_IDS).map_err(db_err)?;
            let mut seq =
                match feed.range((tenant.as_str(), 0)..=(tenant.as_str(), u64::MAX)).map_err(db_err)?.next_back() {
                    Some(last) => last.map_err(db_err)?.0.value().1,
                    None => 0,
                };
            for (id, bytes) in &commands {
                if ids.get((tenant.as_str(), id.as_str())).map_err(db_err)?.is_some() {
                    continue;
                }
                seq += 1;
                ids.insert((tenant.as_str(), id.as_str()), seq).map_err(db_err)?;
                feed.insert((tenant.as_str(), seq), bytes.as_slice()).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn recipients(
        &self,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Email, RecipientState)>, StoreError> {
        let (link, after) = (link.to_string(), after.map(str::to_owned));
        self.read(move |txn| {
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let l = link.as_str();
            let from = after.as_deref().unwrap_or("");
            let mut out = Vec::new();
            for row in items.range((l, RECIPIENT, from)..(l, RECIPIENT + 1, "")).map_err(db_err)? {
                if out.len() >= limit {
                    break;
                }
                let (key, value) = row.map_err(db_err)?;
                if after.as_deref().is_some_and(|a| key.value().2 <= a) {
                    continue;
                }
                let got: GotItem<(Email, RecipientState)> = decode("recipient state", value.value())?;
                out.push(got.value);
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl Leases for EmbeddedStore {
    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.write(move |txn| {
            let mut leases = txn.open_table(LEASES).map_err(db_err)?;
            if let Some(held) = get_json::<Lease>(&leases, &name, "lease")?
                && held.owner != owner
                && held.until > now
            {
                return Ok(false);
            }
            leases.insert(name.as_str(), encode("lease", &Lease { owner, until })?.as_slice()).map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.write(move |txn| {
            let mut leases = txn.open_table(LEASES).map_err(db_err)?;
            if get_json::<Lease>(&leases, &name, "lease")?.is_some_and(|held| held.owner == owner) {
                leases.remove(name.as_str()).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl CommandFeed for EmbeddedStore {
    async fn commands(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OptigemCommand)>, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let tenant = tenant.to_string();
        self.read(move |txn| {
            let feed = txn.open_table(FEED).map_err(db_err)?;
            let mut out = Vec::new();
            for entry in feed.range((tenant.as_str(), first)..=(tenant.as_str(), u64::MAX)).map_err(db_err)?.take(limit)
            {
                let (key, bytes) = entry.map_err(db_err)?;
                out.push((key.value().1, decode("command", bytes.value())?));
            }
            Ok(out)
        })
        .await
    }

    async fn command(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<(u64, OptigemCommand)>, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |txn| {
            let Some(seq) =
                txn.open_table(COMMAND_IDS).map_err(db_err)?.get((tenant.as_str(), id.as_str())).map_err(db_err)?
            else {
                return Ok(None);
            };
            let seq = seq.value();
            let feed = txn.open_table(FEED).map_err(db_err)?;
            let Some(bytes) = feed.get((tenant.as_str(), seq)).map_err(db_err)? else { return Ok(None) };
            Ok(Some((seq, decode("command", bytes.value())?)))
        })
        .await
    }

    async fn record_result(&self, tenant: &TenantId, id: &CommandId, result: &CommandResult) -> Result<(), StoreError> {
        let bytes = encode("command result", result)?;
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.write(move |txn| {
            let key = (tenant.as_str(), id.as_str());
            if txn.open_table(COMMAND_IDS).map_err(db_err)?.get(key).map_err(db_err)?.is_none() {
                return Err(StoreError::Permanent("no such command".into()));
            }
            let mut results = txn.open_table(RESULTS).map_err(db_err)?;
            let recorded_done = match results.get(key).map_err(db_err)? {
                Some(bytes) => decode::<CommandResult>("command result", bytes.value())?.is_done(),
                None => false,
            };
            if !recorded_done {
                results.insert(key, bytes.as_slice()).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn command_result(&self, tenant: &TenantId, id: &CommandId) -> Result<Option<CommandResult>, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |txn| {
            let results = txn.open_table(RESULTS).map_err(db_err)?;
            match results.get((tenant.as_str(), id.as_str())).map_err(db_err)? {
                Some(bytes) => Ok(Some(decode("command result", bytes.value())?)),
                None => Ok(None),
            }
        })
        .await
    }
}

#[async_trait]
impl RunStore for EmbeddedStore {
    async fn run_state(&self, link: &LinkId) -> Result<Option<(String, u64)>, StoreError> {
        let link = link.to_string();
        self.read(move |txn| {
            let runs = txn.open_table(RUNS).map_err(db_err)?;
            Ok(runs.get(link.as_str()).map_err(db_err)?.map(|row| {
                let (version, value) = row.value();
                (value.to_owned(), version)
            }))
        })
        .await
    }

    async fn save_run_state(&self, link: &LinkId, value: &str, expected: Option<u64>) -> Result<(), StoreError> {
        let (link, value) = (link.to_string(), value.to_owned());
        self.write(move |txn| {
            let mut runs = txn.open_table(RUNS).map_err(db_err)?;
            let current = runs.get(link.as_str()).map_err(db_err)?.map(|row| row.value().0);
            if current != expected {
                return Err(StoreError::Conflict);
            }
            runs.insert(link.as_str(), (expected.unwrap_or(0) + 1, value.as_str())).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn put_run_chunk(
        &self,
        link: &LinkId,
        run: &str,
        index: u64,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (link, run, value) = (link.to_string(), run.to_owned(), value.to_owned());
        self.write(move |txn| {
            let mut chunks = txn.open_table(CHUNKS).map_err(db_err)?;
            chunks
                .insert((link.as_str(), run.as_str(), index), (expires_at.timestamp(), value.as_str()))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn run_chunks(
        &self,
        link: &LinkId,
        run: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let Some(from) = after.map_or(Some(0), |a| a.checked_add(1)) else { return Ok(Vec::new()) };
        let (link, run) = (link.to_string(), run.to_owned());
        self.read(move |txn| {
            let chunks = txn.open_table(CHUNKS).map_err(db_err)?;
            let (l, r) = (link.as_str(), run.as_str());
            let mut out = Vec::new();
            for row in chunks.range((l, r, from)..=(l, r, u64::MAX)).map_err(db_err)? {
                if out.len() >= limit {
                    break;
                }
                let (key, value) = row.map_err(db_err)?;
                out.push((key.value().2, value.value().1.to_owned()));
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl AuditLog for EmbeddedStore {
    async fn audit(&self, link: &LinkId, now: DateTime<Utc>, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let link = link.to_string();
        self.read(move |txn| {
            let trail = txn.open_table(AUDIT).map_err(db_err)?;
            let mut out = Vec::new();
            for row in trail.range((link.as_str(), 0, 0)..=(link.as_str(), u64::MAX, u64::MAX)).map_err(db_err)?.rev() {
                if out.len() >= limit {
                    break;
                }
                let entry: AuditEntry = decode("audit entry", row.map_err(db_err)?.1.value())?;
                if entry.expires_at() > now {
                    out.push(entry);
                }
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl ApprovalQueue for EmbeddedStore {
    async fn pending_approvals(
        &self,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ApprovalEntry>, StoreError> {
        let (link, after) = (link.to_string(), after.map(str::to_owned));
        self.read(move |txn| {
            let items = txn.open_table(ITEMS).map_err(db_err)?;
            let l = link.as_str();
            let mut entries = Vec::new();
            for row in items.range((l, APPROVAL, "")..(l, APPROVAL + 1, "")).map_err(db_err)? {
                let (_, value) = row.map_err(db_err)?;
                let got: GotItem<ApprovalEntry> = decode("approval entry", value.value())?;
                entries.push(got.value);
            }
            Ok(optisync_ports::queue_page(entries, after.as_deref(), limit))
        })
        .await
    }
}

/// Milliseconds since the epoch (0 before it), the order of the audit trail.
fn epoch_ms(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

/// Locally, secrets (OAuth tokens, API keys) live in the same file; in AWS they go to Secrets Manager.
#[async_trait]
impl SecretStore for EmbeddedStore {
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let name = name.to_owned();
        self.read(move |txn| {
            let secrets = txn.open_table(SECRETS).map_err(db_err)?;
            Ok(secrets.get(name.as_str()).map_err(db_err)?.map(|v| v.value().to_owned()))
        })
        .await
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.write(move |txn| {
            txn.open_table(SECRETS).map_err(db_err)?.insert(name.as_str(), value.as_str()).map_err(db_err)?;
            Ok(())
        })
        .await
    }
}

/// An inbox entry as stored: the entry and whether the worker has applied it.
type StoredInbox = (InboxEntry, bool);

#[async_trait]
impl Inbox for EmbeddedStore {
    async fn put(&self, entry: &InboxEntry) -> Result<InboxPut, StoreError> {
        let bytes = encode("inbox entry", &(entry, false))?;
        let (tenant, key, fingerprint) = (entry.tenant.to_string(), entry.key.clone(), entry.fingerprint.clone());
        self.write(move |txn| {
            let mut inbox = txn.open_table(INBOX).map_err(db_err)?;
            let key = (tenant.as_str(), key.as_str());
            let existing = match inbox.get(key).map_err(db_err)? {
                Some(v) => Some(decode::<StoredInbox>("inbox entry", v.value())?),
                None => None,
            };
            Ok(match existing {
                Some((e, _)) if e.fingerprint == fingerprint => InboxPut::Duplicate,
                Some(_) => InboxPut::Mismatch,
                None => {
                    inbox.insert(key, bytes.as_slice()).map_err(db_err)?;
                    InboxPut::Stored
                }
            })
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<InboxEntry>, StoreError> {
        let (tenant, key) = (tenant.to_string(), key.to_owned());
        self.read(move |txn| {
            let inbox = txn.open_table(INBOX).map_err(db_err)?;
            match inbox.get((tenant.as_str(), key.as_str())).map_err(db_err)? {
                Some(v) => Ok(Some(decode::<StoredInbox>("inbox entry", v.value())?.0)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn mark_done(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let (tenant, key) = (tenant.to_string(), key.to_owned());
        self.write(move |txn| {
            let mut inbox = txn.open_table(INBOX).map_err(db_err)?;
            let found = match inbox.get((tenant.as_str(), key.as_str())).map_err(db_err)? {
                Some(v) => Some(decode::<StoredInbox>("inbox entry", v.value())?),
                None => None,
            };
            if let Some((entry, _)) = found {
                let bytes = encode("inbox entry", &(entry, true))?;
                inbox.insert((tenant.as_str(), key.as_str()), bytes.as_slice()).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, String)>, StoreError> {
        self.read(move |txn| {
            let inbox = txn.open_table(INBOX).map_err(db_err)?;
            let mut waiting = Vec::new();
            for row in inbox.iter().map_err(db_err)? {
                let (_, v) = row.map_err(db_err)?;
                let (entry, done): StoredInbox = decode("inbox entry", v.value())?;
                if !done && entry.received_at < before {
                    waiting.push((entry.received_at, entry.tenant, entry.key));
                }
            }
            waiting.sort();
            Ok(waiting.into_iter().take(limit).map(|(_, t, k)| (t, k)).collect())
        })
        .await
    }
}
