//! [`EventPublisher`] on Amazon EventBridge. Events carry ids only (tenant, inbox key, link), never
//! personal data (R-J5); rules in `template.yaml` route them by `detail-type`.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use optisync_ports::{BusEvent, EventPublisher, StoreError};
use serde::{Deserialize, Serialize};

/// The `source` of every event optisync publishes.
pub const SOURCE: &str = "optisync";
/// Most entries one `PutEvents` call takes.
const MAX_ENTRIES: usize = 10;

/// The `detail` of an event, as the worker and the reconciler read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Detail {
    /// `detail-type: inbox.ready`.
    InboxReady {
        /// The tenant.
        tenant: String,
        /// The inbox key.
        key: String,
    },
    /// `detail-type: link.reconcile`.
    ReconcileLink {
        /// The tenant.
        tenant: String,
        /// The link.
        link: String,
    },
}

/// The `detail-type` and `detail` of a bus event.
pub fn encode(event: &BusEvent) -> (&'static str, Detail) {
    match event {
        BusEvent::InboxReady { tenant, key } => {
            ("inbox.ready", Detail::InboxReady { tenant: tenant.to_string(), key: key.clone() })
        }
        BusEvent::ReconcileLink { tenant, link } => {
            ("link.reconcile", Detail::ReconcileLink { tenant: tenant.to_string(), link: link.to_string() })
        }
    }
}

/// Publishes to one event bus.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    /// A publisher to the bus with this name or ARN.
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }
}

fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> StoreError {
    match err {
        SdkError::ServiceError(e) => match e.err().code() {
            Some("ThrottlingException" | "InternalException") => StoreError::Transient("eventbridge busy".into()),
            code => StoreError::Permanent(format!("eventbridge: {}", code.unwrap_or("unknown error"))),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Transient("eventbridge did not answer".into())
        }
        _ => StoreError::Permanent("eventbridge request could not be built".into()),
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let mut entries = Vec::with_capacity(chunk.len());
            for event in chunk {
                let (detail_type, detail) = encode(event);
                let detail = serde_json::to_string(&detail).map_err(|e| StoreError::Permanent(e.to_string()))?;
                entries.push(
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(SOURCE)
                        .detail_type(detail_type)
                        .detail(detail)
                        .build(),
                );
            }
            let out = self.client.put_events().set_entries(Some(entries)).send().await.map_err(|e| classify(&e))?;
            if out.failed_entry_count() > 0 {
                // Failed entries are throttling or internal errors per the API; the caller retries.
                return Err(StoreError::Transient(format!("{} events not accepted", out.failed_entry_count())));
            }
        }
        Ok(())
    }
}
