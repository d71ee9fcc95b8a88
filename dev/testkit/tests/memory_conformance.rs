//! The in-memory store passes the conformance suite.

use optisync_ports::StateStore;
use optisync_testkit::memory::MemoryStore;
use std::sync::Arc;

async fn fresh() -> Arc<dyn StateStore> {
    Arc::new(MemoryStore::new())
}

optisync_testkit::conformance_tests!(fresh);

async fn fresh_inbox() -> Arc<dyn optisync_ports::Inbox> {
    Arc::new(MemoryStore::new())
}

optisync_testkit::inbox_conformance_tests!(fresh_inbox);
