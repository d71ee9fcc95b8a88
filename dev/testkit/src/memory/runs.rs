//! Run states and run chunks in memory.

use super::MemoryStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{LinkId, TenantId};
use optisync_ports::*;

#[async_trait]
impl RunStore for MemoryStore {
    async fn run_state(&self, tenant: &TenantId, link: &LinkId) -> Result<Option<(String, u64)>, StoreError> {
        Ok(self.lock().runs.get(&(tenant.clone(), link.clone())).cloned())
    }

    async fn save_run_state(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        value: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = (tenant.clone(), link.clone());
        if inner.runs.get(&key).map(|(_, v)| *v) != expected {
            return Err(StoreError::Conflict);
        }
        inner.wrote(1);
        inner.runs.insert(key, (value.to_owned(), expected.unwrap_or(0) + 1));
        Ok(())
    }

    async fn put_run_chunk(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        run: &str,
        index: u64,
        value: &str,
        _expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.wrote(1);
        inner.chunks.insert((tenant.clone(), link.clone(), run.to_owned(), index), value.to_owned());
        Ok(())
    }

    async fn run_chunks(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        run: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let from = after.map_or(0, |a| a.saturating_add(1));
        if after == Some(u64::MAX) {
            return Ok(Vec::new());
        }
        let inner = self.lock();
        Ok(inner
            .chunks
            .range(
                (tenant.clone(), link.clone(), run.to_owned(), from)
                    ..=(tenant.clone(), link.clone(), run.to_owned(), u64::MAX),
            )
            .take(limit)
            .map(|((_, _, _, i), v)| (*i, v.clone()))
            .collect())
    }
}
