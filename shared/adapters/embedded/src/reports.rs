//! The deletion report outbox (R-J2): reports a commit kept, until delivered, then for the tenant's
//! command retention (R-J6).

use crate::EmbeddedStore;
use crate::codec::{decode, encode};
use crate::error::db_err;
use crate::retention::{expired, ms};
use crate::tables::{REPORT_EXPIRY, REPORTS, TENANTS, successor};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{CommandId, TenantId, TenantSettings};
use optisync_ports::{ErasureReportRecord, ErasureReports, StoreError, reports_page, undelivered_page};
use redb::ReadableTable;

impl EmbeddedStore {
    async fn live_reports(&self, tenant: &TenantId) -> Result<Vec<ErasureReportRecord>, StoreError> {
        let (tenant, now) = (tenant.to_string(), ms(self.now()));
        self.read(move |txn| {
            let reports = txn.open_table(REPORTS).map_err(db_err)?;
            let expiry = txn.open_table(REPORT_EXPIRY).map_err(db_err)?;
            let end = successor(&tenant);
            let mut out = Vec::new();
            for row in reports.range((tenant.as_str(), "")..(end.as_str(), "")).map_err(db_err)? {
                let (key, bytes) = row.map_err(db_err)?;
                let (t, id) = key.value();
                if t == tenant && !expired(&expiry, (t, id), now)? {
                    out.push(decode("erasure report", bytes.value())?);
                }
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl ErasureReports for EmbeddedStore {
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
        let (tenant, id, now) = (tenant.to_string(), id.to_string(), self.now());
        self.write(move |txn| {
            let key = (tenant.as_str(), id.as_str());
            let mut reports = txn.open_table(REPORTS).map_err(db_err)?;
            let mut report: ErasureReportRecord = match reports.get(key).map_err(db_err)? {
                Some(bytes) => decode("erasure report", bytes.value())?,
                None => return Ok(()),
            };
            if report.delivered_at.is_some() {
                return Ok(());
            }
            report.delivered_at = Some(at);
            reports.insert(key, encode("erasure report", &report)?.as_slice()).map_err(db_err)?;
            // R-J6: a delivered report is kept for the tenant's command retention.
            let settings: TenantSettings =
                match txn.open_table(TENANTS).map_err(db_err)?.get(tenant.as_str()).map_err(db_err)? {
                    Some(bytes) => decode("tenant settings", bytes.value())?,
                    None => TenantSettings::default(),
                };
            txn.open_table(REPORT_EXPIRY)
                .map_err(db_err)?
                .insert(key, ms(now + settings.retention.commands()))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}
