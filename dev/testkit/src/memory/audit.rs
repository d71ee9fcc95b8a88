//! The audit trail in memory.

use super::MemoryStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{AuditEntry, LinkId, TenantId};
use optisync_ports::*;

#[async_trait]
impl AuditLog for MemoryStore {
    async fn audit(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let inner = self.lock();
        let entries = inner.audit.get(&(tenant.clone(), link.clone())).map(Vec::as_slice).unwrap_or_default();
        Ok(entries.iter().rev().filter(|e| e.expires_at() > now).take(limit).cloned().collect())
    }
}
