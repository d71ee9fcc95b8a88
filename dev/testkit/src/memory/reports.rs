//! The deletion report outbox in memory (R-J2).

use super::MemoryStore;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{CommandId, TenantId};
use optisync_ports::*;

impl MemoryStore {
    fn live_reports(&self, tenant: &TenantId) -> Vec<ErasureReportRecord> {
        let now = self.now();
        let inner = self.lock();
        inner
            .reports
            .iter()
            .filter(|((t, _), (_, expires))| t == tenant && expires.is_none_or(|at| at > now))
            .map(|(_, (r, _))| r.clone())
            .collect()
    }
}

#[async_trait]
impl ErasureReports for MemoryStore {
    async fn erasure_reports(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ErasureReportRecord>, StoreError> {
        Ok(reports_page(self.live_reports(tenant), after, limit))
    }

    async fn undelivered_reports(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<ErasureReportRecord>, StoreError> {
        Ok(undelivered_page(self.live_reports(tenant), limit))
    }

    async fn mark_report_delivered(
        &self,
        tenant: &TenantId,
        id: &CommandId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let mut inner = self.lock();
        // R-J6: a delivered report is kept for the tenant's command retention.
        let keep = inner.tenants.get(tenant).cloned().unwrap_or_default().retention.commands();
        if let Some((report, expires)) = inner.reports.get_mut(&(tenant.clone(), id.to_string()))
            && report.delivered_at.is_none()
        {
            report.delivered_at = Some(at);
            *expires = Some(now + keep);
            inner.wrote(1);
        }
        Ok(())
    }
}
