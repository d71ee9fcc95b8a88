//! scheduler: on the EventBridge schedule, runs [`optisync_app::schedule::tick`] — re-drives inbox entries
//! that stayed unprocessed (also those whose worker invocation ended in the dead-letter queue) and
//! publishes one `link.reconcile` event per link that syncs — and delivers the deletion reports a publish
//! missed ([`optisync_app::reports::deliver_all`], R-J2). An error of the tick goes back to Lambda, which
//! retries; a report not delivered waits for the next tick.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent};
use optisync_app::schedule::{Tick, tick};
use optisync_ports::{Clock, EventPublisher, Inbox, ReportNotifier, StateStore};
use std::sync::Arc;
use tracing::Instrument;

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    /// Links.
    pub store: Arc<dyn StateStore>,
    /// The inbox.
    pub inbox: Arc<dyn Inbox>,
    /// The event bus.
    pub publisher: Arc<dyn EventPublisher>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Delivers the deletion reports still in the outbox (R-J2); none: the tick delivers none.
    pub notifier: Option<Arc<dyn ReportNotifier>>,
}

impl Deps {
    /// The handler over its ports: links, the inbox, the bus and the clock.
    pub fn new(
        store: Arc<dyn StateStore>,
        inbox: Arc<dyn Inbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, inbox, publisher, clock, notifier: None }
    }

    /// With the deletion report notifier (R-J2): every tick delivers what is left in the outbox.
    pub fn with_notifier(mut self, notifier: Arc<dyn ReportNotifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }
}

/// What one invocation reports (also the function's result, visible in the console).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Inbox entries announced again.
    pub redriven: usize,
    /// Links announced for reconciliation.
    pub reconciles: usize,
    /// Signups waiting in the approval queues of those links (metric `ApprovalsPending`).
    pub approvals_pending: usize,
    /// Seconds the oldest of them has waited (metric `ApprovalsOldestAge`).
    pub oldest_approval_secs: u64,
    /// Deletion reports delivered by this tick (R-J2).
    pub reports_delivered: usize,
    /// Deletion reports whose publish failed; the next tick tries again.
    pub reports_failed: usize,
}

/// Handles one scheduled event (its content does not matter: the time is the clock's).
pub async fn handle(deps: &Deps, event: LambdaEvent<EventBridgeEvent<serde_json::Value>>) -> Result<Report, Error> {
    tracing::debug!(detail_type = %event.payload.detail_type, "tick");
    let span = tracing::info_span!("event", function = "scheduler");
    let Tick { redriven, reconciles, approvals_pending, oldest_approval_secs } =
        tick(deps.store.as_ref(), deps.inbox.as_ref(), deps.publisher.as_ref(), deps.clock.now())
            .instrument(span.clone())
            .await
            .map_err(|e| {
                let _entered = span.enter();
                tracing::warn!(error = %e, "scheduled tick failed; Lambda retries it");
                Error::from(e.to_string())
            })?;
    let mut delivery = optisync_app::reports::Delivery::default();
    if let Some(notifier) = &deps.notifier {
        // R-J2: a store failure here leaves the reports for the next tick; the tick itself succeeded.
        match optisync_app::reports::deliver_all(deps.store.as_ref(), notifier.as_ref(), deps.clock.now())
            .instrument(span.clone())
            .await
        {
            Ok(done) => delivery = done,
            Err(e) => {
                let _entered = span.enter();
                tracing::warn!(error = %e, "deletion reports not delivered; the next tick tries again");
            }
        }
    }
    Ok(Report {
        redriven,
        reconciles,
        approvals_pending,
        oldest_approval_secs,
        reports_delivered: delivery.delivered,
        reports_failed: delivery.failed,
    })
}
