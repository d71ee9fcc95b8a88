//! The state store in one local file (redb), for the local runner: the same port and the same
//! behaviour as DynamoDB (the conformance suite runs against both), and it survives a restart.
//!
//! redb runs one write transaction at a time, so a commit checks every expected version and writes
//! everything inside one transaction: conditional and atomic like `TransactWriteItems`.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use optisync_domain::{
    ApprovalEntry, AssignmentId, Email, Link, LinkView, MirrorEntry, OptigemCommand, RecipientState, StateWrite,
    TenantId, TenantSettings,
};
use optisync_ports::{
    Claim, Commit, IdempotencyStore, ItemKey, LoadedView, SecretStore, Slice, StateStore, StoreError,
};
use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("optisync");

/// The embedded store.
pub struct EmbeddedStore {
    db: Database,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

fn fail(e: impl std::fmt::Display) -> StoreError {
    StoreError::Permanent(format!("embedded store: {e}"))
}

/// A stored state item: its version and value.
#[derive(Serialize, Deserialize)]
struct Versioned {
    ver: u64,
    value: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct Lease {
    owner: String,
    until: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    result: Option<String>,
    until: DateTime<Utc>,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(fail)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(fail)
}

fn item_key(key: &ItemKey) -> String {
    match key {
        ItemKey::Mirror(l, id) => format!("item/{l}/M/{id}"),
        ItemKey::Recipient(l, e) => format!("item/{l}/R/{e}"),
        ItemKey::Approval(l, e) => format!("item/{l}/A/{e}"),
    }
}

/// Every key that starts with `prefix`.
fn prefix_range(prefix: &str) -> (String, String) {
    (prefix.to_owned(), format!("{prefix}\u{10ffff}"))
}

impl EmbeddedStore {
    /// Opens (or creates) the store in a file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(fail)?;
        let txn = db.begin_write().map_err(fail)?;
        txn.open_table(TABLE).map_err(fail)?;
        txn.commit().map_err(fail)?;
        Ok(Self { db })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(fail)?;
        let table = txn.open_table(TABLE).map_err(fail)?;
        Ok(table.get(key).map_err(fail)?.map(|v| v.value().to_vec()))
    }

    fn scan(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(fail)?;
        let table = txn.open_table(TABLE).map_err(fail)?;
        let (from, to) = prefix_range(prefix);
        let mut out = Vec::new();
        for entry in table.range(from.as_str()..to.as_str()).map_err(fail)? {
            let (k, v) = entry.map_err(fail)?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Runs `f` in one write transaction and commits when it returns `Ok`.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(fail)?;
        let result = {
            let mut table = txn.open_table(TABLE).map_err(fail)?;
            f(&mut table)?
        };
        txn.commit().map_err(fail)?;
        Ok(result)
    }
}

fn read_in<T: DeserializeOwned>(table: &redb::Table<&str, &[u8]>, key: &str) -> Result<Option<T>, StoreError> {
    match table.get(key).map_err(fail)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

#[async_trait]
impl StateStore for EmbeddedStore {
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        self.get(&format!("tenant/{tenant}"))?.map_or(Ok(TenantSettings::default()), |b| decode(&b))
    }

    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let bytes = encode(link)?;
        self.write(|t| {
            t.insert(format!("link/{}/{}", link.tenant, link.id).as_str(), bytes.as_slice()).map_err(fail)?;
            Ok(())
        })
    }

    async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, StoreError> {
        self.scan(&format!("link/{tenant}/"))?.iter().map(|(_, v)| decode(v)).collect()
    }

    async fn load(&self, link: &Link, slice: &Slice) -> Result<LoadedView, StoreError> {
        let mut loaded = LoadedView { view: LinkView::new(link.clone()), versions: BTreeMap::new() };
        let emails: BTreeSet<&str> = slice.emails.iter().map(Email::key).collect();
        for (_, bytes) in self.scan(&format!("item/{}/M/", link.id))? {
            let stored: Versioned = decode(&bytes)?;
            let entry: MirrorEntry = serde_json::from_value(stored.value).map_err(fail)?;
            if slice.assignments.contains(&entry.id) || entry.email.as_ref().is_some_and(|e| emails.contains(e.key())) {
                loaded.versions.insert(ItemKey::Mirror(link.id.clone(), entry.id.clone()), stored.ver);
                loaded.view.mirror.insert(entry.id.clone(), entry);
            }
        }
        for email in &slice.emails {
            let key = ItemKey::Recipient(link.id.clone(), email.key().to_owned());
            if let Some(bytes) = self.get(&item_key(&key))? {
                let stored: Versioned = decode(&bytes)?;
                let (email, state): (Email, RecipientState) = serde_json::from_value(stored.value).map_err(fail)?;
                loaded.versions.insert(key, stored.ver);
                loaded.view.recipients.insert(email, state);
            }
            let key = ItemKey::Approval(link.id.clone(), email.key().to_owned());
            if let Some(bytes) = self.get(&item_key(&key))? {
                let stored: Versioned = decode(&bytes)?;
                let entry: ApprovalEntry = serde_json::from_value(stored.value).map_err(fail)?;
                loaded.versions.insert(key, stored.ver);
                loaded.view.approvals.insert(entry.email.clone(), entry);
            }
        }
        Ok(loaded)
    }

