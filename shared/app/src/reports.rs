//! Delivering deletion reports (R-J2, issue #21): the outbox the commits fill
//! ([`ErasureReports`](optisync_ports::ErasureReports)) is published through a [`ReportNotifier`] and each
//! report marked delivered once the notifier accepted it. The engine runs it right after a commit that
//! made a report (best effort); the scheduler's tick runs it for every tenant, so a failed publish is
//! retried: at least once, never lost.
//!
//! A report is personal data: nothing here logs or counts more than how many (R-J5).

use chrono::{DateTime, Utc};
use optisync_domain::TenantId;
use optisync_ports::{ReportNotifier, StateStore, StoreError};
use std::collections::BTreeSet;

/// Most reports one delivery publishes per tenant (the rest wait for the next one).
pub const DELIVER_LIMIT: usize = 100;

/// What one delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Reports the notifier accepted and the store marked delivered.
    pub delivered: usize,
    /// Reports whose publish failed; they stay undelivered for the next delivery.
    pub failed: usize,
}

/// Publishes the tenant's undelivered reports, oldest first, and marks each delivered at `now` once the
/// notifier accepted it. The first failed publish ends the delivery (the notifier is likely down); the
/// report stays in the outbox. A mark lost after a publish publishes the report again next time (at least
/// once).
pub async fn deliver(
    store: &dyn StateStore,
    notifier: &dyn ReportNotifier,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> Result<Delivery, StoreError> {
    let mut done = Delivery::default();
    if tenant.is_preview() {
        return Ok(done);
    }
    for report in store.undelivered_reports(tenant, DELIVER_LIMIT).await? {
        match notifier.publish(tenant, &report).await {
            Ok(()) => {
                store.mark_report_delivered(tenant, &report.id, now).await?;
                done.delivered += 1;
            }
            Err(e) => {
                // R-J5: the error names no address; the report id is a hash.
                tracing::warn!(report = %report.id, error = %e, "deletion report not delivered; retried on the next tick");
                done.failed += 1;
                break;
            }
        }
    }
    Ok(done)
}

/// [`deliver`] for every tenant with a link (an erasure needs one): the scheduler's tick.
pub async fn deliver_all(
    store: &dyn StateStore,
    notifier: &dyn ReportNotifier,
    now: DateTime<Utc>,
) -> Result<Delivery, StoreError> {
    let tenants: BTreeSet<TenantId> = store.all_links().await?.into_iter().map(|l| l.tenant).collect();
    let mut total = Delivery::default();
    for tenant in &tenants {
        let done = deliver(store, notifier, tenant, now).await?;
        total.delivered += done.delivered;
        total.failed += done.failed;
    }
    if total != Delivery::default() {
        tracing::info!(delivered = total.delivered, failed = total.failed, "deletion reports delivered");
    }
    Ok(total)
}
