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

async fn fresh_retention() -> optisync_testkit::conformance::RetentionFixture {
    use optisync_testkit::memory::FixedClock;
    let clock = Arc::new(FixedClock::new(chrono::Utc::now()));
    let store = Arc::new(optisync_testkit::memory::MemoryStore::new().with_clock(clock.clone()));
    let purging = Arc::clone(&store);
    optisync_testkit::conformance::RetentionFixture {
        store: store.clone(),
        inbox: store,
        clock,
        purge: Some(Box::new(move || {
            let store = Arc::clone(&purging);
            Box::pin(async move { store.purge_expired() })
        })),
    }
}

optisync_testkit::retention_conformance_tests!(fresh_retention, purge);
