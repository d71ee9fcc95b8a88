//! Links, by tenant: a link id is unique within its tenant only (R-K1).

use crate::EmbeddedStore;
use crate::codec::{decode, encode};
use crate::error::db_err;
use crate::tables::{LINKS, successor};
use async_trait::async_trait;
use optisync_domain::{Link, TenantId};
use optisync_ports::{Links, StoreError};
use redb::ReadableTable;

#[async_trait]
impl Links for EmbeddedStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let bytes = encode("link", link)?;
        let (tenant, id) = (link.tenant.to_string(), link.id.to_string());
        self.write(move |txn| {
            let mut links = txn.open_table(LINKS).map_err(db_err)?;
            links.insert((tenant.as_str(), id.as_str()), bytes.as_slice()).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |txn| {
            let table = txn.open_table(LINKS).map_err(db_err)?;
            let upper = successor(&tenant);
            let mut links = Vec::new();
            for entry in table.range((tenant.as_str(), "")..(upper.as_str(), "")).map_err(db_err)? {
                let (_, bytes) = entry.map_err(db_err)?;
                links.push(decode("link", bytes.value())?);
            }
            Ok(links)
        })
        .await
    }

    async fn all_links(&self) -> Result<Vec<Link>, StoreError> {
        self.read(move |txn| {
            let table = txn.open_table(LINKS).map_err(db_err)?;
            let mut links = Vec::new();
            for entry in table.iter().map_err(db_err)? {
                let (_, bytes) = entry.map_err(db_err)?;
                links.push(decode("link", bytes.value())?);
            }
            Ok(links)
        })
        .await
    }
}
