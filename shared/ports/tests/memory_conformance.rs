//! The in-memory store passes the conformance suite.

use optisync_ports::StateStore;
use optisync_ports::memory::MemoryStore;
use std::sync::Arc;

async fn fresh() -> Arc<dyn StateStore> {
    Arc::new(MemoryStore::new())
}

optisync_ports::conformance_tests!(fresh);

async fn fresh_idempotency() -> Arc<dyn optisync_ports::IdempotencyStore> {
    Arc::new(MemoryStore::new())
}

optisync_ports::idempotency_conformance_tests!(fresh_idempotency);

async fn fresh_inbox() -> Arc<dyn optisync_ports::Inbox> {
    Arc::new(MemoryStore::new())
}

optisync_ports::inbox_conformance_tests!(fresh_inbox);
