//! The handler from real API Gateway HTTP API events: the verification handshake, receiver events stored
//! as re-reads once however often they come, refusals that store nothing, 429 (never 5xx) on a fault.

use chrono::{DateTime, TimeZone, Utc};
use hook_cleverreach::{Deps, handle, webhook_secret};
use optisync_domain::*;
use optisync_ports::memory::{FixedClock, MemoryBus, MemorySecrets, MemoryStore};
use optisync_ports::{Inbox, InboxItem, SecretStore, StoreError};
use std::sync::Arc;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 9, 25, 12, 0, 0).unwrap()
}

fn post(body: &str, token: &str) -> lambda_http::Request {
    let fixture = include_str!("fixtures/apigw-v2-post-event.json")
        .replace("__TOKEN__", token)
        .replace("\"__BODY__\"", &serde_json::to_string(body).unwrap());
    lambda_http::request::from_str(&fixture).expect("an API Gateway v2 event")
}

async fn setup() -> (Deps, Arc<MemoryStore>, Arc<MemoryBus>) {
    let secrets = Arc::new(MemorySecrets::default());
    let tokens = r#"{"verify_token":"verify-123","call_token":"call-456"}"#;
    secrets.put(&webhook_secret(&AccountId::new("cr-main")), tokens).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let bus = Arc::new(MemoryBus::default());
    let deps = Deps { secrets, inbox: store.clone(), publisher: bus.clone(), clock: Arc::new(FixedClock::new(now())) };
    (deps, store, bus)
}

async fn stored(store: &MemoryStore) -> Vec<(TenantId, String)> {
    store.pending(now() + chrono::Duration::days(1), 100).await.unwrap()
}

const UNSUBSCRIBED: &str = r#"{"event":"receiver.unsubscribed","condition":"1939","payload":{"pool_id":"4285"}}"#;

#[tokio::test]
async fn the_handshake_answers_verify_token_and_secret_as_plain_text() {
    let (deps, _, _) = setup().await;
    let fixture = include_str!("fixtures/apigw-v2-get-handshake.json").replace("__SECRET__", "abc987");
    let response = handle(&deps, lambda_http::request::from_str(&fixture).unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), b"verify-123 abc987");
    assert_eq!(response.headers()["content-type"], "text/plain");
}

#[tokio::test]
async fn a_receiver_event_becomes_one_reread_however_often_it_comes() {
    let (deps, store, bus) = setup().await;
    for _ in 0..3 {
        assert_eq!(handle(&deps, post(UNSUBSCRIBED, "call-456")).await.status(), 200);
    }
    let waiting = stored(&store).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(bus.drain().len(), 1);
    let entry = store.get(&waiting[0].0, &waiting[0].1).await.unwrap().unwrap();
    let [InboxItem::Reread { reread }] = &entry.items[..] else { panic!() };
    assert_eq!(
        (reread.list.as_str(), reread.receiver.as_str(), reread.event.as_str()),
        ("1939", "4285", "receiver.unsubscribed")
    );
    assert_eq!(reread.esp, EspAccount { provider: Provider::CleverReach, account: AccountId::new("cr-main") });
}

#[tokio::test]
async fn refusals_store_nothing_and_other_events_are_acknowledged() {
    let (deps, store, bus) = setup().await;
    assert_eq!(handle(&deps, post(UNSUBSCRIBED, "wrong")).await.status(), 401);
    assert_eq!(handle(&deps, post("not json", "call-456")).await.status(), 400);
    let group = r#"{"event":"group.updated","condition":"1939","payload":{"group_id":"1939"}}"#;
    assert_eq!(handle(&deps, post(group, "call-456")).await.status(), 200);
    let deleted = r#"{"event":"receiver.deleted","condition":"1939","payload":{"email":"3nCrYpT3d"}}"#;
    assert_eq!(handle(&deps, post(deleted, "call-456")).await.status(), 200, "left to the reconciliation");
    assert!(stored(&store).await.is_empty());
    assert!(bus.drain().is_empty());
}

#[tokio::test]
async fn a_store_fault_is_a_429_never_a_5xx() {
    for fault in [StoreError::Transient("throttled".into()), StoreError::Permanent("broken".into())] {
        let (deps, store, _) = setup().await;
        store.fail_next_inbox_put(fault);
        let response = handle(&deps, post(UNSUBSCRIBED, "call-456")).await;
        assert_eq!(response.status(), 429);
        assert!(response.headers().contains_key("retry-after"));
        assert_eq!(handle(&deps, post(UNSUBSCRIBED, "call-456")).await.status(), 200);
        assert_eq!(stored(&store).await.len(), 1);
    }
}