    async fn due(&self, link: &Link, date: NaiveDate, limit: usize) -> Result<Vec<AssignmentId>, StoreError> {
        let mut due = Vec::new();
        for (_, bytes) in self.scan(&format!("item/{}/M/", link.id))? {
            let stored: Versioned = decode(&bytes)?;
            let entry: MirrorEntry = serde_json::from_value(stored.value).map_err(fail)?;
            if entry.next_transition.is_some_and(|d| d <= date) {
                due.push(entry.id);
                if due.len() >= limit {
                    break;
                }
            }
        }
        Ok(due)
    }

    async fn commit(&self, tenant: &TenantId, commit: Commit) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        for (write, expected) in &commit.writes {
            let value = match write {
                StateWrite::Mirror { entry, .. } => serde_json::to_value(entry),
                StateWrite::Recipient { email, state, .. } => serde_json::to_value((email, state)),
                StateWrite::Approval { entry } => serde_json::to_value(entry),
            }
            .map_err(fail)?;
            writes.push((item_key(&ItemKey::of(write)), *expected, value));
        }
        let commands: Vec<(String, Vec<u8>)> =
            commit.commands.iter().map(|c| Ok((c.id().to_string(), encode(c)?))).collect::<Result<_, StoreError>>()?;
        self.write(|t| {
            for (key, expected, _) in &writes {
                let current = read_in::<Versioned>(t, key)?.map(|v| v.ver);
                if current != *expected {
                    return Err(StoreError::Conflict);
                }
            }
            for (key, expected, value) in writes {
                let stored = encode(&Versioned { ver: expected.unwrap_or(0) + 1, value })?;
                t.insert(key.as_str(), stored.as_slice()).map_err(fail)?;
            }
            let seq_key = format!("seq/{tenant}");
            let mut seq: u64 = read_in(t, &seq_key)?.unwrap_or(0);
            for (id, bytes) in commands {
                let marker = format!("cmdid/{tenant}/{id}");
                if t.get(marker.as_str()).map_err(fail)?.is_some() {
                    continue;
                }
                seq += 1;
                t.insert(marker.as_str(), encode(&seq)?.as_slice()).map_err(fail)?;
                t.insert(format!("feed/{tenant}/{seq:020}").as_str(), bytes.as_slice()).map_err(fail)?;
            }
            t.insert(seq_key.as_str(), encode(&seq)?.as_slice()).map_err(fail)?;
            Ok(())
        })
    }

    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let key = format!("lease/{name}");
        self.write(|t| {
            if let Some(held) = read_in::<Lease>(t, &key)?
                && held.owner != owner
                && held.until > now
            {
                return Ok(false);
            }
            t.insert(key.as_str(), encode(&Lease { owner: owner.to_owned(), until })?.as_slice()).map_err(fail)?;
            Ok(true)
        })
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let key = format!("lease/{name}");
        self.write(|t| {
            if read_in::<Lease>(t, &key)?.is_some_and(|held| held.owner == owner) {
                t.remove(key.as_str()).map_err(fail)?;
            }
            Ok(())
        })
    }

    async fn commands(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OptigemCommand)>, StoreError> {
        let txn = self.db.begin_read().map_err(fail)?;
        let table = txn.open_table(TABLE).map_err(fail)?;
        let from = format!("feed/{tenant}/{:020}", after.saturating_add(1));
        let (_, to) = prefix_range(&format!("feed/{tenant}/"));
        let mut out = Vec::new();
        for entry in table.range(from.as_str()..to.as_str()).map_err(fail)?.take(limit) {
            let (k, v) = entry.map_err(fail)?;
            let seq = k.value().rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or(0);
            out.push((seq, decode(v.value())?));
        }
        Ok(out)
    }
}

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        in_progress_until: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let k = format!("idem/{key}");
        self.write(|t| {
            if let Some(record) = read_in::<Record>(t, &k)?.filter(|r| r.until > now) {
                return Ok(if record.fingerprint != fingerprint {
                    Claim::Mismatch
                } else if let Some(result) = record.result {
                    Claim::Completed(result)
                } else {
                    Claim::InProgress
                });
            }
            let record = Record { fingerprint: fingerprint.to_owned(), result: None, until: in_progress_until };
            t.insert(k.as_str(), encode(&record)?.as_slice()).map_err(fail)?;
            Ok(Claim::Acquired)
        })
    }

    async fn complete(
        &self,
        key: &str,
        fingerprint: &str,
        result: &str,
        keep_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let record = Record { fingerprint: fingerprint.to_owned(), result: Some(result.to_owned()), until: keep_until };
        let bytes = encode(&record)?;
        self.write(|t| {
            t.insert(format!("idem/{key}").as_str(), bytes.as_slice()).map_err(fail)?;
            Ok(())
        })
    }

    async fn abandon(&self, key: &str) -> Result<(), StoreError> {
        self.write(|t| {
            t.remove(format!("idem/{key}").as_str()).map_err(fail)?;
            Ok(())
        })
    }
}

/// Locally, secrets (OAuth tokens, API keys) live in the same file; in AWS they go to Secrets Manager.
#[async_trait]
impl SecretStore for EmbeddedStore {
    async fn get(&self, name: &str) -> Result<Option<String>, StoreError> {
        EmbeddedStore::get(self, &format!("secret/{name}"))?.map(|b| decode(&b)).transpose()
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let bytes = encode(&value)?;
        self.write(|t| {
            t.insert(format!("secret/{name}").as_str(), bytes.as_slice()).map_err(fail)?;
            Ok(())
        })
    }
}
