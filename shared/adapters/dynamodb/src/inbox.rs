//! The durable inbox between the hooks and the worker.

use crate::DynamoStore;
use crate::codec::{from_item, get_s, millis, s, to_json};
use crate::error::classify;
use crate::keys::{INBOX_PENDING, INBOX_SK, inbox_pending_sk, inbox_pk};
use crate::retention::{ABSENT_OR_EXPIRED, epoch, is_expired};
use crate::{item_size, write_units};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::TenantId;
use optisync_ports::{Inbox, InboxEntry, InboxPut, StoreError};
use std::collections::HashMap;

/// Inbox items: `pk = INBOX#{tenant}#{key}`, `sk = INBOX`, the entry in `v`, the body's fingerprint in
/// `fp`; while unprocessed also in the sparse index `gsi2pk = INBOX-PENDING`, `gsi2sk = {received ms}#…`.
#[async_trait]
impl Inbox for DynamoStore {
    async fn put(&self, entry: &InboxEntry) -> Result<InboxPut, StoreError> {
        let pk = inbox_pk(&entry.tenant, &entry.key);
        let item = HashMap::from([
            ("pk".to_owned(), s(&pk)),
            ("sk".to_owned(), s(INBOX_SK)),
            ("fp".to_owned(), s(&entry.fingerprint)),
            ("v".to_owned(), to_json(entry)?),
            ("gsi2pk".to_owned(), s(INBOX_PENDING)),
            ("gsi2sk".to_owned(), s(&inbox_pending_sk(entry.received_at.timestamp_millis().max(0), &pk))),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        // R-J6: an expired entry (TTL deletes late) counts as absent.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(ABSENT_OR_EXPIRED)
            .expression_attribute_values(":now", epoch(self.now()))
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) => Ok(InboxPut::Stored),
            Err(StoreError::Conflict) => {
                let existing = self.get_item(&pk, INBOX_SK).await?;
                Ok(match existing.as_ref().and_then(|i| get_s(i, "fp")) {
                    Some(fp) if fp == entry.fingerprint => InboxPut::Duplicate,
                    _ => InboxPut::Mismatch,
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn get(&self, tenant: &TenantId, key: &str) -> Result<Option<InboxEntry>, StoreError> {
        let Some(item) = self.get_item(&inbox_pk(tenant, key), INBOX_SK).await? else { return Ok(None) };
        if is_expired(&item, self.now()) {
            return Ok(None); // R-J6
        }
        Ok(Some(from_item(&item)?))
    }

    async fn mark_done(&self, tenant: &TenantId, key: &str) -> Result<(), StoreError> {
        // R-J6: kept for the tenant's inbox retention to answer duplicates, then the TTL removes it.
        let (now, keep) = (self.now(), self.retention(tenant).await?.inbox());
        self.meter(0.0, 1.0);
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&inbox_pk(tenant, key)))
            .key("sk", s(INBOX_SK))
            .update_expression("REMOVE gsi2pk, gsi2sk SET done_at = :now, expires_at = :until")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", millis(now))
            .expression_attribute_values(":until", epoch(now + keep))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn pending(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<(TenantId, String)>, StoreError> {
        let keys = self
            .query_all(
                Some("gsi2"),
                "gsi2pk = :p AND gsi2sk < :before",
                &[(":p", s(INBOX_PENDING)), (":before", s(&format!("{:020}", before.timestamp_millis().max(0))))],
                Some(limit),
            )
            .await?;
        // The index is keys-only; tenant and key are read from the items themselves.
        let mut waiting = Vec::new();
        for k in &keys {
            let (Some(pk), Some(sk)) = (get_s(k, "pk"), get_s(k, "sk")) else { continue };
            if let Some(item) = self.get_item(pk, sk).await? {
                let entry: InboxEntry = from_item(&item)?;
                waiting.push((entry.received_at, entry.tenant, entry.key));
            }
        }
        waiting.sort();
        Ok(waiting.into_iter().map(|(_, t, k)| (t, k)).collect())
    }
}
