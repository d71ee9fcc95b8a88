//! A link's count report (the console's overview): how many assignments OPTIGEM holds as active, how many
//! recipients receive the list, and the difference broken down by reason, so that "why does Brevo show
//! 1,204 and OPTIGEM 1,230?" has an answer.

use super::{Admin, AdminError};
use optisync_domain::{AssignmentId, LinkId, TenantId};
use optisync_ports::Slice;
use serde::Serialize;
use std::collections::BTreeMap;

/// Most assignments, recipients and pending approvals one report counts; past it the report says it is
/// partial (a page view must stay fast; the scheduled run reads everything).
pub const MAX_COUNTED: usize = 20_000;
/// Items read per store request.
const COUNT_PAGE: usize = 100;

/// A link's counts on both sides and the reasons they differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountReport {
    /// The link.
    pub link: LinkId,
    /// Assignments OPTIGEM holds for the newsletter whose period has not ended (what OPTIGEM shows as
    /// the newsletter's active assignments).
    pub optigem_active: u64,
    /// Of these, the ones kept active on the list (R-A1).
    pub syncing: u64,
    /// Of these, the ones whose end optisync handed to OPTIGEM after an unsubscribe (R-E1), not applied
    /// there yet.
    pub ended_by_unsubscribe: u64,
    /// Of these, the ones inactive because of a block, a privacy category or missing data (R-A2…A7), by
    /// reason code (`delivery_blocked`, `privacy_blocked`, …).
    pub inactive: BTreeMap<String, u64>,
    /// Recipients on the ESP list that receive mail, as optisync last saw them.
    pub receiving: u64,
    /// Recipients on the list that do not receive (unsubscribed or deactivated there).
    pub listed_inactive: u64,
    /// Signups waiting for approval (R-C2): on the ESP side without an OPTIGEM assignment yet.
    pub waiting_for_approval: u64,
    /// Inputs of the last run that failed for good.
    pub failed: u64,
    /// False when a count stopped at [`MAX_COUNTED`].
    pub complete: bool,
}

impl Admin {
    /// The link's count report: both sides counted from the state optisync keeps, the difference by
    /// reason.
    pub async fn count_report(&self, tenant: &TenantId, link: &LinkId) -> Result<CountReport, AdminError> {
        let link = self.link(tenant, link).await?;
        let mut report = CountReport {
            link: link.id.clone(),
            optigem_active: 0,
            syncing: 0,
            ended_by_unsubscribe: 0,
            inactive: BTreeMap::new(),
            receiving: 0,
            listed_inactive: 0,
            waiting_for_approval: 0,
            failed: 0,
            complete: true,
        };
        let mut after: Option<AssignmentId> = None;
        let mut counted = 0;
        loop {
            let ids = self.store.assignments(tenant, &link.id, after.as_ref(), COUNT_PAGE).await?;
            let Some(last) = ids.last().cloned() else { break };
            let full = ids.len() == COUNT_PAGE;
            counted += ids.len();
            let loaded = self.store.load(&link, &Slice { assignments: ids, emails: Vec::new() }).await?;
            for entry in loaded.view.mirror.values().filter(|e| e.snapshot.is_some()) {
                let ended = entry.verdict.reasons.iter().any(|r| matches!(r.code(), "end_passed" | "deleted"));
                if ended {
                    continue;
                }
                report.optigem_active += 1;
                if entry.end_requested.is_some() {
                    report.ended_by_unsubscribe += 1;
                } else if let Some(reason) = entry.verdict.reasons.first() {
                    *report.inactive.entry(reason.code().to_owned()).or_default() += 1;
                } else {
                    report.syncing += 1;
                }
            }
            if !full {
                break;
            }
            if counted >= MAX_COUNTED {
                report.complete = false;
                break;
            }
            after = Some(last);
        }
        let mut after: Option<String> = None;
        let mut counted = 0;
        loop {
            let page = self.store.recipients(tenant, &link.id, after.as_deref(), COUNT_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            let next = last.key().to_owned();
            let full = page.len() == COUNT_PAGE;
            counted += page.len();
            for (_, state) in &page {
                match (state.listed, state.active) {
                    (true, true) => report.receiving += 1,
                    (true, false) => report.listed_inactive += 1,
                    _ => {}
                }
            }
            if !full {
                break;
            }
            if counted >= MAX_COUNTED {
                report.complete = false;
                break;
            }
            after = Some(next);
        }
        let mut after: Option<String> = None;
        loop {
            let page = self.store.pending_approvals(tenant, &link.id, after.as_deref(), COUNT_PAGE).await?;
            report.waiting_for_approval += page.len() as u64;
            if page.len() < COUNT_PAGE {
                break;
            }
            if report.waiting_for_approval >= MAX_COUNTED as u64 {
                report.complete = false;
                break;
            }
            after = page.last().map(|e| e.queue_position());
        }
        let run = self.reconciler.state(tenant, &link.id).await?;
        report.failed = run.last.map(|l| l.failures.len() as u64).unwrap_or(0);
        Ok(report)
    }

    /// Starts a reconciliation of a syncing link now ("jetzt abgleichen"; a failed input is planned again
    /// by it). False when the link does not sync.
    pub async fn reconcile_now(&self, tenant: &TenantId, link: &LinkId) -> Result<bool, AdminError> {
        let link = self.link(tenant, link).await?;
        if link.status == optisync_domain::LinkStatus::NotLinked {
            return Ok(false);
        }
        let event = optisync_ports::BusEvent::ReconcileLink { tenant: tenant.clone(), link: link.id };
        self.publisher.publish(&[event]).await?;
        Ok(true)
    }
}
