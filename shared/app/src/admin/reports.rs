//! The deletion reports of a tenant's erasures (R-J2), newest first, as the admin API lists them.

use super::{Admin, AdminError};
use optisync_domain::TenantId;
use optisync_ports::ErasureReportRecord;

/// Most reports one page holds.
pub const MAX_REPORT_PAGE: usize = 100;

/// One page of a tenant's deletion reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportPage {
    /// The reports, newest first.
    pub reports: Vec<ErasureReportRecord>,
    /// Where the next (older) page starts, if there may be one.
    pub next: Option<String>,
}

impl Admin {
    /// A tenant's deletion reports, delivered or not, newest first, older than the cursor `after`.
    pub async fn erasure_reports(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ReportPage, AdminError> {
        let limit = limit.clamp(1, MAX_REPORT_PAGE);
        let reports = self.store.erasure_reports(tenant, after, limit).await?;
        let next = if reports.len() == limit { reports.last().map(ErasureReportRecord::position) } else { None };
        Ok(ReportPage { reports, next })
    }
}
