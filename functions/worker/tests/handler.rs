//! The worker from a real EventBridge event: the inbox entry reaches the ESP once; a failure leaves the
//! entry pending and is returned so Lambda retries and finally dead-letters it.

use chrono::{TimeZone, Utc};
use optisync_domain::*;
use optisync_ports::prelude::*;
use optisync_ports::{EspError, Inbox, InboxEntry};
use optisync_testkit::memory::{FixedClock, MemoryEsp, MemoryReader, MemoryStore};
use std::sync::Arc;
use worker::{Deps, handle};

fn event() -> lambda_runtime::LambdaEvent<aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value>> {
    let payload =
        serde_json::from_str(include_str!("fixtures/eventbridge-inbox-ready.json")).expect("an EventBridge event");
    lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default())
}

async fn setup() -> (Deps, Arc<MemoryStore>, Arc<MemoryEsp>, Link) {
    let store = Arc::new(MemoryStore::new());
    let link = Link {
        id: LinkId::new("l1"),
        tenant: TenantId::new("t1"),
        newsletter: NewsletterId::new("NL-7"),
        esp: EspAccount { provider: Provider::Brevo, account: AccountId::new("acc") },
        list: ListId::new("7"),
        segment: None,
        settings: LinkSettings::default(),
        status: LinkStatus::Linked,
    };
    store.put_link(&link).await.unwrap();
    let at = Utc.with_ymd_and_hms(2024, 9, 3, 10, 0, 0).unwrap();
    let assignment = Assignment {
        id: AssignmentId::new("A-1"),
        newsletter: NewsletterId::new("NL-7"),
        version: 1,
        created_at: at,
        changed_at: at,
        email: Some(Email::parse("max@example.com").unwrap()),
        end: None,
        count: 1,
        unsubscription: None,
        person: Person {
            id: PersonId::new("P-1"),
            first_name: None,
            last_name: None,
            letter_salutation: None,
            emails: vec![],
            deletion_marked: false,
            privacy: Default::default(),
            delivery_blocks: vec![],
        },
    };
    store
        .put(&InboxEntry {
            tenant: TenantId::new("t1"),
            key: "optigem:msg_1".into(),
            fingerprint: "fp".into(),
            items: vec![Input::AssignmentChanged { assignment }.into()],
            received_at: at,
        })
        .await
        .unwrap();
    let esp = Arc::new(MemoryEsp::new());
    let clock = Arc::new(FixedClock::new(at));
    let deps = Deps::new(store.clone(), store.clone(), esp.clone(), Arc::new(MemoryReader::new()), clock);
    (deps, store, esp, link)
}

#[tokio::test]
async fn an_inbox_event_is_applied_once_however_often_it_is_delivered() {
    let (deps, store, esp, link) = setup().await;
    assert_eq!(handle(&deps, event()).await.unwrap(), 1);
    assert_eq!(esp.receiving(&link.esp, &link.list), ["max@example.com".to_owned()].into());
    let calls = esp.mutating_calls();
    handle(&deps, event()).await.unwrap();
    assert_eq!(esp.mutating_calls(), calls);
    assert!(store.pending(Utc::now(), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failure_is_returned_and_the_entry_stays_pending_for_the_retry() {
    let (deps, store, esp, link) = setup().await;
    esp.fail_next(EspError::Transient { retry_after_secs: Some(1) });
    assert!(handle(&deps, event()).await.is_err());
    assert_eq!(store.pending(Utc::now(), 10).await.unwrap().len(), 1);
    assert!(esp.receiving(&link.esp, &link.list).is_empty());
    handle(&deps, event()).await.unwrap();
    assert_eq!(esp.receiving(&link.esp, &link.list).len(), 1);
}
