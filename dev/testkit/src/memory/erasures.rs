//! Erasure mode's side of the store in memory (R-J2, R-J3), hashed with the tenant's own key (the one
//! of the R-J6 tombstones).

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
        tombstone: &Tombstone,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = email.key().to_owned();
        inner.items.remove(&(tenant.clone(), ItemKey::Recipient(link.clone(), key.clone())));
        inner.items.remove(&(tenant.clone(), ItemKey::Approval(link.clone(), key)));
        let hash = inner.email_hash(tenant, email);
        // The link's R-J3 tombstone of an expirable state goes too: the tenant's erased marker replaces it.
        inner.expiries.tombstones.remove(&(tenant.clone(), link.clone(), hash.clone()));
        let kept = inner.erased.entry((tenant.clone(), hash)).or_insert_with(|| tombstone.clone());
        if kept.at < tombstone.at {
            *kept = tombstone.clone();
        }
        inner.wrote(3);
        Ok(())
    }

    async fn erased(&self, tenant: &TenantId, email: &Email) -> Result<Option<Tombstone>, StoreError> {
        let inner = self.lock();
        let Some(key) = inner.expiries.hash_keys.get(tenant) else { return Ok(None) };
        let hash = optisync_domain::EmailHasher::new(key.clone()).hash(email);
        Ok(inner.erased.get(&(tenant.clone(), hash)).cloned())
    }
}
