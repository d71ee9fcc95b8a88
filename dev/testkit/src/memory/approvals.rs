//! The approval queue in memory.

use super::{Item, MemoryStore};
use async_trait::async_trait;
use optisync_domain::{ApprovalEntry, LinkId, TenantId};
use optisync_ports::*;

#[async_trait]
impl ApprovalQueue for MemoryStore {
    async fn pending_approvals(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ApprovalEntry>, StoreError> {
        let inner = self.lock();
        let entries = inner.items.iter().filter_map(|((t, key), (_, item))| match (key, item) {
            (ItemKey::Approval(l, _), Item::Approval(entry)) if t == tenant && l == link => Some(entry.clone()),
            _ => None,
        });
        Ok(optisync_ports::queue_page(entries, after, limit))
    }
}
