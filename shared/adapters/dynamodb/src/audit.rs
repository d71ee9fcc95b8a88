//! A link's audit trail, newest first, skipping expired entries (TTL deletes late).

use crate::DynamoStore;
use crate::codec::{from_item, s};
use crate::keys::{AUDIT_PREFIX, link_pk};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{AuditEntry, LinkId, TenantId};
use optisync_ports::{AuditLog, StoreError};

#[async_trait]
impl AuditLog for DynamoStore {
    async fn audit(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let condition = "pk = :pk AND begins_with(sk, :prefix)";
        let values = [(":pk", s(&link_pk(tenant, link))), (":prefix", s(AUDIT_PREFIX))];
        // Newest first; expired entries (TTL deletes late) are skipped and do not count.
        self.query_until(condition, &values, false, limit, |item| {
            let entry: AuditEntry = from_item(item)?;
            Ok((entry.expires_at() > now).then_some(entry))
        })
        .await
    }
}
