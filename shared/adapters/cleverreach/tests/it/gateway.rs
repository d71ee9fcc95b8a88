//! The engine drives the fake CleverReach through the gateway: what the rules plan is what the list holds.

use chrono::{TimeZone, Utc};
use optisync_app::Engine;
use optisync_cleverreach::{CleverReachClient, CleverReachGateway, MemoryTokenStore};
use optisync_domain::*;
use optisync_fakes::cleverreach::FakeCleverReach;
use optisync_ports::prelude::*;
use optisync_testkit::build;
use optisync_testkit::memory::{FixedClock, MemoryStore};
use std::sync::Arc;

fn snapshot(id: &str, mail: &str, version: u64, first: &str, end: Option<&str>) -> Assignment {
    let at = Utc.with_ymd_and_hms(2024, 9, 1, 10, 0, 0).unwrap();
    let a = build::first_named(build::at_version(build::assignment(id, "nl", mail, at), version), first);
    Assignment { end: end.map(|e| e.parse().unwrap()), ..a }
}

#[tokio::test]
async fn optigem_changes_reach_the_cleverreach_group_and_a_field_update_never_changes_the_state() {
    let fake = FakeCleverReach::start().await;
    let client = CleverReachClient::new(fake.client_config(), Arc::new(MemoryTokenStore::new()));
    client.set_tokens(fake.issue_tokens()).await;
    let group = fake.add_group("Newsletter");
    let store = Arc::new(MemoryStore::new());
    let tenant = TenantId::new("t1");
    let link = Link {
        id: LinkId::new("l1"),
        tenant: tenant.clone(),
        newsletter: NewsletterId::new("nl"),
        esp: EspAccount { provider: Provider::CleverReach, account: AccountId::new("acc") },
        list: ListId::new(&group),
        segment: None,
        settings: LinkSettings {
            mapping: FieldMapping { first_name: Some(AttributeName::new("firstname")), ..Default::default() },
            ..Default::default()
        },
        status: LinkStatus::Linked,
    };
    store.put_link(&link).await.unwrap();
    let clock = Arc::new(FixedClock::new(Utc.with_ymd_and_hms(2024, 9, 3, 10, 0, 0).unwrap()));
    let engine = Engine::new(store, Arc::new(CleverReachGateway::new(client)), clock);
    let process = |a: Assignment| {
        let (engine, tenant) = (engine.clone(), tenant.clone());
        async move { engine.process(&tenant, &Input::AssignmentChanged { assignment: a }).await.unwrap() }
    };

    // R-D1: created and active in the group, with the mapped field.
    process(snapshot("a1", "max@example.com", 1, "Max", None)).await;
    let r = fake.receiver(&group, "max@example.com").expect("created");
    assert!(r.activated > 0 && r.deactivated == 0);
    assert_eq!(r.global_attributes.get("firstname").map(String::as_str), Some("Max"));

    // R-D2: ended in OPTIGEM → inactive in the group.
    process(snapshot("a1", "max@example.com", 2, "Max", Some("2024-08"))).await;
    let r = fake.receiver(&group, "max@example.com").unwrap();
    assert!(r.deactivated > 0, "deactivated");

    // R-D3 on an inactive receiver: the rules plan no update for an inactive assignment, and a mapped
    // change on an active one updates the field without touching the state.
    process(snapshot("a1", "max@example.com", 3, "Max", None)).await; // re-activated (R-D1)
    let r = fake.receiver(&group, "max@example.com").unwrap();
    assert!(r.activated > 0 && r.deactivated == 0, "re-activated");
    let calls = fake.mutating_calls();
    process(snapshot("a1", "max@example.com", 4, "Maximilian", None)).await;
    let r = fake.receiver(&group, "max@example.com").unwrap();
    assert_eq!(r.global_attributes.get("firstname").map(String::as_str), Some("Maximilian"));
    assert!(r.activated > 0 && r.deactivated == 0);
    assert_eq!(fake.mutating_calls(), calls + 1, "one upsert, nothing else");
}
