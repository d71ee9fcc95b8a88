//! The scheduled tick (every 6 hours in AWS, a timer in the local runner): re-drive what the worker never
//! finished, and announce one reconciliation per link that syncs; and the daily due tick just after
//! midnight Europe/Berlin ([`apply_due`], R-A11).

use crate::engine::{Engine, ProcessError};
use crate::inbox::redrive_pending;
use chrono::{DateTime, Utc};
use optisync_domain::calendar::berlin_date;
use optisync_domain::{Link, LinkStatus, TenantId};
use optisync_ports::{BusEvent, EventPublisher, Inbox, StateStore, StoreError};
use std::collections::BTreeSet;

/// How old an unprocessed inbox entry must be before the tick re-drives it (the worker normally takes
/// seconds; younger entries may still be in flight).
pub const REDRIVE_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// Most inbox entries one tick re-drives (the rest wait for the next tick).
pub const REDRIVE_LIMIT: usize = 1000;

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    /// Inbox entries announced to the worker again.
    pub redriven: usize,
    /// Links announced for reconciliation.
    pub reconciles: usize,
    /// Signups waiting in the approval queues of those links.
    pub approvals_pending: usize,
    /// Seconds the oldest of them has waited (zero when none waits).
    pub oldest_approval_secs: u64,
}

/// Most pending entries one tick counts per link (a longer queue shows as this many).
pub const APPROVALS_COUNTED: usize = 10_000;

/// Runs one tick at `now`: every inbox entry received before `now - REDRIVE_AFTER` and still pending is
/// announced again, and every link that is linking or linked gets a `link.reconcile` event (a link that is
/// not linked does not sync, R-F1). A failure leaves nothing half-announced that matters: both steps are
/// safe to repeat, so the next tick or a retry does them again.
pub async fn tick(
    store: &dyn StateStore,
    inbox: &dyn Inbox,
    publisher: &dyn EventPublisher,
    now: DateTime<Utc>,
) -> Result<Tick, StoreError> {
    let redriven = redrive_pending(inbox, publisher, now - REDRIVE_AFTER, REDRIVE_LIMIT).await?;
    let links: Vec<Link> = store.all_links().await?.into_iter().filter(|l| l.status != LinkStatus::NotLinked).collect();
    let events: Vec<BusEvent> =
        links.iter().map(|l| BusEvent::ReconcileLink { tenant: l.tenant.clone(), link: l.id.clone() }).collect();
    publisher.publish(&events).await?;
    let (approvals_pending, oldest) = approval_backlog(store, &links).await?;
    let oldest_approval_secs = oldest.map_or(0, |first_seen| (now - first_seen).num_seconds().max(0) as u64);
    optisync_ports::metrics::approvals(approvals_pending as u64, oldest_approval_secs);
    tracing::info!(redriven, reconciles = events.len(), approvals_pending, oldest_approval_secs, "scheduled tick");
    Ok(Tick { redriven, reconciles: events.len(), approvals_pending, oldest_approval_secs })
}

/// How many signups wait in the links' approval queues (up to [`APPROVALS_COUNTED`] a link), and since
/// when the oldest waits. The queue is in order of first signup, so each link's first entry is its oldest.
pub async fn approval_backlog(
    store: &dyn StateStore,
    links: &[Link],
) -> Result<(usize, Option<DateTime<Utc>>), StoreError> {
    const PAGE: usize = 500;
    let (mut pending, mut oldest) = (0, None::<DateTime<Utc>>);
    for link in links {
        let mut after: Option<String> = None;
        let mut counted = 0;
        while counted < APPROVALS_COUNTED {
            let page = store.pending_approvals(&link.tenant, &link.id, after.as_deref(), PAGE).await?;
            if counted == 0
                && let Some(first) = page.first()
            {
                oldest = Some(oldest.map_or(first.first_seen, |o| o.min(first.first_seen)));
            }
            counted += page.len();
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.queue_position()),
                _ => break,
            }
        }
        pending += counted.min(APPROVALS_COUNTED);
    }
    Ok((pending, oldest))
}

/// What one daily due tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DueTick {
    /// Tenants whose due transitions were applied.
    pub tenants: usize,
    /// ESP operations those transitions took.
    pub esp_operations: usize,
}

/// R-A11: the daily tick just after midnight Europe/Berlin applies the transitions time alone makes due
/// on the Berlin date of `now` (month-end expiries, delivery blocks starting or ending: A9), for every
/// tenant with a syncing link. It goes through the engine directly, so neither the 6-hourly run's export
/// wait nor a run the guard holds (R-F8) delays it. Repeating it on the same day changes nothing.
pub async fn apply_due(store: &dyn StateStore, engine: &Engine, now: DateTime<Utc>) -> Result<DueTick, ProcessError> {
    let date = berlin_date(now);
    let tenants: BTreeSet<TenantId> =
        store.all_links().await?.into_iter().filter(|l| l.status != LinkStatus::NotLinked).map(|l| l.tenant).collect();
    let mut done = DueTick::default();
    for tenant in &tenants {
        // H4: page by page (each its own transaction) until nothing is due.
        loop {
            let page = engine.process_due_page(tenant, date).await?;
            done.esp_operations += page.outcome.esp_operations;
            if !page.more {
                break;
            }
        }
        done.tenants += 1;
    }
    tracing::info!(tenants = done.tenants, esp_operations = done.esp_operations, %date, "due tick");
    Ok(done)
}
