//! Retention in the file (R-J6): expiries dated by the store's clock and kept in their own tables
//! beside the records, expired records read as absent, [`EmbeddedStore::purge_expired`] removes them
//! (the local runner calls it on every scheduler tick), and the R-J3 tombstone of an expirable
//! recipient kept under a keyed hash of its e-mail, without the e-mail.

use crate::EmbeddedStore;
use crate::codec::{ItemHeader, decode, encode};
use crate::error::db_err;
use crate::tables::{
    CHUNKS, COMMAND_EXPIRY, COMMAND_IDS, FEED, HASH_KEYS, INBOX, INBOX_EXPIRY, ITEM_EXPIRY, ITEMS, LEASES, MIRROR,
    MIRROR_BY_EMAIL, RESULTS, TOMBSTONES,
};
use chrono::{DateTime, Utc};
use optisync_domain::{Email, EmailHasher, TombstoneRecord};
use optisync_ports::StoreError;
use redb::{ReadableTable, ReadableTableMetadata};
use std::borrow::Borrow;

/// Whether the expiry kept under `key` in `table` has passed (no expiry: kept).
pub(crate) fn expired<'a, K: redb::Key + 'static>(
    table: &impl ReadableTable<K, i64>,
    key: impl Borrow<K::SelfType<'a>>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    Ok(table.get(key).map_err(db_err)?.is_some_and(|at| at.value() <= now_ms))
}

/// The keyed hash of an e-mail in a tenant, with the tenant's key (`None`: the tenant has no key yet,
/// so no tombstone of it was ever kept).
pub(crate) fn email_hash(
    keys: &impl ReadableTable<&'static str, &'static [u8]>,
    tenant: &str,
    email: &Email,
) -> Result<Option<String>, StoreError> {
    Ok(keys.get(tenant).map_err(db_err)?.map(|key| EmailHasher::new(key.value().to_vec()).hash(email)))
}

/// The keyed hash of an e-mail in a tenant, making the tenant's key on first use.
pub(crate) fn email_hash_or_new_key(
    keys: &mut redb::Table<&'static str, &'static [u8]>,
    tenant: &str,
    email: &Email,
) -> Result<String, StoreError> {
    if let Some(hash) = email_hash(keys, tenant, email)? {
        return Ok(hash);
    }
    let key = rand::random::<[u8; 32]>();
    keys.insert(tenant, key.as_slice()).map_err(db_err)?;
    Ok(EmailHasher::new(key.to_vec()).hash(email))
}

/// The tombstone an expired recipient state of a link left, if any.
pub(crate) fn tombstone(
    txn: &redb::ReadTransaction,
    tenant: &str,
    scope: &str,
    email: &Email,
) -> Result<Option<TombstoneRecord>, StoreError> {
    let keys = txn.open_table(HASH_KEYS).map_err(db_err)?;
    let Some(hash) = email_hash(&keys, tenant, email)? else { return Ok(None) };
    let tombstones = txn.open_table(TOMBSTONES).map_err(db_err)?;
    match tombstones.get((scope, hash.as_str())).map_err(db_err)? {
        Some(bytes) => Ok(Some(decode("tombstone", bytes.value())?)),
        None => Ok(None),
    }
}

/// Keeps a tombstone under the keyed hash of its e-mail (in the commit's transaction).
pub(crate) fn keep_tombstone(
    txn: &redb::WriteTransaction,
    tenant: &str,
    scope: &str,
    email: &Email,
    record: &TombstoneRecord,
) -> Result<(), StoreError> {
    let mut keys = txn.open_table(HASH_KEYS).map_err(db_err)?;
    let hash = email_hash_or_new_key(&mut keys, tenant, email)?;
    let bytes = encode("tombstone", record)?;
    txn.open_table(TOMBSTONES).map_err(db_err)?.insert((scope, hash.as_str()), bytes.as_slice()).map_err(db_err)?;
    Ok(())
}

/// Epoch milliseconds.
pub(crate) fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

