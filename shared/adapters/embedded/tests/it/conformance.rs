//! The embedded store passes the conformance suite (a fresh file per test) and survives a restart.

use optisync_embedded::EmbeddedStore;
use optisync_ports::prelude::*;
use optisync_ports::{Commit, SecretStore, Slice};
use std::sync::Arc;

async fn fresh_store() -> EmbeddedStore {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    EmbeddedStore::open(dir.join("state.redb")).expect("open")
}

async fn fresh() -> Arc<dyn StateStore> {
    Arc::new(fresh_store().await)
}

optisync_testkit::conformance_tests!(fresh);

async fn fresh_inbox() -> Arc<dyn optisync_ports::Inbox> {
    Arc::new(fresh_store().await)
}

optisync_testkit::inbox_conformance_tests!(fresh_inbox);

#[tokio::test]
async fn everything_survives_closing_and_reopening_the_file() {
    use optisync_domain::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let link = Link {
        id: LinkId::new("l1"),
        tenant: TenantId::new("t1"),
        newsletter: NewsletterId::new("nl"),
        esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("acc") },
        list: ListId::new("g1"),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    };
    let email = Email::parse("max@example.com").unwrap();
    {
        let store = EmbeddedStore::open(&path).unwrap();
        store.put_link(&link).await.unwrap();
        let state = RecipientState { listed: true, linked: true, ..Default::default() };
        let commit = Commit {
            writes: vec![(StateWrite::Recipient { link: link.id.clone(), email: email.clone(), state }, None)],
            commands: vec![],
            audit: vec![],
            ..Default::default()
        };
        store.commit(&link.tenant, commit).await.unwrap();
        SecretStore::put(&store, "cleverreach/acc/tokens", "{\"refresh_token\":\"r\"}").await.unwrap();
    }
    let reopened = EmbeddedStore::open(&path).unwrap();
    assert_eq!(reopened.links(&link.tenant).await.unwrap(), vec![link.clone()]);
    let loaded = reopened.load(&link, &Slice { assignments: vec![], emails: vec![email.clone()] }).await.unwrap();
    assert!(loaded.view.recipients[&email].listed);
    assert_eq!(
        SecretStore::get(&reopened, "cleverreach/acc/tokens").await.unwrap().as_deref(),
        Some("{\"refresh_token\":\"r\"}")
    );
}

async fn fresh_retention() -> optisync_testkit::conformance::RetentionFixture {
    use optisync_testkit::memory::FixedClock;
    let clock = Arc::new(FixedClock::new(chrono::Utc::now()));
    let store = Arc::new(fresh_store().await.with_clock(clock.clone()));
    let purging = Arc::clone(&store);
    optisync_testkit::conformance::RetentionFixture {
        store: store.clone(),
        inbox: store,
        clock,
        purge: Some(Box::new(move || {
            let store = Arc::clone(&purging);
            Box::pin(async move { store.purge_expired().await.expect("purge") })
        })),
    }
}

optisync_testkit::retention_conformance_tests!(fresh_retention, purge);
