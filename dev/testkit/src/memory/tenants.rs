//! Tenant settings, ESP accounts and pending OAuth authorisations in memory.

use super::MemoryStore;
use async_trait::async_trait;
use optisync_domain::{AccountRecord, EspAccount, TenantId, TenantSettings};
use optisync_ports::*;

#[async_trait]
impl Tenants for MemoryStore {
    async fn tenant_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        Ok(self.lock().tenants.get(tenant).cloned().unwrap_or_default())
    }

    async fn put_tenant_settings(&self, tenant: &TenantId, settings: &TenantSettings) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.wrote(1);
        inner.tenants.insert(tenant.clone(), settings.clone());
        Ok(())
    }

    async fn accounts(&self, tenant: &TenantId) -> Result<Vec<AccountRecord>, StoreError> {
        Ok(self.lock().accounts.values().filter(|a| &a.tenant == tenant).cloned().collect())
    }

    async fn account(&self, esp: &EspAccount) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self.lock().accounts.get(&(esp.provider, esp.account.as_str().to_owned())).cloned())
    }

    async fn put_account(&self, record: &AccountRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = (record.esp.provider, record.esp.account.as_str().to_owned());
        if inner.accounts.get(&key).is_some_and(|held| held.tenant != record.tenant) {
            return Err(StoreError::Conflict);
        }
        inner.wrote(1);
        inner.accounts.insert(key, record.clone());
        Ok(())
    }

    async fn put_authorisation(&self, pending: &PendingAuthorisation) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.wrote(1);
        inner.authorisations.insert((pending.tenant.clone(), pending.nonce_hash.clone()), pending.clone());
        Ok(())
    }

    async fn take_authorisation(
        &self,
        tenant: &TenantId,
        nonce_hash: &str,
    ) -> Result<Option<PendingAuthorisation>, StoreError> {
        let mut inner = self.lock();
        let taken = inner.authorisations.remove(&(tenant.clone(), nonce_hash.to_owned()));
        if taken.is_some() {
            inner.wrote(1);
        }
        Ok(taken)
    }
}
