//! The inbox in memory.

use super::MemoryStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::TenantId;
use optisync_ports::*;

#[async_trait]
impl Inbox for MemoryStore {
    async fn put(&self, entry: &InboxEntry) -> Result<InboxPut, StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        if let Some(error) = inner.fail_next_put.take() {
            return Err(error);
        }
        let key = (entry.tenant.clone(), entry.key.clone());
        // R-J6: an expired entry counts as absent.
        if inner.inbox_expired(&entry.tenant, &entry.key, now) {
            inner.inbox.remove(&key);
            inner.expiries.inbox.remove(&key);
        }
        Ok(match inner.inbox.get(&key) {
            Some((stored, _)) if stored.fingerprint == entry.fingerprint => InboxPut::Duplicate,
            Some(_) => InboxPut::Mismatch,
            None => {
                inner.wrote(1);
                inner.inbox.insert(key, (entry.clone(), false));
                InboxPut::Stored
            }
        })
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<InboxEntry>, StoreError> {
        let now = self.now();
        let inner = self.lock();
        if inner.inbox_expired(tenant, key, now) {
            return Ok(None);
        }
        Ok(inner.inbox.get(&(tenant.clone(), key.to_owned())).map(|(e, _)| e.clone()))
    }

    async fn mark_done(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        // R-J6: kept for the tenant's inbox retention to answer duplicates, then forgotten.
        let keep = inner.tenants.get(tenant).cloned().unwrap_or_default().retention.inbox();
        if let Some((_, done)) = inner.inbox.get_mut(&(tenant.clone(), key.to_owned())) {
            *done = true;
            inner.wrote(1);
            inner.expiries.inbox.insert((tenant.clone(), key.to_owned()), now + keep);
        }
        Ok(())
    }

    async fn pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, String)>, StoreError> {
        let inner = self.lock();
        let mut waiting: Vec<&InboxEntry> =
            inner.inbox.values().filter(|(e, done)| !done && e.received_at < before).map(|(e, _)| e).collect();
        waiting.sort_by(|a, b| (a.received_at, &a.tenant, &a.key).cmp(&(b.received_at, &b.tenant, &b.key)));
        Ok(waiting.into_iter().take(limit).map(|e| (e.tenant.clone(), e.key.clone())).collect())
    }
}
