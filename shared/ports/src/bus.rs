//! Work handed on over the event bus.

use crate::StoreError;
use async_trait::async_trait;
use optisync_domain::{LinkId, TenantId};

/// Work handed on over the event bus (EventBridge in AWS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// An inbox event is ready for the worker.
    InboxReady {
        /// The tenant.
        tenant: TenantId,
        /// The inbox key.
        key: String,
    },
    /// A link is due for its scheduled run.
    ReconcileLink {
        /// The tenant.
        tenant: TenantId,
        /// The link.
        link: LinkId,
    },
}

/// Publishes work on the event bus.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes events; all or an error.
    async fn publish(&self, events: &[BusEvent]) -> Result<(), StoreError>;
}
