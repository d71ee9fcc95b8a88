//! Links in memory.

use super::MemoryStore;
use async_trait::async_trait;
use optisync_domain::{Link, TenantId};
use optisync_ports::*;

#[async_trait]
impl Links for MemoryStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.wrote(1);
        inner.links.insert((link.tenant.clone(), link.id.clone()), link.clone());
        Ok(())
    }

    async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, StoreError> {
        Ok(self.lock().links.values().filter(|l| &l.tenant == tenant).cloned().collect())
    }

    async fn all_links(&self) -> Result<Vec<Link>, StoreError> {
        let mut links: Vec<Link> = self.lock().links.values().cloned().collect();
        links.sort_by(|a, b| (&a.tenant, &a.id).cmp(&(&b.tenant, &b.id)));
        Ok(links)
    }
}
