//! The scheduled run's state per link and its chunks of working data.

use crate::EmbeddedStore;
use crate::error::db_err;
use crate::tables::{CHUNKS, RUNS};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{LinkId, TenantId};
use optisync_ports::{RunStore, StoreError};
use redb::ReadableTable;

#[async_trait]
impl RunStore for EmbeddedStore {
    async fn run_state(&self, tenant: &TenantId, link: &LinkId) -> Result<Option<(String, u64)>, StoreError> {
        let link = crate::tables::scope(tenant, link);
        self.read(move |txn| {
            let runs = txn.open_table(RUNS).map_err(db_err)?;
            Ok(runs.get(link.as_str()).map_err(db_err)?.map(|row| {
                let (version, value) = row.value();
                (value.to_owned(), version)
            }))
        })
        .await
    }

    async fn save_run_state(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        value: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        let (link, value) = (crate::tables::scope(tenant, link), value.to_owned());
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
        tenant: &TenantId,
        link: &LinkId,
        run: &str,
        index: u64,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (link, run, value) = (crate::tables::scope(tenant, link), run.to_owned(), value.to_owned());
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
        tenant: &TenantId,
        link: &LinkId,
        run: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let Some(from) = after.map_or(Some(0), |a| a.checked_add(1)) else { return Ok(Vec::new()) };
        let (link, run) = (crate::tables::scope(tenant, link), run.to_owned());
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
