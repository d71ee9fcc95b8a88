//! Deletion reports kept until delivered (R-J2, issue #21): the outbox record a commit writes beside its
//! `erasure_report` command, the store capability that pages and marks them, and the port that delivers
//! one (SNS in AWS, a counting notifier in the local runner).
//!
//! A report is personal data (it names the erased address): it travels only in the store, on the
//! connector's feed and in the notifier's message, never in a log, metric or error message (R-J5).

use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optisync_domain::{CommandId, Email, ErasedItem, KeptItem, LinkId, NewsletterId, OptigemCommand, TenantId};
use serde::{Deserialize, Serialize};

/// One deletion report as the store keeps it until it is delivered (R-J2): the tenant, the link, the
/// address, what was deleted where, what was kept and why, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureReportRecord {
    /// The tenant (the store keys the record by it, R-K1).
    pub tenant: TenantId,
    /// The report's id: the id of its `erasure_report` command, so a report is kept once.
    pub id: CommandId,
    /// The link in erasure mode.
    pub link: LinkId,
    /// Its newsletter.
    pub newsletter: NewsletterId,
    /// The erased address.
    pub email: Email,
    /// The `end_assignment` whose confirmation started the erasure.
    pub ended: CommandId,
    /// What was deleted where.
    pub deleted: Vec<ErasedItem>,
    /// What was kept, and why.
    pub kept: Vec<KeptItem>,
    /// When the erasure was carried out.
    pub at: DateTime<Utc>,
    /// When the notifier accepted it (`None`: not yet delivered, the next delivery publishes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl ErasureReportRecord {
    /// The outbox record of an `erasure_report` command (`None` for every other command).
    pub fn of(tenant: &TenantId, command: &OptigemCommand) -> Option<Self> {
        let OptigemCommand::ErasureReport { id, link, newsletter, email, ended, deleted, kept, at, .. } = command
        else {
            return None;
        };
        Some(Self {
            tenant: tenant.clone(),
            id: id.clone(),
            link: link.clone(),
            newsletter: newsletter.clone(),
            email: email.clone(),
            ended: ended.clone(),
            deleted: deleted.clone(),
            kept: kept.clone(),
            at: *at,
            delivered_at: None,
        })
    }

    /// The record's place in a tenant's reports, newest first when sorted descending: its time
    /// (fixed-width, UTC) and id. The admin API's page cursor.
    pub fn position(&self) -> String {
        format!("{}#{}", self.at.format("%Y%m%dT%H%M%S%.6fZ"), self.id)
    }
}

/// One page of a tenant's reports from its records in any order: newest first
/// ([`ErasureReportRecord::position`] descending), those after (older than) the position `after`, up to
/// `limit`. Every store's [`ErasureReports::erasure_reports`] pages through this.
pub fn reports_page(
    records: impl IntoIterator<Item = ErasureReportRecord>,
    after: Option<&str>,
    limit: usize,
) -> Vec<ErasureReportRecord> {
    let mut all: Vec<(String, ErasureReportRecord)> = records
        .into_iter()
        .map(|r| (r.position(), r))
        .filter(|(position, _)| after.is_none_or(|a| position.as_str() < a))
        .collect();
    all.sort_by(|a, b| b.0.cmp(&a.0));
    all.into_iter().take(limit).map(|(_, r)| r).collect()
}

/// The undelivered ones of a tenant's report records in any order: oldest first, up to `limit`. Every
/// store's [`ErasureReports::undelivered_reports`] takes them through this.
pub fn undelivered_page(
    records: impl IntoIterator<Item = ErasureReportRecord>,
    limit: usize,
) -> Vec<ErasureReportRecord> {
    let mut out: Vec<_> = records.into_iter().filter(|r| r.delivered_at.is_none()).collect();
    out.sort_by_key(|r| r.position());
    out.truncate(limit);
    out
}

/// The deletion report outbox (R-J2). A commit that appends an `erasure_report` command to the feed also
/// keeps its [`ErasureReportRecord`] (once per id, not for a dry run's commit, whose commands carry an
/// expiry). An undelivered report never expires; once delivered it is kept for the tenant's
/// [`Retention::commands`](optisync_domain::Retention::commands), then forgotten (R-J6).
#[async_trait]
pub trait ErasureReports: Send + Sync {
    /// A tenant's reports, delivered or not, newest first, older than the position `after` (`None`: from
    /// the newest), up to `limit` ([`reports_page`]); expired ones are left out.
    async fn erasure_reports(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ErasureReportRecord>, StoreError>;
    /// A tenant's reports not yet delivered, oldest first, up to `limit`.
    async fn undelivered_reports(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<ErasureReportRecord>, StoreError>;
    /// Marks a report delivered at `at` and dates its expiry; a report marked before keeps its first
    /// delivery time. An unknown id changes nothing.
    async fn mark_report_delivered(
        &self,
        tenant: &TenantId,
        id: &CommandId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// Why a notifier could not deliver a report. The message never names the address (R-J5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// Unreachable, throttled or refused for now: the report stays undelivered and the next delivery
    /// (the scheduler's tick at the latest) publishes it again.
    #[error("the notifier is unavailable: {0}")]
    Unavailable(String),
}

/// Delivers a deletion report to the tenant's notification target (R-J2): in AWS an SNS topic whose
/// per-tenant e-mail subscriptions filter on the `tenant` message attribute. At least once: a report
/// whose publish succeeded but whose delivery mark was lost is published again.
#[async_trait]
pub trait ReportNotifier: Send + Sync {
    /// Publishes one report of `tenant`.
    async fn publish(&self, tenant: &TenantId, report: &ErasureReportRecord) -> Result<(), NotifyError>;
}

/// The tenant's notification target for deletion reports (R-J2): in AWS an e-mail subscription of the
/// deployment's topic that only the tenant's reports reach (filter on the `tenant` attribute); the admin
/// confirms it through the provider's own mail.
#[async_trait]
pub trait ReportSubscriptions: Send + Sync {
    /// Makes `email` the tenant's target: subscribes it unless it is subscribed already, and removes the
    /// subscription of `previous` (the target before) when that one is confirmed (a pending one cannot be
    /// removed and lapses by itself).
    async fn subscribe(&self, tenant: &TenantId, email: &Email, previous: Option<&Email>) -> Result<(), NotifyError>;
}
