//! Links: items under the tenant, and every link in one index partition for the scheduler.

use crate::DynamoStore;
use crate::codec::{from_item, key_pairs, s, to_json};
use crate::error::classify;
use crate::keys::{ALL_LINKS, LINK_PREFIX, all_links_sk, link_sk, tenant_pk};
use crate::{item_size, write_units};
use async_trait::async_trait;
use optisync_domain::{Link, TenantId};
use optisync_ports::{Links, StoreError};
use std::collections::HashMap;

#[async_trait]
impl Links for DynamoStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&tenant_pk(&link.tenant))),
            ("sk".to_owned(), s(&link_sk(&link.id))),
            ("v".to_owned(), to_json(link)?),
            // Every link is also in one index partition, for the scheduler's fan-out over all tenants.
            ("gsi2pk".to_owned(), s(ALL_LINKS)),
            ("gsi2sk".to_owned(), s(&all_links_sk(&link.tenant, &link.id))),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }

    async fn links(&self, tenant: &TenantId) -> Result<Vec<Link>, StoreError> {
        let items = self
            .query_all(
                None,
                "pk = :pk AND begins_with(sk, :prefix)",
                &[(":pk", s(&tenant_pk(tenant))), (":prefix", s(LINK_PREFIX))],
                None,
            )
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn all_links(&self) -> Result<Vec<Link>, StoreError> {
        let keys = self.query_all(Some("gsi2"), "gsi2pk = :pk", &[(":pk", s(ALL_LINKS))], None).await?;
        let mut links: Vec<Link> =
            self.batch_get(key_pairs(&keys)).await?.iter().map(from_item).collect::<Result<_, _>>()?;
        links.sort_by(|a, b| (&a.tenant, &a.id).cmp(&(&b.tenant, &b.id)));
        Ok(links)
    }
}
