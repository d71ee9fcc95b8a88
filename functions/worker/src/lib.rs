//! worker: on `inbox.ready` from EventBridge, applies that inbox entry through the engine. An error is
//! returned to Lambda, which retries the asynchronous invocation and then hands it to the dead-letter
//! queue; the entry stays pending in the inbox, so the scheduler's sweep can re-drive it too.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent};
use optisync_app::Engine;
use optisync_app::inbox::process_inbox_entry;
use optisync_domain::TenantId;
use optisync_eventbridge::Detail;
use optisync_ports::{Clock, EspGateway, EspReader, Inbox, ReportNotifier, StateStore};
use std::sync::Arc;
use tracing::Instrument;

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    /// The engine over the store, the ESP router and the clock.
    pub engine: Engine,
    /// The inbox.
    pub inbox: Arc<dyn Inbox>,
    /// Re-reads CleverReach receivers before their events are applied, and Brevo contacts whose signup
    /// came without names.
    pub reader: Arc<dyn EspReader>,
}

impl Deps {
    /// The handler over its ports: state, the inbox, the ESP gateway and reader, and the clock.
    pub fn new(
        store: Arc<dyn StateStore>,
        inbox: Arc<dyn Inbox>,
        esp: Arc<dyn EspGateway>,
        reader: Arc<dyn EspReader>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // The reader also completes a Brevo signup's names before it is queued (R-E3, R-C3).
        Self { engine: Engine::new(store, esp, clock).with_reader(reader.clone()), inbox, reader }
    }

    /// With the deletion report notifier (R-J2): the report an erasure makes is published right after
    /// its commit (the scheduler's tick retries what fails).
    pub fn with_notifier(mut self, notifier: Arc<dyn ReportNotifier>) -> Self {
        self.engine = self.engine.with_notifier(notifier);
        self
    }
}

/// Handles one EventBridge event; returns how many inputs were applied.
pub async fn handle(deps: &Deps, event: LambdaEvent<EventBridgeEvent<serde_json::Value>>) -> Result<usize, Error> {
    let detail: Detail = serde_json::from_value(event.payload.detail).map_err(|e| format!("unexpected detail: {e}"))?;
    let Detail::InboxReady { tenant, key } = detail else {
        tracing::warn!(detail_type = %event.payload.detail_type, "not an inbox event; ignored");
        return Ok(0);
    };
    let span = tracing::info_span!("event", function = "worker", tenant = %tenant, entry = %key);
    let tenant = TenantId::new(tenant);
    let applied = process_inbox_entry(&deps.engine, deps.inbox.as_ref(), deps.reader.as_ref(), &tenant, &key)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    optisync_ports::metrics::event(applied.is_ok());
    let applied = applied.map_err(|e| {
        tracing::warn!(error = %e, transient = e.is_transient(), "inbox entry not applied; it stays pending");
        Error::from(e.to_string())
    })?;
    tracing::info!(applied, "inbox entry applied");
    Ok(applied)
}
