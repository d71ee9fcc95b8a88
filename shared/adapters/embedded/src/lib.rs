//! The state store in one local file (redb), for the local runner: the same port and the same
//! behaviour as the in-memory store and DynamoDB (the conformance suite runs against all of them),
//! and everything survives a restart of the process.
//!
//! redb runs one write transaction at a time, so a commit checks every expected version and writes
//! everything inside one transaction: conditional and atomic like `TransactWriteItems`. redb is
//! synchronous, so every call runs on tokio's blocking pool and never stalls the async workers.
//!
//! Layout: one table per kind of record, with tuple keys so that one link's items (or one tenant's
//! links and feed) are a contiguous range whatever characters the ids contain (`tables`). Values are JSON
//! (`codec`). One module per capability implements its port trait.

mod approvals;
mod audit;
mod codec;
mod commands;
mod erasures;
mod error;
mod inbox;
mod leases;
mod links;
mod reports;
mod retention;
mod runs;
mod secrets;
mod sync_state;
mod tables;
mod tenants;

use crate::error::db_err;
use crate::tables::{
    ACCOUNTS, AUDIT, AUTHORISATIONS, CHUNKS, COMMAND_EXPIRY, COMMAND_IDS, FEED, FEED_SEQ, HASH_KEYS, INBOX,
    INBOX_EXPIRY, ITEM_EXPIRY, ITEMS, LEASES, LINKS, MIRROR_BY_EMAIL, RESULTS, RUNS, SECRETS, TENANTS, TOMBSTONES,
};
use optisync_ports::StoreError;
use redb::{Database, ReadableDatabase};
use std::path::Path;
use std::sync::Arc;

/// The embedded store: state, leases, the command feed, the inbox and local secrets in one
/// redb file, so the local runner keeps its state across restarts without AWS.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    /// The clock expiries are dated and checked by (R-J6); the system clock when none is given.
    clock: Option<Arc<dyn optisync_ports::Clock>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmbeddedStore")
    }
}

impl EmbeddedStore {
    /// Opens the store in a file, creating the file and its tables if they do not exist yet.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(db_err)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(ITEMS).map_err(db_err)?;
        txn.open_table(MIRROR_BY_EMAIL).map_err(db_err)?;
        txn.open_table(LINKS).map_err(db_err)?;
        txn.open_table(TENANTS).map_err(db_err)?;
        txn.open_table(ACCOUNTS).map_err(db_err)?;
        txn.open_table(AUTHORISATIONS).map_err(db_err)?;
        txn.open_table(FEED).map_err(db_err)?;
        txn.open_table(COMMAND_IDS).map_err(db_err)?;
        txn.open_table(RESULTS).map_err(db_err)?;
        txn.open_table(LEASES).map_err(db_err)?;
        txn.open_table(SECRETS).map_err(db_err)?;
        txn.open_table(INBOX).map_err(db_err)?;
        txn.open_table(AUDIT).map_err(db_err)?;
        txn.open_table(RUNS).map_err(db_err)?;
        txn.open_table(CHUNKS).map_err(db_err)?;
        txn.open_table(tables::ERASED).map_err(db_err)?;
        txn.open_table(ITEM_EXPIRY).map_err(db_err)?;
        txn.open_table(INBOX_EXPIRY).map_err(db_err)?;
        txn.open_table(COMMAND_EXPIRY).map_err(db_err)?;
        txn.open_table(TOMBSTONES).map_err(db_err)?;
        txn.open_table(HASH_KEYS).map_err(db_err)?;
        txn.open_table(FEED_SEQ).map_err(db_err)?;
        txn.open_table(tables::REPORTS).map_err(db_err)?;
        txn.open_table(tables::REPORT_EXPIRY).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(Self { db: Arc::new(db), clock: None })
    }

    /// A store that dates and checks expiries (R-J6) by `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn optisync_ports::Clock>) -> Self {
        self.clock = Some(clock);
        self
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
