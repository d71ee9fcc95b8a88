//! The scheduled tick (every 6 hours in AWS, a timer in the local runner): re-drive what the worker never
//! finished, and announce one reconciliation per link that syncs.

use crate::inbox::redrive_pending;
use chrono::{DateTime, Utc};
use optisync_domain::LinkStatus;
use optisync_ports::{BusEvent, EventPublisher, Inbox, StateStore, StoreError};

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
}

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
    let events: Vec<BusEvent> = store
        .all_links()
        .await?
        .into_iter()
        .filter(|l| l.status != LinkStatus::NotLinked)
        .map(|l| BusEvent::ReconcileLink { tenant: l.tenant, link: l.id })
        .collect();
    publisher.publish(&events).await?;
    tracing::info!(redriven, reconciles = events.len(), "scheduled tick");
    Ok(Tick { redriven, reconciles: events.len() })
}
