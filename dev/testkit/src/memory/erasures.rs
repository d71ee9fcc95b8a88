//! Erasure mode's side of the store in memory (R-J2, R-J3).

use super::MemoryStore;
use async_trait::async_trait;
use optisync_domain::{Email, LinkId, TenantId, Tombstone};
use optisync_ports::*;

#[async_trait]
impl Erasures for MemoryStore {
    async fn erase_recipient(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        email: &Email,
        hash: &str,
        tombstone: &Tombstone,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = email.key().to_owned();
        inner.items.remove(&(tenant.clone(), ItemKey::Recipient(link.clone(), key.clone())));
        inner.items.remove(&(tenant.clone(), ItemKey::Approval(link.clone(), key)));
        let kept = inner.erased.entry((tenant.clone(), hash.to_owned())).or_insert_with(|| tombstone.clone());
        if kept.at < tombstone.at {
            *kept = tombstone.clone();
        }
        inner.wrote(3);
        Ok(())
    }

    async fn erased(&self, tenant: &TenantId, hash: &str) -> Result<Option<Tombstone>, StoreError> {
        Ok(self.lock().erased.get(&(tenant.clone(), hash.to_owned())).cloned())
    }
}
