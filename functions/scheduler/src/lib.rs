//! scheduler: on the EventBridge schedule, runs [`optisync_app::schedule::tick`] — re-drives inbox entries
//! that stayed unprocessed (also those whose worker invocation ended in the dead-letter queue) and
//! publishes one `link.reconcile` event per link that syncs. An error goes back to Lambda, which retries.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent};
use optisync_app::schedule::{Tick, tick};
use optisync_ports::{Clock, EventPublisher, Inbox, StateStore};
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
}

impl Deps {
    /// The handler over its ports: links, the inbox, the bus and the clock.
    pub fn new(
        store: Arc<dyn StateStore>,
        inbox: Arc<dyn Inbox>,
        publisher: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { store, inbox, publisher, clock }
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
    Ok(Report { redriven, reconciles, approvals_pending, oldest_approval_secs })
}
