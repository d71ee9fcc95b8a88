//! Leases by conditional put and conditional delete.

use crate::DynamoStore;
use crate::codec::{n, s};
use crate::error::classify;
use crate::keys::{LEASE_SK, lease_pk};
use crate::{item_size, write_units};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_ports::{Leases, StoreError};
use std::collections::HashMap;

#[async_trait]
impl Leases for DynamoStore {
    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let item = HashMap::from([
            ("pk".to_owned(), s(&lease_pk(name))),
            ("sk".to_owned(), s(LEASE_SK)),
            ("owner".to_owned(), s(owner)),
            ("until".to_owned(), n(until.timestamp_millis().max(0) as u64)),
            // Let DynamoDB drop leases long after they ran out.
            ("expires_at".to_owned(), n((until.timestamp() + 86_400).max(0) as u64)),
        ]);
        self.meter(0.0, write_units(item_size(&item)));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #owner = :me OR #until < :now")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":now", n(now.timestamp_millis().max(0) as u64))
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.meter(0.0, 1.0);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&lease_pk(name)))
            .key("sk", s(LEASE_SK))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match result.map_err(classify) {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
