//! A link's audit trail, newest first, without expired entries.

use crate::EmbeddedStore;
use crate::codec::decode;
use crate::error::db_err;
use crate::tables::AUDIT;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{AuditEntry, LinkId, TenantId};
use optisync_ports::{AuditLog, StoreError};

#[async_trait]
impl AuditLog for EmbeddedStore {
    async fn audit(
        &self,
        tenant: &TenantId,
        link: &LinkId,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let link = crate::tables::scope(tenant, link);
        self.read(move |txn| {
            let trail = txn.open_table(AUDIT).map_err(db_err)?;
            let mut out = Vec::new();
            for row in trail.range((link.as_str(), 0, 0)..=(link.as_str(), u64::MAX, u64::MAX)).map_err(db_err)?.rev() {
                if out.len() >= limit {
                    break;
                }
                let entry: AuditEntry = decode("audit entry", row.map_err(db_err)?.1.value())?;
                if entry.expires_at() > now {
                    out.push(entry);
                }
            }
            Ok(out)
        })
        .await
    }
}
