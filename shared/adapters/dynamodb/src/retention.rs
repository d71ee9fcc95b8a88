//! Retention on DynamoDB (R-J6): every expirable item carries the table's TTL attribute `expires_at`
//! (epoch seconds, the attribute `template.yaml`'s `TimeToLiveSpecification` names), dated by the
//! store's clock. TTL deletes late, so reads skip an item past it and conditional writes treat it as
//! absent. The R-J3 tombstone of an expirable recipient is its own item under a keyed hash of the
//! e-mail (`LINK#{t}#{l} / TOMBSTONE#{hash}`), without the e-mail or a name, and never expires; the
//! key is the tenant's own (`TENANT#{t} / EMAIL-HASH-KEY`), made on first use and cached.

use crate::DynamoStore;
use crate::codec::{from_item, get_s, n, s};
use crate::error::classify;
use crate::keys::{HASH_KEY_SK, tenant_pk};
use crate::{Item, write_units};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use optisync_domain::{Email, EmailHasher, TenantId, TombstoneRecord};
use optisync_ports::StoreError;
use std::collections::HashMap;

/// The TTL attribute.
pub(crate) const EXPIRES_AT: &str = "expires_at";

/// The condition of a put that expects no item: none there, or one past its expiry.
pub(crate) const ABSENT_OR_EXPIRED: &str = "attribute_not_exists(pk) OR expires_at <= :now";

/// Epoch seconds, as the TTL attribute holds them.
pub(crate) fn epoch(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp().max(0) as u64)
}

/// Whether an item's TTL attribute has passed at `now`.
pub(crate) fn is_expired(item: &Item, now: DateTime<Utc>) -> bool {
    item.get(EXPIRES_AT)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|at| at <= now.timestamp())
}

impl DynamoStore {
    /// The store's time: its clock's, else the system's (DynamoDB's TTL deletes by wall-clock time).
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.as_ref().map_or_else(Utc::now, |c| c.now())
    }

    /// The tenant's e-mail hasher (R-J3, R-J5), its key made on first use; cached for the process.
    pub(crate) async fn hasher(&self, tenant: &TenantId) -> Result<EmailHasher, StoreError> {
        if let Some(key) = self.hash_keys.lock().expect("hash keys lock").get(tenant) {
            return Ok(EmailHasher::new(key.clone()));
        }
        let key = match self.get_item(&tenant_pk(tenant), HASH_KEY_SK).await?.as_ref().and_then(|i| get_s(i, "key")) {
            Some(hex) => decode_hex(hex)?,
            None => self.new_hash_key(tenant).await?,
        };
        self.hash_keys.lock().expect("hash keys lock").insert(tenant.clone(), key.clone());
        Ok(EmailHasher::new(key))
    }

    /// Stores a new random key for the tenant, unless another process stored one first (then that one).
    async fn new_hash_key(&self, tenant: &TenantId) -> Result<Vec<u8>, StoreError> {
        let key = rand::random::<[u8; 32]>().to_vec();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let item = HashMap::from([
            ("pk".to_owned(), s(&tenant_pk(tenant))),
            ("sk".to_owned(), s(HASH_KEY_SK)),
            ("key".to_owned(), s(&hex)),
        ]);
        self.meter(0.0, write_units(128));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put.map_err(classify) {
            Ok(_) => Ok(key),
            Err(StoreError::Conflict) => {
                let item = self.get_item(&tenant_pk(tenant), HASH_KEY_SK).await?;
                decode_hex(item.as_ref().and_then(|i| get_s(i, "key")).unwrap_or_default())
            }
            Err(e) => Err(e),
        }
    }

    /// The tenant settings' retention, for records that become expirable outside a commit.
    pub(crate) async fn retention(&self, tenant: &TenantId) -> Result<optisync_domain::Retention, StoreError> {
        Ok(optisync_ports::Tenants::tenant_settings(self, tenant).await?.retention)
    }
}

/// The sort key of a tombstone (under the link's partition).
pub(crate) fn tombstone_sk(hash: &str) -> String {
    format!("TOMBSTONE#{hash}")
}

/// A tombstone item's record.
pub(crate) fn tombstone_of(item: &Item) -> Result<TombstoneRecord, StoreError> {
    from_item(item)
}

/// The keyed hash of an e-mail.
pub(crate) fn hash(hasher: &EmailHasher, email: &Email) -> String {
    hasher.hash(email)
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, StoreError> {
    if !hex.len().is_multiple_of(2) {
        return Err(StoreError::Permanent("the e-mail hash key is malformed".into()));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| StoreError::Permanent("the e-mail hash key is malformed".into()))
}
