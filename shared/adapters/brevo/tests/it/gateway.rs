//! The engine drives the fake Brevo through the gateway: the rules' plans are what the account holds.

use chrono::{TimeZone, Utc};
use optisync_app::Engine;
use optisync_brevo::{ApiKey, BrevoClient, BrevoConfig, BrevoGateway};
use optisync_domain::*;
use optisync_fakes::brevo::{FAKE_API_KEY, FakeBrevo};
use optisync_ports::prelude::*;
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryStore};
use std::sync::Arc;

fn snapshot(id: &str, nl: &str, mail: &str, version: u64, first: &str, created_day: u32) -> Assignment {
    let created = Utc.with_ymd_and_hms(2024, 9, created_day, 10, 0, 0).unwrap();
    build::first_named(build::at_version(build::assignment(id, nl, mail, created), version), first)
}

#[tokio::test]
async fn r_e2_r_j3_blacklisting_leaves_every_list_updates_never_unblacklist_and_only_a_new_subscription_does() {
    let fake = FakeBrevo::start().await;
    let (list1, list2) = (fake.add_list("Rundbrief"), fake.add_list("Gebetsbrief"));
    let mut cfg = BrevoConfig::new(fake.base_url(), ApiKey::new(FAKE_API_KEY));
    cfg.backoff_base = std::time::Duration::from_millis(5);
    let gateway = BrevoGateway::new(BrevoClient::new(cfg).unwrap());
    let store = Arc::new(MemoryStore::new());
    let tenant = TenantId::new("t1");
    for (nl, list) in [("nl1", list1), ("nl2", list2)] {
        store
            .put_link(&Link {
                id: LinkId::new(nl),
                tenant: tenant.clone(),
                newsletter: NewsletterId::new(nl),
                esp: EspAccount { provider: Provider::Brevo, account: AccountId::new("acc") },
                list: ListId::new(list.to_string()),
                segment: None,
                settings: LinkSettings {
                    mapping: FieldMapping { first_name: Some(AttributeName::new("FIRSTNAME")), ..Default::default() },
                    ..Default::default()
                },
                status: LinkStatus::Linked,
            })
            .await
            .unwrap();
    }
    let clock = Arc::new(FixedClock::new(Utc.with_ymd_and_hms(2024, 9, 20, 10, 0, 0).unwrap()));
    let engine = Engine::new(store, Arc::new(gateway), clock.clone());
    let run = |input: Input| {
        let (engine, tenant) = (engine.clone(), tenant.clone());
        async move { engine.process(&tenant, &input).await.unwrap() }
    };
    let changed = |a: Assignment| Input::AssignmentChanged { assignment: a };

    // R-D1: on both lists, with the mapped field; one create-with-list call, one list addition.
    run(changed(snapshot("a1", "nl1", "max@example.com", 1, "Max", 1))).await;
    run(changed(snapshot("a2", "nl2", "max@example.com", 1, "Max", 1))).await;
    let c = fake.contact("max@example.com").unwrap();
    assert_eq!(c.list_ids.iter().copied().collect::<Vec<_>>(), vec![list1, list2]);
    assert_eq!(c.attributes["FIRSTNAME"], "Max");

    // The recipient unsubscribes in Brevo: account-wide blacklist (R-E2).
    fake.blacklist("max@example.com");
    let blacklisted = Input::Esp(EspEvent {
        esp: EspAccount { provider: Provider::Brevo, account: AccountId::new("acc") },
        list: None,
        email: Email::parse("max@example.com").unwrap(),
        at: Utc.with_ymd_and_hms(2024, 9, 25, 8, 0, 0).unwrap(),
        what: EspEventKind::Blacklisted,
    });
    clock.set(Utc.with_ymd_and_hms(2024, 9, 25, 9, 0, 0).unwrap());
    run(blacklisted).await;
    let c = fake.contact("max@example.com").unwrap();
    assert!(c.list_ids.is_empty(), "removed from every list of the account");
    assert!(c.email_blacklisted);

    // A stale OPTIGEM change (name) before OPTIGEM ran the end command: no un-blacklisting (R-J3).
    run(changed(snapshot("a1", "nl1", "max@example.com", 2, "Maximilian", 1))).await;
    let c = fake.contact("max@example.com").unwrap();
    assert!(c.email_blacklisted && c.list_ids.is_empty());

    // A new assignment created after the unsubscribe re-subscribes: off the blacklist, on that list only.
    clock.set(Utc.with_ymd_and_hms(2024, 10, 2, 9, 0, 0).unwrap());
    run(changed(snapshot("a3", "nl2", "max@example.com", 1, "Max", 30))).await;
    let c = fake.contact("max@example.com").unwrap();
    assert!(!c.email_blacklisted);
    assert_eq!(c.list_ids.iter().copied().collect::<Vec<_>>(), vec![list2]);
}
