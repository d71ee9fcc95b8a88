//! The scheduled run's state per link and its chunks of working data.

use crate::DynamoStore;
use crate::codec::{get_s, n, s, version_of};
use crate::error::classify;
use crate::keys::{CHUNK_INDEX_MAX, RUN_SK, chunk_sk, link_pk};
use crate::{item_size, write_units};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{LinkId, TenantId};
use optisync_ports::{RunStore, StoreError};
use std::collections::HashMap;

#[async_trait]
impl RunStore for DynamoStore {
    async fn run_state(&self, tenant: &TenantId, link: &LinkId) -> Result<Option<(String, u64)>, StoreError> {
        let item = self.get_item(&link_pk(tenant, link), RUN_SK).await?;
        Ok(item.map(|i| (get_s(&i, "v").unwrap_or_default().to_owned(), version_of(&i))))
    }

    async fn save_run_state(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        value: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&link_pk(tenant, link))),
            ("sk".to_owned(), s(RUN_SK)),
            ("ver".to_owned(), n(expected.unwrap_or(0) + 1)),
            ("v".to_owned(), s(value)),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request.condition_expression("ver = :expected").expression_attribute_values(":expected", n(v)),
        };
        request.send().await.map_err(classify)?;
        Ok(())
    }

    async fn put_run_chunk(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        run: &str,
        index: u64,
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&link_pk(tenant, link))),
            ("sk".to_owned(), s(&chunk_sk(run, index))),
            ("v".to_owned(), s(value)),
            ("expires_at".to_owned(), n(expires_at.timestamp().max(0) as u64)),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(classify)?;
        Ok(())
    }

    async fn run_chunks(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        run: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let Some(from) = after.map_or(Some(0), |a| a.checked_add(1)) else { return Ok(Vec::new()) };
        if limit == 0 || from > CHUNK_INDEX_MAX {
            return Ok(Vec::new());
        }
        let condition = "pk = :pk AND sk BETWEEN :from AND :to";
        let values = [
            (":pk", s(&link_pk(tenant, link))),
            (":from", s(&chunk_sk(run, from))),
            (":to", s(&chunk_sk(run, CHUNK_INDEX_MAX))),
        ];
        self.query_until(condition, &values, true, limit, |item| {
            let sk = get_s(item, "sk").unwrap_or_default();
            let index = sk.rsplit('#').next().and_then(|i| i.parse().ok()).unwrap_or(0);
            Ok(Some((index, get_s(item, "v").unwrap_or_default().to_owned())))
        })
        .await
    }
}