impl EmbeddedStore {
    /// The store's time: its clock's, else the system's.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.as_ref().map_or_else(Utc::now, |c| c.now())
    }

    /// Removes every record whose expiry has passed (R-J6), in one write transaction: state items
    /// (with their index entries), inbox entries, commands with their ids and results, run chunks, and
    /// leases a day after they ran out. Tombstones stay.
    /// Returns how many records went. The local runner calls it on every scheduler tick.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = ms(self.now());
        self.write(move |txn| {
            let mut gone = 0;
            let mut expiry = txn.open_table(ITEM_EXPIRY).map_err(db_err)?;
            let mut items = txn.open_table(ITEMS).map_err(db_err)?;
            let mut by_email = txn.open_table(MIRROR_BY_EMAIL).map_err(db_err)?;
            let due: Vec<(String, u8, String)> = expiry
                .iter()
                .map_err(db_err)?
                .filter_map(Result::ok)
                .filter(|(_, at)| at.value() <= now)
                .map(|(k, _)| {
                    let (scope, kind, key) = k.value();
                    (scope.to_owned(), kind, key.to_owned())
                })
                .collect();
            for (scope, kind, key) in &due {
                let k = (scope.as_str(), *kind, key.as_str());
                expiry.remove(k).map_err(db_err)?;
                let header: Option<ItemHeader> = match items.remove(k).map_err(db_err)? {
                    Some(bytes) => Some(decode("state item", bytes.value())?),
                    None => None,
                };
                if *kind == MIRROR
                    && let Some(email) = header.and_then(|h| h.email)
                {
                    by_email.remove((scope.as_str(), email.as_str(), key.as_str())).map_err(db_err)?;
                }
                gone += 1;
            }
            let mut expiry = txn.open_table(INBOX_EXPIRY).map_err(db_err)?;
            let mut inbox = txn.open_table(INBOX).map_err(db_err)?;
            for (tenant, key) in due_pairs(&expiry, now)? {
                expiry.remove((tenant.as_str(), key.as_str())).map_err(db_err)?;
                inbox.remove((tenant.as_str(), key.as_str())).map_err(db_err)?;
                gone += 1;
            }
            let mut expiry = txn.open_table(COMMAND_EXPIRY).map_err(db_err)?;
            let mut ids = txn.open_table(COMMAND_IDS).map_err(db_err)?;
            let mut results = txn.open_table(RESULTS).map_err(db_err)?;
            let mut feed = txn.open_table(FEED).map_err(db_err)?;
            for (tenant, id) in due_pairs(&expiry, now)? {
                let k = (tenant.as_str(), id.as_str());
                expiry.remove(k).map_err(db_err)?;
                results.remove(k).map_err(db_err)?;
                if let Some(seq) = ids.remove(k).map_err(db_err)? {
                    feed.remove((tenant.as_str(), seq.value())).map_err(db_err)?;
                }
                gone += 1;
            }
            // R-J2, R-J6: delivered deletion reports after the tenant's command retention.
            let mut expiry = txn.open_table(crate::tables::REPORT_EXPIRY).map_err(db_err)?;
            let mut reports = txn.open_table(crate::tables::REPORTS).map_err(db_err)?;
            for (tenant, id) in due_pairs(&expiry, now)? {
                expiry.remove((tenant.as_str(), id.as_str())).map_err(db_err)?;
                reports.remove((tenant.as_str(), id.as_str())).map_err(db_err)?;
                gone += 1;
            }
            // Run chunks (the app dates them: a listing's e-mail hashes, a dry run's report) and leases
            // a dead holder left (named by the recipient's e-mail) a day after they ran out, as the
            // table's TTL does in AWS.
            let mut chunks = txn.open_table(CHUNKS).map_err(db_err)?;
            let due: Vec<(String, String, u64)> = chunks
                .iter()
                .map_err(db_err)?
                .filter_map(Result::ok)
                .filter(|(_, v)| v.value().0.saturating_mul(1000) <= now)
                .map(|(k, _)| {
                    let (scope, run, index) = k.value();
                    (scope.to_owned(), run.to_owned(), index)
                })
                .collect();
            for (scope, run, index) in &due {
                chunks.remove((scope.as_str(), run.as_str(), *index)).map_err(db_err)?;
                gone += 1;
            }
            let mut leases = txn.open_table(LEASES).map_err(db_err)?;
            let mut stale = Vec::new();
            for row in leases.iter().map_err(db_err)? {
                let (name, value) = row.map_err(db_err)?;
                let lease: serde_json::Value = decode("lease", value.value())?;
                let until = lease.get("until").and_then(|u| u.as_str()).and_then(|u| u.parse::<DateTime<Utc>>().ok());
                if until.is_some_and(|u| ms(u + chrono::Duration::days(1)) <= now) {
                    stale.push(name.value().to_owned());
                }
            }
            for name in &stale {
                leases.remove(name.as_str()).map_err(db_err)?;
                gone += 1;
            }
            Ok(gone)
        })
        .await
    }

    /// How many records of each retention table the file holds (state items, inbox entries, commands
    /// with an expiry, tombstones), for the measurements in `docs/privacy.md`.
    pub async fn retention_counts(&self) -> Result<[u64; 4], StoreError> {
        self.read(|txn| {
            Ok([
                txn.open_table(ITEMS).map_err(db_err)?.len().map_err(db_err)?,
                txn.open_table(INBOX).map_err(db_err)?.len().map_err(db_err)?,
                txn.open_table(COMMAND_EXPIRY).map_err(db_err)?.len().map_err(db_err)?,
                txn.open_table(TOMBSTONES).map_err(db_err)?.len().map_err(db_err)?,
            ])
        })
        .await
    }
}

/// The (tenant, key) pairs of an expiry table whose time has come.
fn due_pairs(
    table: &impl ReadableTable<(&'static str, &'static str), i64>,
    now: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut due = Vec::new();
    for row in table.iter().map_err(db_err)? {
        let (k, at) = row.map_err(db_err)?;
        if at.value() <= now {
            let (a, b) = k.value();
            due.push((a.to_owned(), b.to_owned()));
        }
    }
    Ok(due)
}
