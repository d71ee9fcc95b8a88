//! Erasure mode's side of the table (R-J2, R-J3): a recipient erased from a link leaves only the keyed
//! hash of its e-mail with the tombstone, under the tenant (`TENANT#{t}` / `ERASED#{hash}`, R-K1). The
//! hash is keyed with the tenant's own key (`TENANT#{t} / EMAIL-HASH-KEY`), the one of the R-J6
//! tombstones.

use crate::DynamoStore;
use crate::codec::{from_item, s, to_json};
use crate::error::classify;
use crate::keys::{approval_sk, erased_sk, link_pk, recipient_sk, tenant_pk};
use crate::retention::tombstone_sk;
use crate::{item_size, write_units};
use async_trait::async_trait;
use optisync_domain::{Email, LinkId, TenantId, Tombstone};
use optisync_ports::{Erasures, StoreError};
use std::collections::HashMap;

#[async_trait]
impl Erasures for DynamoStore {
    async fn erase_recipient(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        email: &Email,
        tombstone: &Tombstone,
    ) -> Result<(), StoreError> {
        let pk = link_pk(tenant, link);
        let hash = self.hasher(tenant).await?.hash(email);
        // The link's R-J3 tombstone of an expirable state goes too: the tenant's erased marker replaces it.
        for sk in [recipient_sk(email.key()), approval_sk(email.key()), tombstone_sk(&hash)] {
            self.meter(0.0, 1.0);
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s(&pk))
                .key("sk", s(&sk))
                .send()
                .await
                .map_err(classify)?;
        }
        if self.erased_by_hash(tenant, &hash).await?.is_some_and(|kept| kept.at >= tombstone.at) {
            return Ok(());
        }
        let item = HashMap::from([
            ("pk".to_owned(), s(&tenant_pk(tenant))),
            ("sk".to_owned(), s(&erased_sk(&hash))),
            ("v".to_owned(), to_json(tombstone)?),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }

    async fn erased(&self, tenant: &TenantId, email: &Email) -> Result<Option<Tombstone>, StoreError> {
        let hash = self.hasher(tenant).await?.hash(email);
        self.erased_by_hash(tenant, &hash).await
    }
}

impl DynamoStore {
    async fn erased_by_hash(&self, tenant: &TenantId, hash: &str) -> Result<Option<Tombstone>, StoreError> {
        match self.get_item(&tenant_pk(tenant), &erased_sk(hash)).await? {
            Some(item) => Ok(Some(from_item(&item)?)),
            None => Ok(None),
        }
    }
}
