//! The deletion report outbox (R-J2): `TENANT#{t}` / `REPORT#{id}`, the report as JSON in `v`, written by
//! the commit that appends its `erasure_report`; `delivered_at` and the TTL `expires_at` (the tenant's
//! command retention, R-J6) once delivered. A tenant has few reports, so pages sort them in memory.

use crate::DynamoStore;
use crate::codec::{from_item, s, to_json};
use crate::error::classify;
use crate::keys::{REPORT_PREFIX, report_sk, tenant_pk};
use crate::retention::{epoch, is_expired};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{CommandId, TenantId};
use optisync_ports::{ErasureReportRecord, ErasureReports, StoreError, reports_page, undelivered_page};

impl DynamoStore {
    async fn live_reports(&self, tenant: &TenantId) -> Result<Vec<ErasureReportRecord>, StoreError> {
        let values = [(":pk", s(&tenant_pk(tenant))), (":prefix", s(REPORT_PREFIX))];
        let now = self.now();
        self.query_until("pk = :pk AND begins_with(sk, :prefix)", &values, true, usize::MAX, |item| {
            if is_expired(item, now) {
                return Ok(None); // R-J6
            }
            from_item(item).map(Some)
        })
        .await
    }
}

#[async_trait]
impl ErasureReports for DynamoStore {
    async fn erasure_reports(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ErasureReportRecord>, StoreError> {
        Ok(reports_page(self.live_reports(tenant).await?, after, limit))
    }

    async fn undelivered_reports(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<ErasureReportRecord>, StoreError> {
        Ok(undelivered_page(self.live_reports(tenant).await?, limit))
    }

    async fn mark_report_delivered(
        &self,
        tenant: &TenantId,
        id: &CommandId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(item) = self.get_item(&tenant_pk(tenant), &report_sk(id.as_str())).await? else { return Ok(()) };
        let mut report: ErasureReportRecord = from_item(&item)?;
        if report.delivered_at.is_some() {
            return Ok(());
        }
        report.delivered_at = Some(at);
        let keep = self.retention(tenant).await?.commands();
        self.meter(0.0, 1.0);
        let outcome = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&tenant_pk(tenant)))
            .key("sk", s(&report_sk(id.as_str())))
            .update_expression("SET v = :v, delivered_at = :at, expires_at = :until")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(delivered_at)")
            .expression_attribute_values(":v", to_json(&report)?)
            .expression_attribute_values(":at", s(&at.to_rfc3339()))
            .expression_attribute_values(":until", epoch(self.now() + keep))
            .send()
            .await
            .map_err(classify);
        match outcome {
            // Marked by a concurrent delivery first: its time stays.
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
